"""The collection as a user gets it: built into a tarball, installed with ansible-galaxy into a
directory of its own, and used from an unrelated directory with no ansible.cfg of the
repository and the stock callback - `ansible-playbook k8slab.podnet.site` builds and verifies
a lab from a copy of inventories/netns, the reports land in that directory (never in the
installed collection), ansible-doc shows a module and a role from the installed copy, the
installed `k8slab` launcher works, and `k8slab.podnet.netns_lab_down` removes the lab.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
LAB = 'hjinst'

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='builds a lab: needs root')


def clean_env(collections):
    """The environment of someone who installed the collection: no ANSIBLE_* of the project's
    test runs, only the collection path."""
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith(('ANSIBLE_', 'K8SLAB_')))
    env.update(ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_NOCOLOR='1',
               PATH=BIN + os.pathsep + env.get('PATH', ''))
    return env


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    base = tmp_path_factory.mktemp('hj-installed')
    build, collections, work = base / 'build', base / 'collections', base / 'work'
    for d in (build, collections, work):
        d.mkdir()
    subprocess.run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'build', '--output-path',
                    str(build), ROOT], capture_output=True, text=True, check=True)
    tarball = sorted(build.glob('k8slab-podnet-*.tar.gz'))[0]
    subprocess.run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'install', '-p',
                    str(collections), str(tarball)], cwd=str(work), capture_output=True,
                   text=True, check=True)
    inventory = work / 'inventory'
    shutil.copytree(os.path.join(ROOT, 'inventories', 'netns'), str(inventory), symlinks=False)
    lab_yml = inventory / 'group_vars' / 'all' / 'lab.yml'
    text, n = re.subn(r'(?m)^lab_name: .*$', 'lab_name: %s' % LAB, lab_yml.read_text())
    assert n == 1
    lab_yml.write_text(text)
    env = clean_env(str(collections))
    yield dict(env=env, work=work, inventory=str(inventory),
               collection=collections / 'ansible_collections' / 'k8slab' / 'podnet')
    subprocess.run([os.path.join(BIN, 'ansible-playbook'), 'k8slab.podnet.netns_lab_down', '-i',
                    str(inventory)], cwd=str(work), env=env, capture_output=True, check=False)


def test_site_from_an_unrelated_directory(installed):
    work, env = installed['work'], installed['env']
    assert not (work / 'ansible.cfg').exists()
    proc = subprocess.run([os.path.join(BIN, 'ansible-playbook'), 'k8slab.podnet.site', '-i',
                           installed['inventory']], cwd=str(work), env=env,
                          capture_output=True, text=True, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    # The stock callback prints the table line by line, not as one escaped string.
    # (source and target columns are dropped when the terminal is narrow: the name holds both)
    assert re.search(r'^\s+"check\s+(source\s+target\s+)?expected\s+observed\s+result",?$',
                     out, re.M), out[-4000:]
    assert re.search(r'^\s+"\d+ checks: \d+ passed, 0 failed"$', out, re.M), out[-4000:]
    # One row per line: the table is not one escaped string holding every row.
    assert all(l.count('PASS') <= 1 for l in out.splitlines())
    # Reports where the user ran it, none in the installed collection.
    report = json.loads((work / 'reports' / LAB / 'verify.json').read_text())
    assert report['lab'] == LAB and report['checks'] > 0 and report['failed'] == 0
    assert (work / 'reports' / LAB / 'verify.xml').is_file()
    assert not (installed['collection'] / 'reports').exists()


def test_k8slab_launcher_of_the_installed_copy(installed):
    k8slab = installed['collection'] / 'scripts' / 'k8slab'
    assert os.access(str(k8slab), os.X_OK)
    proc = subprocess.run([str(k8slab), 'status', '--lab', LAB, '--json'], cwd='/',
                          env=installed['env'], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data['lab'] == LAB and all(n['up'] for n in data['nodes'])


@pytest.mark.parametrize('kind,name', [('module', 'veth'), ('role', 'pods'), ('filter', 'cidr_host')])
def test_ansible_doc_from_the_installed_copy(installed, kind, name):
    proc = subprocess.run([os.path.join(BIN, 'ansible-doc'), '-t', kind, '--json',
                           'k8slab.podnet.' + name], cwd=str(installed['work']),
                          env=installed['env'], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)['k8slab.podnet.' + name]
    if kind == 'role':
        assert 'main' in doc['entry_points'] and doc['path'].startswith(str(installed['collection']))
    else:
        assert doc['doc'] and doc['doc']['filename'].startswith(str(installed['collection']))


def test_down_from_the_installed_copy(installed):
    proc = subprocess.run([os.path.join(BIN, 'ansible-playbook'), 'k8slab.podnet.netns_lab_down',
                           '-i', installed['inventory']], cwd=str(installed['work']),
                          env=installed['env'], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:]
    left = subprocess.run(['ip', 'netns', 'list'], capture_output=True, text=True,
                          check=True).stdout
    assert not [l for l in left.splitlines() if l.startswith(LAB + '-')], left

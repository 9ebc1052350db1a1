"""The collection as a user gets it: built into a tarball, installed with ansible-galaxy into a
directory of its own, and used from an unrelated directory with no ansible.cfg of the
repository and the stock callback - `ansible-playbook k8slab.podnet.site` builds and verifies
a lab from a copy of inventories/netns, the reports land in that directory (never in the
installed collection), ansible-doc shows a module and a role from the installed copy, the
installed `k8slab` launcher works, and `k8slab.podnet.netns_lab_down` removes the lab.

The user's Ansible is a fresh virtualenv holding only ansible-core (the version this run tests),
not the project's: nothing of molecule, jmespath or the test tools is there to lean on. Every
command runs without the repository's ANSIBLE_* settings (the Makefile exports ANSIBLE_CONFIG,
whose collections_path holds the checkout: ansible-galaxy would then find the collection
"already installed" and install nothing).
"""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from ansible.release import __version__ as ansible_version

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB = 'hjinst'

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='builds a lab: needs root')


def clean_env(bin_dir, collections=None):
    """The environment of someone who installed the collection: their Ansible first on the
    PATH, no ANSIBLE_* or K8SLAB_* of the project's test runs, only the collection path."""
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith(('ANSIBLE_', 'K8SLAB_')))
    env.update(ANSIBLE_NOCOLOR='1', PATH=bin_dir + os.pathsep + env.get('PATH', ''))
    env.pop('VIRTUAL_ENV', None)
    if collections:
        env['ANSIBLE_COLLECTIONS_PATH'] = collections
    return env


def user_ansible(venv):
    """A new virtualenv with ansible-core alone, at the version of the project's; its bin/."""
    subprocess.run([sys.executable, '-m', 'venv', str(venv)], check=True)
    pip = [str(venv / 'bin' / 'pip'), 'install', '-q', '--disable-pip-version-check']
    subprocess.run(pip + ['ansible-core==' + ansible_version], check=True,
                   env=clean_env(str(venv / 'bin')))
    return str(venv / 'bin')


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    base = tmp_path_factory.mktemp('hj-installed')
    build, collections, work = base / 'build', base / 'collections', base / 'work'
    for d in (build, collections, work):
        d.mkdir()
    bin_dir = user_ansible(base / 'venv')
    plain = clean_env(bin_dir)
    subprocess.run([os.path.join(bin_dir, 'ansible-galaxy'), 'collection', 'build',
                    '--output-path', str(build), ROOT], env=plain, capture_output=True,
                   text=True, check=True)
    tarball = sorted(build.glob('k8slab-podnet-*.tar.gz'))[0]
    subprocess.run([os.path.join(bin_dir, 'ansible-galaxy'), 'collection', 'install', '-p',
                    str(collections), str(tarball)], cwd=str(work), env=plain,
                   capture_output=True, text=True, check=True)
    collection = collections / 'ansible_collections' / 'k8slab' / 'podnet'
    assert (collection / 'MANIFEST.json').is_file(), 'ansible-galaxy installed nothing'
    inventory = work / 'inventory'
    shutil.copytree(os.path.join(ROOT, 'inventories', 'netns'), str(inventory), symlinks=False)
    lab_yml = inventory / 'group_vars' / 'all' / 'lab.yml'
    text, n = re.subn(r'(?m)^lab_name: .*$', 'lab_name: %s' % LAB, lab_yml.read_text())
    assert n == 1
    lab_yml.write_text(text)
    env = clean_env(bin_dir, str(collections))
    yield dict(env=env, bin=bin_dir, work=work, inventory=str(inventory), collection=collection)
    subprocess.run([os.path.join(bin_dir, 'ansible-playbook'), 'k8slab.podnet.netns_lab_down',
                    '-i', str(inventory)], cwd=str(work), env=env, capture_output=True,
                   check=False)


def test_the_users_ansible_is_ansible_core_alone(installed):
    """The test proves nothing if the project's packages leak into the user's virtualenv."""
    python = os.path.join(installed['bin'], 'python')
    for name in ('jmespath', 'molecule', 'testinfra', 'vagrant', 'graphviz'):
        proc = subprocess.run([python, '-c', 'import ' + name], cwd=str(installed['work']),
                              env=installed['env'], capture_output=True, check=False)
        assert proc.returncode != 0, name
    proc = subprocess.run([os.path.join(installed['bin'], 'ansible'), '--version'],
                          env=installed['env'], capture_output=True, text=True, check=True)
    assert ansible_version in proc.stdout.splitlines()[0]


def test_site_from_an_unrelated_directory(installed):
    work, env = installed['work'], installed['env']
    assert not (work / 'ansible.cfg').exists()
    proc = subprocess.run([os.path.join(installed['bin'], 'ansible-playbook'), 'k8slab.podnet.site', '-i',
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
    proc = subprocess.run([os.path.join(installed['bin'], 'ansible-doc'), '-t', kind, '--json',
                           'k8slab.podnet.' + name], cwd=str(installed['work']),
                          env=installed['env'], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)['k8slab.podnet.' + name]
    if kind == 'role':
        assert 'main' in doc['entry_points'] and doc['path'].startswith(str(installed['collection']))
    else:
        assert doc['doc'] and doc['doc']['filename'].startswith(str(installed['collection']))


def test_down_from_the_installed_copy(installed):
    proc = subprocess.run([os.path.join(installed['bin'], 'ansible-playbook'), 'k8slab.podnet.netns_lab_down',
                           '-i', installed['inventory']], cwd=str(installed['work']),
                          env=installed['env'], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:]
    left = subprocess.run(['ip', 'netns', 'list'], capture_output=True, text=True,
                          check=True).stdout
    assert not [l for l in left.splitlines() if l.startswith(LAB + '-')], left

"""The backends (docs/backends.md), each through its own inventory, run for real.

- site.yml parses and lists its plays, tasks and hosts with each inventory (netns, vagrant
  through the replayed `vagrant` of tests/unit/test_inventory_vagrant.py, ssh);
- playbooks/validate.yml reads each backend's traits (node name limits differ) and refuses an
  inventory without them;
- the ssh backend's node tasks check real machines: run here against this host (connection
  local stands in for SSH), then with `ip` missing, then with nothing listening;
- the netns backend still builds and verifies the whole lab (`scripts/k8slab --lab ha up`,
  every check PASS) and playbooks/nodes_down.yml removes it.
"""

import json
import os
import subprocess
import sys

import pytest
import yaml

from conftest import BIN, ROOT, ansible_env, run_playbook, sh

sys.path.insert(0, os.path.join(ROOT, 'tests', 'unit'))
from test_inventory_vagrant import FAKE_VAGRANT, REC  # noqa: E402  (the replayed vagrant)

INVENTORIES = ['netns', 'vagrant', 'ssh']
LAB = 'ha'


@pytest.fixture(scope='module')
def fake_vagrant(tmp_path_factory):
    """Environment for ansible-playbook with the replaying `vagrant` first on PATH."""
    tmp = tmp_path_factory.mktemp('hA-vagrant')
    (tmp / 'bin').mkdir()
    exe = tmp / 'bin' / 'vagrant'
    exe.write_text(FAKE_VAGRANT.format(python=sys.executable, rec=REC))
    exe.chmod(0o755)
    (tmp / 'home').mkdir()
    (tmp / 'calls.log').write_text('')
    return {'PATH': os.pathsep.join([str(tmp / 'bin'), BIN, os.environ.get('PATH', '')]),
            'HOME': str(tmp / 'home'), 'FAKE_VAGRANT_LOG': str(tmp / 'calls.log'),
            'FAKE_VAGRANT_STATUS': 'status-running.txt'}


def playbook_cli(inventory, *args, env=None):
    env = ansible_env(**(env or {}))
    env['ANSIBLE_STDOUT_CALLBACK'] = 'default'
    env.pop('VAGRANT_CWD', None)
    proc = subprocess.run([os.path.join(BIN, 'ansible-playbook'), '-i',
                           os.path.join('inventories', inventory), 'site.yml'] + list(args),
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def inv_env(inventory, fake_vagrant):
    return fake_vagrant if inventory == 'vagrant' else {}


@pytest.mark.parametrize('inventory', INVENTORIES)
def test_site_syntax_tasks_and_hosts(inventory, fake_vagrant):
    env = inv_env(inventory, fake_vagrant)
    assert 'playbook: site.yml' in playbook_cli(inventory, '--syntax-check', env=env)
    tasks = playbook_cli(inventory, '--list-tasks', env=env)
    for play in ('Validate the lab topology', "Make the lab's nodes", 'Build the pod network',
                 'Verify the pod network'):
        assert play in tasks, tasks
    assert "Check that the inventory carries its backend's traits" in tasks
    hosts = playbook_cli(inventory, '--list-hosts', env=env)
    cluster = hosts.split('Build the pod network')[1].split('play #')[0]
    assert 'hosts (3)' in cluster, hosts
    for node in ('controlplane', 'node-1', 'node-2'):
        assert node in cluster


@pytest.mark.parametrize('inventory', INVENTORIES)
def test_validate_reads_the_backends_traits(inventory, fake_vagrant):
    env = dict(inv_env(inventory, fake_vagrant), ANSIBLE_INVENTORY_UNPARSED_WARNING='True')
    res = run_playbook('playbooks/validate.yml', inventory='inventories/' + inventory, env=env)
    assert res.rc == 0, res
    assert res.task("Check that the inventory carries its backend's traits")['msg'] == \
        'Backend ' + inventory


def own_inventory(tmp_path, backend, nodes, link_backend=True):
    """An inventory of these node names with the given backend, in tmp_path."""
    gv = tmp_path / 'group_vars' / 'all'
    gv.mkdir(parents=True)
    with open(os.path.join(ROOT, 'inventories', 'topology.yml')) as f:
        lab = yaml.safe_load(f)
    lab['lab_nodes'] = dict((name, {'eth1_ip': '192.168.56.%d' % (10 + i),
                                    'pod_cidr': '10.244.%d.0/24' % i})
                            for i, name in enumerate(nodes))
    lab['lab_pods'] = []
    (gv / 'lab.yml').write_text(yaml.safe_dump(lab))
    if link_backend:
        (gv / 'backend.yml').symlink_to(os.path.join(ROOT, 'backends', backend + '.yml'))
    (tmp_path / 'hosts.yml').write_text(yaml.safe_dump(
        {'all': {'children': {'k8s_cluster': {'hosts': dict((n, None) for n in nodes)}}}}))
    return str(tmp_path)


@pytest.mark.parametrize('backend, ok', [('netns', False), ('vagrant', True), ('ssh', True)])
def test_node_name_limit_is_the_backends(tmp_path, backend, ok):
    # 16 characters: too long for a switch port of the single-host lab, fine as a host name.
    nodes = ['controlplane', 'worker-with-long']
    res = run_playbook('playbooks/validate.yml', inventory=own_inventory(tmp_path, backend, nodes))
    assert (res.rc == 0) == ok, res
    if not ok:
        assert 'worker-with-long' in res.stdout and '15' in res.stdout


def test_inventory_without_traits_is_refused_naming_the_fix(tmp_path):
    res = run_playbook('site.yml', inventory=own_inventory(tmp_path, 'ssh', ['a', 'b'], False))
    assert res.rc != 0
    msg = res.task("Check that the inventory carries its backend's traits")['msg']
    assert 'group_vars/all/backend.yml' in msg and 'backends/<name>.yml' in msg
    assert 'Build the pod network' not in res.stdout


def ssh_nodes_up(extra_vars, env=None):
    return run_playbook('playbooks/nodes_up.yml', inventory='inventories/ssh',
                        extra_vars=extra_vars, env=env)


CHECK = 'Check that every node answers over SSH, runs Linux, has ip -j and python3'


def test_ssh_node_check_passes_on_a_linux_machine():
    # connection local: every node is this host, which has Linux, ip -j and python3.
    res = ssh_nodes_up({'ansible_connection': 'local'})
    assert res.rc == 0, res
    items = res.task(CHECK)['results']
    assert [r['item'] for r in items] == ['controlplane', 'node-1', 'node-2']
    assert all(r['stdout'].strip() == 'Linux, ip -j, python3: ok' for r in items), items
    assert res.changed == 0


def test_ssh_node_check_names_what_is_missing(tmp_path):
    # The same machine without iproute2 on PATH (uname and python3 only).
    (tmp_path / 'bin').mkdir()
    for tool in ('uname', 'python3'):
        (tmp_path / 'bin' / tool).symlink_to(sh('command -v ' + tool).strip())
    res = ssh_nodes_up({'ansible_connection': 'local'},
                       env={'PATH': os.pathsep.join([str(tmp_path / 'bin'), BIN])})
    assert res.rc != 0
    items = res.task(CHECK)['results']
    assert [(r['item'], r['stdout'].strip()) for r in items] == \
        [(n, 'no ip -j: install iproute2') for n in ('controlplane', 'node-1', 'node-2')]


def test_ssh_node_check_fails_on_an_unreachable_machine():
    res = ssh_nodes_up({'ansible_host': '127.0.0.1', 'ansible_port': 1})
    assert res.rc != 0
    items = res.task(CHECK)['results']
    assert [r['item'] for r in items] == ['controlplane', 'node-1', 'node-2']
    assert all(r.get('unreachable') and 'port 1' in r['msg'] for r in items), items


def lab_netns():
    return [n['name'] for n in json.loads(sh('ip -j netns list') or '[]')
            if n['name'].startswith(LAB + '-')]


def test_netns_backend_builds_verifies_and_goes(tmp_path):
    """`scripts/k8slab --lab ha up` (site.yml) passes every check; nodes_down.yml removes it."""
    env = ansible_env(K8SLAB_REPORT_DIR=str(tmp_path))
    env['ANSIBLE_STDOUT_CALLBACK'] = 'default'
    try:
        up = subprocess.run([os.path.join(ROOT, 'scripts', 'k8slab'), '--lab', LAB, 'up'],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
                            check=False)
        assert up.returncode == 0, up.stdout[-6000:] + up.stderr[-3000:]
        with open(str(tmp_path / LAB / 'verify.json')) as f:
            report = json.load(f)
        assert (report['backend'], report['lab'], report['failed']) == ('netns', LAB, 0)
        results = report['results']
        assert len(results) >= 57 and all(r['passed'] for r in results)
        # The netns traits' expectations are in: the outside and eth0's isolation.
        names = [r['name'] for r in results]
        assert 'reach node-2 -> outside 203.0.113.1 over eth0' in names
        assert 'unreach node-1 -> node-2 over eth0' in names
        assert 'address node-1 eth0 10.0.2.15/24' in names
    finally:
        down = run_playbook('playbooks/nodes_down.yml', inventory='inventories/netns',
                            extra_vars={'lab_name': LAB})
    assert down.rc == 0, down
    assert lab_netns() == [] and not os.path.exists('/run/k8slab/' + LAB)

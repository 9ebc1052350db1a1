"""The single-host lab's machines (playbooks/netns_lab_up.yml / netns_lab_down.yml), for real.

One lab is built for the module: isolation and wiring are checked on it, then it is used through
the connection plugin (a pod with a running process, a file in /etc/cni) and torn down, and the
host must be exactly as before: root namespace links, addresses, routes, firewall, the named
namespaces and the mount table. A second lab is killed half way through its build (SIGKILL),
completed by the next run, and torn down without residue. Needs root.
"""

import json
import os
import re
import secrets
import shlex
import signal
import subprocess
import time

import pytest

from conftest import ROOT, BIN, ansible_env, ipj, run_playbook, sh

INVENTORY = os.path.join(ROOT, 'inventories', 'netns')
UP = os.path.join(ROOT, 'playbooks', 'netns_lab_up.yml')
DOWN = os.path.join(ROOT, 'playbooks', 'netns_lab_down.yml')
NODES = ['controlplane', 'node-1', 'node-2']
# Other tests on this machine create and delete their own namespaces and scratch mounts while we
# run; those are not ours to compare.
FOREIGN_MOUNT = re.compile(r'^(/tmp/|/var/tmp/)')
# libvirt (the Vagrant backend's provider) may start or stop VMs here at any time.
FOREIGN_LINK = re.compile(r'^(virbr|vnet)\d')
FOREIGN_RULE = re.compile(r'LIBVIRT|virbr\d')
# The module's lab compares the root namespace's links, routes and firewall before and after.
pytestmark = pytest.mark.exclusive


def lab_run(playbook, lab, **kw):
    return run_playbook(playbook, inventory=INVENTORY, extra_vars={'lab_name': lab}, **kw)


def node_sh(lab, node, cmd, check=True):
    """A shell command inside a node (mount + network namespace), as the plugin runs it."""
    return sh("nsenter --mount=/run/k8slab/%s/mnt/%s --uts=/run/k8slab/%s/uts/%s "
              "--net=/run/netns/%s-%s sh -c %s"
              % (lab, node, lab, node, lab, node, shlex.quote(cmd)), check=check)


def host_state(lab):
    """Everything the lab must leave as it found it."""
    def strip(entries, keys):
        entries = [e for e in entries if not FOREIGN_LINK.match(e.get('ifname', e.get('dev', '')))
                   and not FOREIGN_LINK.match(e.get('master', ''))]
        for e in entries:
            for k in keys:
                e.pop(k, None)
            for a in e.get('addr_info', []):
                a.pop('valid_life_time', None)
                a.pop('preferred_life_time', None)
        return sorted(json.dumps(e, sort_keys=True) for e in entries)

    def fw(cmd):
        out = sh(cmd + ' 2>/dev/null', check=False)
        # drop the timestamps of the comment lines and the packet counters
        return [re.sub(r'\[\d+:\d+\]', '', l) for l in out.splitlines()
                if not l.startswith('#') and not FOREIGN_RULE.search(l)]

    mounts = []
    with open('/proc/self/mountinfo') as f:
        for line in f:
            target = line.split()[4]
            if FOREIGN_MOUNT.match(target):
                continue
            if target.startswith('/run/netns/') and not target.startswith('/run/netns/%s-' % lab):
                continue
            if target.startswith('/run/k8slab/') and not target.startswith('/run/k8slab/%s' % lab):
                continue
            mounts.append(line)
    return {
        'links': strip(ipj('link show'), ()),
        'addrs': strip(ipj('addr show'), ()),
        'routes4': strip(ipj('-4 route show table all'), ('expires',)),
        'routes6': strip(ipj('-6 route show table all'), ('expires',)),
        'rules': strip(ipj('rule show'), ()),
        'iptables': fw('iptables-save'),
        'ip6tables': fw('ip6tables-save'),
        'netns': sorted(n['name'] for n in ipj('netns list') if n['name'].startswith(lab + '-')),
        'mounts': mounts,
        'lab_dir': os.path.exists('/run/k8slab/' + lab),
    }


def alive(pid):
    """Running (a zombie waiting for this machine's init to reap it is not)."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except (IOError, OSError):
        return False


def assert_same(before, after):
    for key in before:
        assert before[key] == after[key], '%s changed:\n- %s\n+ %s' % (
            key, sorted(set(before[key]) - set(after[key])) if isinstance(before[key], list)
            else before[key], sorted(set(after[key]) - set(before[key]))
            if isinstance(after[key], list) else after[key])


@pytest.fixture(scope='module')
def lab():
    name = 'kd' + secrets.token_hex(2)
    before = host_state(name)
    res = lab_run(UP, name)
    info = {}
    try:
        assert res.rc == 0, res
        info = {'name': name, 'before': before, 'up': res}
        yield info
    finally:
        lab_run(DOWN, name)
        if 'pod_pid' in info and alive(info['pod_pid']):
            os.kill(info['pod_pid'], signal.SIGKILL)  # the test's own sleeper, if teardown failed


def test_builds_nodes_without_touching_the_root_namespace(lab):
    name, before = lab['name'], lab['before']
    now = host_state(name)
    for key in ('links', 'addrs', 'routes4', 'routes6', 'rules', 'iptables', 'ip6tables'):
        assert now[key] == before[key], key
    expected = ['%s-%s' % (name, s) for s in ['host', 'hostonly', 'outside']
                + NODES + ['%s-nat' % n for n in NODES]]
    assert now['netns'] == sorted(expected)
    # pinned mount namespaces below a private bind mount
    mnt = [l.split() for l in now['mounts'] if l.split()[4].startswith('/run/k8slab/%s/' % name)]
    assert sorted(m[4] for m in mnt) == ['/run/k8slab/%s/mnt' % name] + [
        '/run/k8slab/%s/mnt/%s' % (name, n) for n in NODES] + [
        '/run/k8slab/%s/uts/%s' % (name, n) for n in NODES]
    bind = [m for m in mnt if m[4] == '/run/k8slab/%s/mnt' % name][0]
    assert not [o for o in bind[6:bind.index('-')] if o.startswith('shared')], bind


def test_nodes_look_like_the_vagrant_vms(lab):
    name = lab['name']
    eth1 = {'controlplane': '192.168.56.10', 'node-1': '192.168.56.11', 'node-2': '192.168.56.12'}
    for node in NODES:
        links = dict((l['ifname'], l) for l in json.loads(node_sh(name, node, 'ip -j addr show')))
        assert set(links) == {'lo', 'eth0', 'eth1'}, node
        v4 = dict((dev, ['%s/%s' % (a['local'], a['prefixlen'])
                         for a in links[dev]['addr_info'] if a['family'] == 'inet'])
                  for dev in links)
        assert v4['eth0'] == ['10.0.2.15/24'], node
        assert v4['eth1'] == [eth1[node] + '/24'], node
        assert 'UP' in links['lo']['flags']
        routes = json.loads(node_sh(name, node, 'ip -j route show'))
        assert {'dst': 'default', 'gateway': '10.0.2.2', 'dev': 'eth0'}.items() <= routes[0].items()
        assert node_sh(name, node, 'hostname').strip() == node
        # private directories: the node's own, backed by /run/k8slab/<lab>/nodes/<node>/...
        for path in ('/var/lib/cni', '/etc/cni', '/run/flannel', '/run/podnet'):
            src = node_sh(name, node, 'findmnt -n -o SOURCE %s' % path).strip()
            assert src.endswith('/k8slab/%s/nodes/%s%s]' % (name, node, path)), src
        assert node_sh(name, node, 'findmnt -n -o FSTYPE /run/netns').strip() == 'tmpfs'
        # no other namespace is pinned inside a node
        assert node_sh(name, node, 'findmnt -rn -t nsfs -o TARGET', check=False).strip() == ''


def test_nat_eth0_reaches_the_outside_only(lab):
    name = lab['name']
    for node in NODES:
        body = node_sh(name, node, 'curl -sS -m 5 http://203.0.113.1/')
        assert body.startswith('k8slab outside'), body
    # node-1 reaches node-2 and the host on eth1 ...
    node_sh(name, 'node-1', 'ping -c1 -W2 192.168.56.12')
    node_sh(name, 'node-1', 'ping -c1 -W2 192.168.56.1')
    assert json.loads(node_sh(name, 'node-1', 'ip -j route get 192.168.56.12'))[0]['dev'] == 'eth1'
    # ... but nothing of node-2 over eth0: that NAT network is node-1's own
    r = subprocess.run("nsenter --net=/run/netns/%s-node-1 ping -c1 -W1 -I eth0 192.168.56.12"
                       % name, shell=True, capture_output=True, check=False)
    assert r.returncode != 0, "node-2 is reachable over node-1's eth0"
    # the server saw the router's address, not 10.0.2.15: the router masquerades
    log = open('/run/k8slab/%s/outside/http.log' % name).read()
    assert '203.0.113.1' in log and '10.0.2.15' not in log, log
    # the outside cannot route back into any NAT network
    out = sh('ip -n %s-outside -j route get 10.0.2.15' % name, check=False)
    assert out == '' or json.loads(out)[0].get('type') == 'unreachable', out
    assert sh('ip netns exec %s-outside sysctl -n net.ipv4.ip_forward' % name).strip() == '0'


def test_pods_inside_a_node_are_that_nodes_own(lab):
    name = lab['name']
    node_sh(name, 'node-1', 'ip netns add kdpod')
    assert 'kdpod' in node_sh(name, 'node-1', 'ip netns list')
    assert 'kdpod' not in node_sh(name, 'node-2', 'ip netns list')
    assert 'kdpod' not in sh('ip netns list')
    # a workload in the pod, detached, with its pidfile where the pods role keeps them
    node_sh(name, 'node-1', 'mkdir -p /run/podnet/kdpod; setsid ip netns exec kdpod sleep 600 '
            '</dev/null >/dev/null 2>&1 & echo $! > /run/podnet/kdpod/pid')
    time.sleep(0.3)
    pid = int(open('/run/k8slab/%s/nodes/node-1/run/podnet/kdpod/pid' % name).read())
    assert alive(pid)
    lab['pod_pid'] = pid


def k8slab(*args):
    return subprocess.run([os.path.join(ROOT, 'scripts', 'k8slab')] + list(args),
                          capture_output=True, text=True, check=False)


def test_cli_status_and_exec(lab):
    name = lab['name']
    # give the pod an address and a host-local store entry, as the pods role would
    node_sh(name, 'node-1', 'ip link add name kdv0 type veth peer name eth0 netns kdpod && '
            'ip -n kdpod addr add 10.244.1.9/24 dev eth0')
    store = '/run/k8slab/%s/nodes/node-1/var/lib/cni/networks/cbr0' % name
    os.makedirs(store)
    with open(store + '/10.244.1.9', 'w', newline='') as f:
        f.write('kdpod\r\neth0')
    r = k8slab('--lab', name, 'status', '--json')
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    nodes = dict((n['name'], n) for n in data['nodes'])
    assert sorted(nodes) == sorted(NODES)
    assert nodes['node-2']['addresses'] == {'eth0': ['10.0.2.15/24'], 'eth1': ['192.168.56.12/24']}
    assert nodes['node-1']['pods'] == [{'name': 'kdpod', 'ip': '10.244.1.9/24',
                                        'store': 'cbr0:10.244.1.9', 'pid': lab['pod_pid'],
                                        'ready': None, 'status': None}]  # no pod record
    assert nodes['node-2']['pods'] == []
    table = k8slab('status', '--lab', name).stdout
    assert re.search(r'node-1/kdpod +10\.244\.1\.9/24 +cbr0:10\.244\.1\.9 +%d' % lab['pod_pid'],
                     table), table

    r = k8slab('--lab', name, 'exec', 'node-2', '--', 'sh', '-c', 'hostname; ip -j -4 addr show dev eth1')
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == 'node-2'
    assert json.loads(r.stdout.splitlines()[1])[0]['addr_info'][0]['local'] == '192.168.56.12'
    r = k8slab('--lab', name, 'exec', 'node-1/kdpod', '--', 'ip', '-j', '-4', 'addr', 'show', 'dev', 'eth0')
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0]['addr_info'][0]['local'] == '10.244.1.9'
    r = k8slab('--lab', name, 'exec', 'node-2/kdpod', '--', 'true')
    assert r.returncode != 0 and "no pod 'kdpod'" in r.stderr, r.stderr
    r = k8slab('--lab', name, 'exec', 'node-7', '--', 'true')
    assert r.returncode != 0 and "no node 'node-7'" in r.stderr, r.stderr
    r = k8slab('--lab', name + 'x', 'status')
    assert r.returncode == 1 and 'is not up' in r.stderr, r.stderr


def test_rerun_changes_nothing(lab):
    res = lab_run(UP, lab['name'])
    assert res.rc == 0 and res.changed == 0, res
    res = lab_run(UP, lab['name'], check=True)
    assert res.rc == 0 and res.changed == 0, res


def test_connection_plugin_reaches_node_private_paths(lab):
    play = """
- hosts: node-1
  gather_facts: false
  tasks:
    - name: dir
      ansible.builtin.file: {path: /etc/cni/net.d, state: directory, mode: "0755"}
    - name: conf
      ansible.builtin.copy: {dest: /etc/cni/net.d/10-kd.conf, content: "{{ inventory_hostname }}\\n", mode: "0644"}
"""
    res = run_playbook(play, inventory=INVENTORY, extra_vars={'lab_name': lab['name']})
    assert res.rc == 0, res
    assert node_sh(lab['name'], 'node-1', 'cat /etc/cni/net.d/10-kd.conf') == 'node-1\n'
    assert not os.path.exists('/etc/cni/net.d/10-kd.conf')


def test_teardown_leaves_the_host_as_it_was(lab):
    name = lab['name']
    # The outside's server keeps running in a namespace that lost its name: its pidfile
    # still finds it.
    server = int(open('/run/k8slab/%s/outside/http.pid' % name).read())
    assert alive(server)
    sh('ip netns del %s-outside' % name)
    res = lab_run(DOWN, name)
    assert res.rc == 0, res
    killed = res.task('k8slab.podnet.netns_lab : Remove lab %s' % name)['killed']
    assert any(k.endswith(' sleep') for k in killed), killed
    assert not alive(lab['pod_pid']), "the pod's workload survived"
    assert not alive(server), "the outside's server survived"
    assert_same(lab['before'], host_state(name))
    res = lab_run(DOWN, name)
    assert res.rc == 0 and res.changed == 0, res


def test_a_killed_build_is_completed_by_the_next_run():
    name = 'kd' + secrets.token_hex(2)
    before = host_state(name)
    cmd = [os.path.join(BIN, 'ansible-playbook'), '-i', INVENTORY, UP,
           '-e', json.dumps({'lab_name': name})]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ansible_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        # kill it as soon as the first bridge exists, while the links are being made
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if subprocess.run(['ip', '-n', '%s-hostonly' % name, 'link', 'show', 'dev', 'br0'],
                              capture_output=True, check=False).returncode == 0:
                break
            time.sleep(0.05)
        assert proc.poll() is None, 'the build ended before it could be killed'
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert subprocess.run(['nsenter', '--net=/run/netns/%s-node-2' % name, 'ip', '-j', 'addr',
                               'show', 'dev', 'eth0'], capture_output=True, check=False).stdout.strip() \
            in (b'', b'[]'), 'the build was not killed half way'

        res = lab_run(UP, name)
        assert res.rc == 0 and res.changed > 0, res
        assert node_sh(name, 'node-2', 'curl -sS -m 5 http://203.0.113.1/').startswith('k8slab')
        node_sh(name, 'node-2', 'ping -c1 -W2 192.168.56.10')
        res = lab_run(UP, name)
        assert res.rc == 0 and res.changed == 0, res
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        res = lab_run(DOWN, name)
    assert res.rc == 0, res
    assert_same(before, host_state(name))


@pytest.mark.parametrize('bad', ['kd' + 'x' * 20, 'kd_bad', 'KdBad', 'kd-', 'kd/x'])
def test_bad_lab_name_fails_before_anything_is_built(bad):
    res = lab_run(UP, bad)
    assert res.rc != 0
    msg = json.dumps(res.data)
    assert json.dumps(bad)[1:-1] in msg, msg[-2000:]
    assert not os.path.exists('/run/k8slab/' + bad)
    assert not [n for n in ipj('netns list') if n['name'].startswith(bad + '-')]

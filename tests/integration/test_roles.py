"""The roles (topology, node, cni, hostgw, pods) and their playbooks on a real single-host lab.

One throwaway lab (``kf<hex>``, built by playbooks/netns_lab_up.yml, removed by
netns_lab_down.yml even when a test fails) is shared by the tests of this module, which run in
order: build, inspect, idempotence and check mode, drift repair, comparison with the real CNI
bridge plugin, teardown. State is read straight from the nodes' namespaces (``ip -j``, files),
never through the roles' own code or the verify role.
"""

import base64
import hashlib
import json
import os
import re
import secrets
import shlex

import pytest
import yaml

from conftest import ROOT, run_playbook, sh

INV = 'inventories/netns'
NODES = {'controlplane': ('192.168.56.10', '10.244.0'), 'node-1': ('192.168.56.11', '10.244.1'),
         'node-2': ('192.168.56.12', '10.244.2')}


def _load(path):
    with open(os.path.join(ROOT, path)) as f:
        return yaml.safe_load(f)


# The default inventory's pods and, per node, their names in lab_pods order (the role makes the
# sandboxes in that order, so host-local hands them .2, .3, ...).
DEFAULT_PODS = _load('inventories/topology.yml')['lab_pods']
PODS = dict((node, [p['name'] for p in DEFAULT_PODS if p['node'] == node]) for node in NODES)
STORE = '/var/lib/cni/networks/cbr0/'


def lab_netns(lab):
    return [n['name'] for n in json.loads(sh('ip -j netns list') or '[]')
            if n['name'].startswith(lab + '-')]


TOPOLOGY_TASK = 'k8slab.podnet.topology : Check the lab topology before anything is built'
# validate.yml's own checks before the topology role's (the backend's traits, the inventory's
# nodes): read from the playbook so a new check there does not need a test change.
VALIDATE_CHECKS = [t['name'] for t in _load('playbooks/validate.yml')[0]['pre_tasks']]


def task_like(res, fragment, host):
    """The result of the one task of host whose name contains fragment."""
    found = [t for t in res.tasks(host) if fragment in t['task']]
    assert len(found) == 1, [t['task'] for t in res.tasks(host)]
    return found[0]


def changed_tasks(res, host):
    return [t['task'] for t in res.tasks(host) if t.get('changed')]


def pod_veth(pod):
    return 'veth' + hashlib.sha256(pod.encode()).hexdigest()[:8]


def alive(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except (IOError, OSError):
        return False


def pod_netns(lab, node):
    return sorted(n['name'] for n in lab.ipj(node, 'netns list'))


class Lab(object):
    def __init__(self, name):
        self.name = name

    def play(self, playbook, check=False, extra=None, diff=False):
        extra_vars = dict({'lab_name': self.name}, **(extra or {}))
        return run_playbook(playbook, inventory=INV, check=check, diff=diff,
                            extra_vars=extra_vars)

    def sh(self, node, cmd, check=True):
        """A shell command inside a node (its network and mount namespaces)."""
        return sh('nsenter --mount=/run/k8slab/%s/mnt/%s --net=/run/netns/%s-%s -- sh -c %s'
                  % (self.name, node, self.name, node, shlex.quote(cmd)), check=check)

    def read(self, node, path):
        """A file of a node, byte for byte (text mode would turn the store's CR LF into LF)."""
        return base64.b64decode(self.sh(node, 'base64 < %s' % shlex.quote(path))).decode()

    def ipj(self, node, args):
        out = self.sh(node, 'ip -j ' + args)
        return json.loads(out) if out.strip() else []

    def record(self, node, pod):
        """The pod's record on its node, /run/podnet/pods/POD/pod.json (docs/pods.md)."""
        return json.loads(self.read(node, '/run/podnet/pods/%s/pod.json' % pod))

    def pid(self, node, pod, container=None):
        """The pid of a container of the pod (the shorthand's one container by default)."""
        return [c['pid'] for c in self.record(node, pod)['containers']
                if c['name'] == (container or pod)][0]


@pytest.fixture(scope='module')
def lab():
    lab = Lab('kf' + secrets.token_hex(3))
    try:
        up = lab.play('playbooks/netns_lab_up.yml')
        assert up.rc == 0, up
        yield lab
    finally:
        down = lab.play('playbooks/netns_lab_down.yml')
        assert down.rc == 0, down
        assert lab_netns(lab.name) == []


@pytest.fixture(scope='module')
def built(lab):
    res = lab.play('playbooks/cluster.yml')
    assert res.rc == 0 and res.failed == 0, res
    assert res.changed > 0
    return lab


@pytest.mark.parametrize('bad, fragments', [
    ({'lab_nodes': {'controlplane': {'eth1_ip': '192.168.56.10', 'pod_cidr': '10.244.0.0/23'},
                    'node-1': {'eth1_ip': '192.168.56.11', 'pod_cidr': '10.244.1.0/24'},
                    'node-2': {'eth1_ip': '192.168.56.12', 'pod_cidr': '10.244.2.0/24'}}},
     ['10.244.0.0/23', '10.244.1.0/24', 'overlaps']),
    ({'lab_pods': [{'name': 'web', 'node': 'node-7', 'workload': 'httpd'}]},
     ['web', 'node-7']),
    ({'lab_pods': [{'name': 'web', 'node': 'node-1'}, {'name': 'web', 'node': 'node-1'}]},
     ['duplicate pod name web on node node-1']),
    ({'lab_nodes': {'controlplane': {'eth1_ip': '192.168.56.10', 'pod_cidr': '10.244.0.0/24'},
                    'node-1': {'eth1_ip': '10.9.9.11', 'pod_cidr': '10.244.1.0/24'},
                    'node-2': {'eth1_ip': '192.168.56.10', 'pod_cidr': '10.244.2.0/24'}}},
     ['10.9.9.11', 'outside hostonly_cidr', 'same eth1_ip 192.168.56.10']),
    ({'lab_nodes': {'controlplane': {'eth1_ip': '192.168.56.10', 'pod_cidr': '10.244.0.0/24'},
                    'node-1': {'eth1_ip': '192.168.56.11', 'pod_cidr': '10.244.1.0/24'}}},
     ['host node-2', 'no lab_nodes entry']),
    ({'lab_name': 'kf-a-lab-name-far-too-long'}, ['kf-a-lab-name-far-too-long']),
])
def test_bad_topology_fails_before_anything_is_built(bad, fragments):
    """site.yml with bad inventory data stops in validate.yml: a message naming the values,
    and no namespace, mount or directory of the lab exists afterwards."""
    name = 'kf' + secrets.token_hex(3)
    res = run_playbook('site.yml', inventory=INV, extra_vars=dict({'lab_name': name}, **bad))
    assert res.rc != 0, res
    msg = res.task(TOPOLOGY_TASK)['msg']
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)
    # Only validate.yml ran: its earlier checks passed and changed nothing, the role's
    # argument check aside; the topology check failed last; no task ran on any node.
    ran = res.tasks()
    assert ran[-1]['task'] == TOPOLOGY_TASK and ran[-1].get('failed'), ran[-1]
    assert [t['task'] for t in ran[:-1] if 'validate_args_context' not in t] == VALIDATE_CHECKS
    assert not [t['task'] for t in ran[:-1] if t.get('failed') or t.get('changed')]
    assert not [t['task'] for node in NODES for t in res.tasks(node)]
    assert lab_netns(name) == [] and not os.path.exists('/run/k8slab/' + name)


def test_nodes_forward_and_carry_flannel_files(built):
    for node, (eth1, net) in NODES.items():
        assert built.sh(node, 'cat /proc/sys/net/ipv4/ip_forward').strip() == '1'
        cni0 = built.ipj(node, '-d addr show dev cni0')[0]
        assert cni0['linkinfo']['info_kind'] == 'bridge' and cni0['mtu'] == 1500
        assert [(a['local'], a['prefixlen']) for a in cni0['addr_info']
                if a['family'] == 'inet'] == [(net + '.1', 24)]
        # kube-flannel's cni-conf.json (docs/cni.md): bridge, subnet, MTU and masquerading
        # come from subnet.env at every ADD, so the file is the same on every node.
        conf = json.loads(built.sh(node, 'cat /etc/cni/net.d/10-flannel.conflist'))
        assert conf == {
            'name': 'cbr0', 'cniVersion': '0.3.1',
            'plugins': [
                {'type': 'flannel', 'delegate': {'hairpinMode': True, 'isDefaultGateway': True}},
                {'type': 'portmap', 'capabilities': {'portMappings': True}}]}
        assert built.sh(node, 'cat /run/flannel/subnet.env') == (
            'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=%s.1/24\nFLANNEL_MTU=1500\n'
            'FLANNEL_IPMASQ=true\n' % net)


def test_hostgw_routes_like_flannel(built):
    for node in NODES:
        routes = built.ipj(node, '-4 route show table main')
        hostgw = sorted((r['dst'], r.get('gateway'), r['dev'], r.get('protocol', 'boot'))
                        for r in routes if r['dst'].startswith('10.244.') and 'gateway' in r)
        assert hostgw == sorted((net + '.0/24', eth1, 'eth1', 'boot')
                                for peer, (eth1, net) in NODES.items() if peer != node)
        own = NODES[node][1] + '.0/24'
        assert [r['dev'] for r in routes if r['dst'] == own] == ['cni0']


def test_pods_wired_and_addressed_like_bridge_and_host_local(built):
    for node, pods in PODS.items():
        net = NODES[node][1]
        assert pod_netns(built, node) == sorted(pods)
        for i, pod in enumerate(pods):
            ip = '%s.%d' % (net, i + 2)
            # The CNI container id is the sandbox's (docs/pods.md), as seed 000 shows.
            sandbox = built.record(node, pod)['sandbox']
            assert re.match('^[0-9a-f]{64}$', sandbox['id']), sandbox
            assert built.read(node, STORE + ip) == '%s\r\neth0' % sandbox['id']
            eth0 = built.ipj(node, '-n %s addr show dev eth0' % pod)[0]
            assert [(a['local'], a['prefixlen']) for a in eth0['addr_info']
                    if a['family'] == 'inet'] == [(ip, 24)]
            routes = sorted((r['dst'], r.get('gateway'), r['dev'])
                            for r in built.ipj(node, '-n %s -4 route show' % pod))
            assert routes == sorted([('default', net + '.1', 'eth0'),
                                     ('10.244.0.0/16', net + '.1', 'eth0'),
                                     (net + '.0/24', None, 'eth0')])
            # The host end is a cni0 port with hairpin on.
            peer = eth0['link_index']
            port = [p for p in json.loads(built.sh(node, 'bridge -j -d link show'))
                    if p['ifindex'] == peer]
            assert port and port[0]['master'] == 'cni0' and port[0]['hairpin'] is True, port
        assert built.read(node, STORE + 'last_reserved_ip.0') == '%s.%d' % (net, len(pods) + 1)


def test_httpd_serves_from_its_pod(built):
    page = built.sh('node-1', 'curl -sf --max-time 5 http://10.244.1.2/')
    assert 'pod httpd on node node-1' in page
    # From a pod on another node: across host-gw routes, never NATed.
    page = built.sh('node-2', 'ip netns exec client-2 curl -sf --max-time 5 http://10.244.1.2/')
    assert 'pod httpd on node node-1' in page
    pid = built.pid('node-1', 'httpd')
    assert os.readlink('/proc/%d/ns/net' % pid) == built.sh(
        'node-1', 'ip netns exec httpd readlink /proc/self/ns/net').strip()


def test_second_run_and_check_mode_change_nothing(built):
    res = built.play('playbooks/cluster.yml')
    assert res.rc == 0 and res.changed == 0, res
    res = built.play('playbooks/cluster.yml', check=True, diff=True)
    assert res.rc == 0 and res.changed == 0, res


def test_check_mode_reports_drift_without_repairing_it(built):
    built.sh('node-2', 'ip route del 10.244.1.0/24')
    try:
        res = built.play('playbooks/cluster.yml', check=True)
        assert res.rc == 0 and res.changed == 1, res
        assert task_like(res, 'k8slab.podnet.hostgw : Make the host-gw routes',
                         'node-2')['changed'] is True
        assert not built.ipj('node-2', 'route show 10.244.1.0/24')
    finally:
        built.sh('node-2', 'ip route replace 10.244.1.0/24 via 192.168.56.11 dev eth1')


def test_drift_is_repaired(built):
    old_pid = built.pid('node-1', 'httpd')
    old_sandbox = built.record('node-1', 'client-1')['sandbox']
    last = built.read('node-1', STORE + 'last_reserved_ip.0')
    built.sh('node-1', 'kill %d' % old_pid)
    built.sh('node-1', 'ip netns del client-1')  # takes its veth pair with it
    built.sh('node-2', 'ip route del 10.244.0.0/24; echo 0 > /proc/sys/net/ipv4/ip_forward')
    built.sh('controlplane', 'rm /run/flannel/subnet.env')
    res = built.play('playbooks/cluster.yml')
    assert res.rc == 0, res
    assert res.changed >= 5, res
    assert built.sh('node-2', 'cat /proc/sys/net/ipv4/ip_forward').strip() == '1'
    assert built.ipj('node-2', 'route show 10.244.0.0/24')[0]['gateway'] == '192.168.56.10'
    assert 'FLANNEL_SUBNET=10.244.0.1/24' in built.sh('controlplane', 'cat /run/flannel/subnet.env')
    # client-1's sandbox is rebuilt as a kubelet does (docs/pods.md): a new sandbox id, the
    # old id's address released first, the new one as host-local hands it (round robin).
    sandbox = built.record('node-1', 'client-1')['sandbox']
    assert sandbox['id'] != old_sandbox['id']
    ip = '10.244.1.%d' % (int(last.rsplit('.', 1)[1]) + 1)
    eth0 = built.ipj('node-1', '-n client-1 addr show dev eth0')[0]
    assert [a['local'] for a in eth0['addr_info'] if a['family'] == 'inet'] == [ip]
    assert built.read('node-1', STORE + ip) == '%s\r\neth0' % sandbox['id']
    assert old_sandbox['ip'].split('/')[0] not in built.sh('node-1', 'ls ' + STORE).split()
    # The killed httpd container is restarted (restart policy Always) in its sandbox.
    assert built.pid('node-1', 'httpd') != old_pid
    assert 'pod httpd' in built.sh(
        'node-1', 'ip netns exec client-1 curl -sf --max-time 5 http://10.244.1.2/')
    res = built.play('playbooks/cluster.yml')
    assert res.rc == 0 and res.changed == 0, res


def test_real_plugins_with_the_node_conflist_make_the_same_pod(built):
    """The real CNI plugins, run by k8slab.podnet.cni_attachment from the node's own
    kube-flannel conflist (flannel's delegate expanded from subnet.env), add a pod on node-2
    next to the role's client-2: same routes, same kind of cni0 port, and an address from the
    same store (round robin after the role's allocation)."""
    play = ('- hosts: node-2\n  gather_facts: false\n  tasks:\n    - name: attach\n'
            '      k8slab.podnet.cni_attachment:\n        state: "{{ st }}"\n'
            '        attachments: [{container_id: cniref, netns: /run/netns/cniref}]\n')
    # node-2's pods hold .2, .3, ... in lab_pods order: host-local's round robin goes on after.
    ip = '10.244.2.%d' % (len(PODS['node-2']) + 2)
    built.sh('node-2', 'ip netns add cniref')
    try:
        res = built.play(play, extra={'st': 'present'})
        assert res.rc == 0, res
        result = res.task('attach', host='node-2')['attachments'][0]['result']
        assert result['ips'][0]['address'] == ip + '/24', result
        assert built.read('node-2', STORE + ip) == 'cniref\r\neth0'

        def pod_view(pod):
            eth0 = built.ipj('node-2', '-n %s -d link show dev eth0' % pod)[0]
            routes = sorted((r['dst'], r.get('gateway'), r['dev'], r.get('protocol'),
                             r.get('scope')) for r in built.ipj('node-2', '-n %s -4 route' % pod))
            port = [p for p in json.loads(built.sh('node-2', 'bridge -j -d link show'))
                    if p['ifindex'] == eth0['link_index']][0]
            return {'mtu': eth0['mtu'], 'kind': eth0['linkinfo']['info_kind'],
                    'routes': routes, 'master': port['master'], 'hairpin': port['hairpin']}
        assert pod_view('cniref') == pod_view('client-2')
    finally:
        res = built.play(play, extra={'st': 'absent'})
        built.sh('node-2', 'ip netns del cniref', check=False)
    assert res.rc == 0, res
    # The plugins left the node as the roles want it.
    res = built.play('playbooks/cluster.yml')
    assert res.rc == 0 and res.changed == 0, res


def test_pods_on_node_is_what_the_node_makes(built):
    """The role's pods_on_node option (this node's pods, long form) is what its modules get,
    not the inventory's lab_pods: given node-2's pods but one, a check-mode run would remove
    that one there, and change nothing (check mode). (An extra var gives every node that
    list; only node-2's result is read.)"""
    mine = [p for p in DEFAULT_PODS if p['node'] == 'node-2']
    gone, kept = mine[0]['name'], [dict(p, node='node-2') for p in mine[1:]]
    before = pod_netns(built, 'node-2')
    res = built.play('playbooks/cluster.yml', check=True, extra={'pods_on_node': kept})
    assert res.rc == 0, res
    sandbox = task_like(res, 'Keep a sandbox per pod', 'node-2')
    assert sandbox['removed'] == [gone] and sandbox['created'] == [], sandbox
    assert pod_netns(built, 'node-2') == before


def test_pod_taken_out_of_the_inventory_is_removed(built):
    pid = built.pid('node-1', 'httpd')
    dns = built.pid('controlplane', 'kube-dns', 'dnsmasq')
    pods = [p for p in DEFAULT_PODS if p['name'] != 'client-1']
    res = built.play('playbooks/cluster.yml', extra={'lab_pods': pods})
    assert res.rc == 0, res
    # client-1's sandbox goes (processes, namespace, veth, record), then its address; the
    # cluster DNS forgets its pod name (new configuration, dnsmasq restarted). Nothing else.
    assert changed_tasks(res, 'node-1') == [
        'k8slab.podnet.pods : Keep a sandbox per pod, rebuild broken ones, remove pods taken out '
        'of the inventory',
        'k8slab.podnet.pods : Release their addresses in the host-local store'], res
    assert changed_tasks(res, 'node-2') == [], res
    assert changed_tasks(res, 'controlplane') == [
        "k8slab.podnet.services : Write the DNS pod's dnsmasq configuration (the Services' and "
        "their endpoint pods' names)",
        "k8slab.podnet.services : Restart the DNS pods' containers with the new configuration"], res
    restarted = built.record('controlplane', 'kube-dns')
    assert restarted['ready'] == '1/1' and restarted['containers'][0]['pid'] != dns, restarted
    assert not alive(dns)
    left = sorted(p['name'] for p in pods if p['node'] == 'node-1')
    assert pod_netns(built, 'node-1') == left
    assert built.sh('node-1', 'ls /run/podnet/pods').split() == left
    ips = dict((built.record('node-1', pod)['sandbox']['ip'].split('/')[0], pod) for pod in left)
    assert built.sh('node-1', 'ls ' + STORE).split() == sorted(ips) + ['last_reserved_ip.0', 'lock']
    for ip, pod in ips.items():
        assert built.read('node-1', STORE + ip) == '%s\r\neth0' % built.record(
            'node-1', pod)['sandbox']['id']
    assert sorted(l['ifname'] for l in built.ipj('node-1', 'link show')
                  if l['ifname'].startswith('veth')) == sorted(pod_veth(p) for p in left)
    assert built.pid('node-1', 'httpd') == pid
    res = built.play('playbooks/cluster.yml', extra={'lab_pods': pods})
    assert res.rc == 0 and res.changed == 0, res


def test_teardown_removes_the_pod_network(built):
    httpd = built.record('node-1', 'httpd')
    pids = [httpd['sandbox']['pid'], httpd['containers'][0]['pid']]
    assert [pid for pid in pids if alive(pid)] == pids
    res = built.play('playbooks/teardown.yml')
    assert res.rc == 0, res
    for node in NODES:
        assert pod_netns(built, node) == []
        links = [l['ifname'] for l in built.ipj(node, 'link show')]
        assert 'cni0' not in links and not [l for l in links if l.startswith('veth')]
        assert not [r for r in built.ipj(node, '-4 route show')
                    if r['dst'].startswith('10.244.')]
        assert built.sh(node, 'ls /etc/cni/net.d /run/flannel /run/podnet').split() == [
            '/etc/cni/net.d:', '/run/flannel:', '/run/podnet:']
        assert built.sh(node, 'ls /var/lib/cni/networks/cbr0').split() == [
            'last_reserved_ip.0', 'lock']
    assert not [pid for pid in pids if alive(pid)], 'httpd pause/container still run: %s' % pids
    res = built.play('playbooks/teardown.yml')
    assert res.rc == 0 and res.changed == 0, res

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
import secrets
import shlex

import pytest

from conftest import run_playbook, sh

INV = 'inventories/netns'
NODES = {'controlplane': ('192.168.56.10', '10.244.0'), 'node-1': ('192.168.56.11', '10.244.1'),
         'node-2': ('192.168.56.12', '10.244.2')}
# Pods of the default inventory, in lab_pods order (host-local hands out .2, .3, ... in order).
PODS = {'controlplane': ['client-0'], 'node-1': ['httpd', 'client-1'], 'node-2': ['client-2']}


def lab_netns(lab):
    return [n['name'] for n in json.loads(sh('ip -j netns list') or '[]')
            if n['name'].startswith(lab + '-')]


TOPOLOGY_TASK = 'k8slab.podnet.topology : Check the lab topology before anything is built'


def task_like(res, fragment, host):
    """The result of the one task of host whose name contains fragment."""
    found = [t for t in res.tasks(host) if fragment in t['task']]
    assert len(found) == 1, [t['task'] for t in res.tasks(host)]
    return found[0]


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
    assert [t['task'] for t in res.tasks()] == [TOPOLOGY_TASK]
    assert lab_netns(name) == [] and not os.path.exists('/run/k8slab/' + name)


def test_nodes_forward_and_carry_flannel_files(built):
    for node, (eth1, net) in NODES.items():
        assert built.sh(node, 'cat /proc/sys/net/ipv4/ip_forward').strip() == '1'
        cni0 = built.ipj(node, '-d addr show dev cni0')[0]
        assert cni0['linkinfo']['info_kind'] == 'bridge' and cni0['mtu'] == 1500
        assert [(a['local'], a['prefixlen']) for a in cni0['addr_info']
                if a['family'] == 'inet'] == [(net + '.1', 24)]
        conf = json.loads(built.sh(node, 'cat /etc/cni/net.d/10-flannel.conflist'))
        assert conf == {
            'name': 'cbr0', 'cniVersion': '0.3.1',
            'plugins': [
                {'type': 'bridge', 'bridge': 'cni0', 'isGateway': True, 'isDefaultGateway': True,
                 'hairpinMode': True, 'ipMasq': False, 'mtu': 1500,
                 'ipam': {'type': 'host-local', 'ranges': [[{'subnet': net + '.0/24'}]],
                          'routes': [{'dst': '10.244.0.0/16'}],
                          'dataDir': '/var/lib/cni/networks'}},
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
        store = '/var/lib/cni/networks/cbr0/'
        for i, pod in enumerate(pods):
            ip = '%s.%d' % (net, i + 2)
            assert built.read(node, store + ip) == '%s\r\neth0' % pod
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
        assert built.read(node, store + 'last_reserved_ip.0') == '%s.%d' % (net, len(pods) + 1)


def test_httpd_serves_from_its_pod(built):
    page = built.sh('node-1', 'curl -sf --max-time 5 http://10.244.1.2/')
    assert 'pod httpd on node node-1' in page
    # From a pod on another node: across host-gw routes, never NATed.
    page = built.sh('node-2', 'ip netns exec client-2 curl -sf --max-time 5 http://10.244.1.2/')
    assert 'pod httpd on node node-1' in page
    pid = int(built.sh('node-1', 'cat /run/podnet/httpd/pid'))
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
        assert task_like(res, 'host-gw routes', 'node-2')['changed'] is True
        assert not built.ipj('node-2', 'route show 10.244.1.0/24')
    finally:
        built.sh('node-2', 'ip route replace 10.244.1.0/24 via 192.168.56.11 dev eth1')


def test_drift_is_repaired(built):
    old_pid = int(built.sh('node-1', 'cat /run/podnet/httpd/pid'))
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
    # client-1 keeps its address: the store still holds it for the same container.
    eth0 = built.ipj('node-1', '-n client-1 addr show dev eth0')[0]
    assert [a['local'] for a in eth0['addr_info'] if a['family'] == 'inet'] == ['10.244.1.3']
    assert int(built.sh('node-1', 'cat /run/podnet/httpd/pid')) != old_pid
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
    built.sh('node-2', 'ip netns add cniref')
    try:
        res = built.play(play, extra={'st': 'present'})
        assert res.rc == 0, res
        result = res.task('attach', host='node-2')['attachments'][0]['result']
        assert result['ips'][0]['address'] == '10.244.2.3/24', result
        assert built.read('node-2', '/var/lib/cni/networks/cbr0/10.244.2.3') == 'cniref\r\neth0'

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


def test_pod_taken_out_of_the_inventory_is_removed(built):
    pid = int(built.sh('node-1', 'cat /run/podnet/httpd/pid'))
    pods = [{'name': 'httpd', 'node': 'node-1', 'workload': 'httpd'},
            {'name': 'client-2', 'node': 'node-2'}, {'name': 'client-0', 'node': 'controlplane'}]
    res = built.play('playbooks/cluster.yml', extra={'lab_pods': pods})
    assert res.rc == 0 and res.changed == 3, res  # workload, address, namespace of client-1
    assert pod_netns(built, 'node-1') == ['httpd']
    assert built.sh('node-1', 'ls /run/podnet /var/lib/cni/networks/cbr0').split() == [
        '/run/podnet:', 'httpd', '/var/lib/cni/networks/cbr0:', '10.244.1.2',
        'last_reserved_ip.0', 'lock']
    assert not [l for l in built.ipj('node-1', 'link show') if l['ifname'].startswith('veth')
                and l['ifname'] != pod_veth('httpd')]
    assert int(built.sh('node-1', 'cat /run/podnet/httpd/pid')) == pid
    res = built.play('playbooks/cluster.yml', extra={'lab_pods': pods})
    assert res.rc == 0 and res.changed == 0, res


def test_teardown_removes_the_pod_network(built):
    pid = int(built.sh('node-1', 'cat /run/podnet/httpd/pid'))
    assert alive(pid)
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
    assert not alive(pid), 'the httpd server %d still runs' % pid
    res = built.play('playbooks/teardown.yml')
    assert res.rc == 0 and res.changed == 0, res

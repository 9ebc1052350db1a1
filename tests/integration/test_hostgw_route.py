"""k8slab.podnet.hostgw_route on real kernels: three "nodes" on one L2 segment, real pods.

Topology (all namespaces created here, named kc<hex>-*; nothing touches the root namespace):

    switch ns: br0 -- n1, n2, n3 (veth peers of each node's eth1), 192.168.56.0/24
    node i (n1..n3): eth1 192.168.56.1i/24, cni0 10.244.i.1/24 (a bridge), eth0 10.0.2.15/24
                     (a port-less bridge standing in for the VirtualBox NAT interface),
                     ip_forward=1
    pod i (p1..p3):  eth0 10.244.i.2/24 (veth to cni0 of node i), default via 10.244.i.1
"""

import json

import pytest

from conftest import ipj, run_playbook, sh

CIDR = '10.244.0.0/16'
N = (1, 2, 3)


class Lab(object):
    def __init__(self, prefix):
        self.prefix = prefix
        self.sw = prefix + '-sw'
        self.node = dict((i, '%s-n%d' % (prefix, i)) for i in N)
        self.pod = dict((i, '%s-p%d' % (prefix, i)) for i in N)

    def peers(self, i, exclude=(), gateways=None):
        """The host-gw peer list of node i: every other node."""
        gateways = gateways or {}
        return [{'subnet': '10.244.%d.0/24' % j, 'gateway': gateways.get(j, '192.168.56.1%d' % j)}
                for j in N if j != i and j not in exclude]

    def routes(self, i):
        return ipj('-n %s -4 route show table all' % self.node[i])

    def route(self, i, dst):
        return ipj('-n %s route show table main %s' % (self.node[i], dst))


@pytest.fixture
def lab(uid, netns_cleanup):
    lab = Lab('kc' + uid)
    netns_cleanup.extend([lab.sw] + list(lab.node.values()) + list(lab.pod.values()))
    cmds = ['ip netns add %s' % lab.sw,
            'ip -n %s link add name br0 type bridge' % lab.sw,
            'ip -n %s link set dev br0 up' % lab.sw]
    for i in N:
        n, p = lab.node[i], lab.pod[i]
        cmds += [
            'ip netns add %s' % n, 'ip netns add %s' % p,
            'ip -n %s link set dev lo up' % n, 'ip -n %s link set dev lo up' % p,
            'ip -n %s link add name eth1 type veth peer name n%d netns %s' % (n, i, lab.sw),
            'ip -n %s link set dev n%d master br0 up' % (lab.sw, i),
            'ip -n %s addr add 192.168.56.1%d/24 dev eth1' % (n, i),
            'ip -n %s link set dev eth1 up' % n,
            'ip -n %s link add name eth0 type bridge' % n,
            'ip -n %s addr add 10.0.2.15/24 dev eth0' % n,
            'ip -n %s link set dev eth0 up' % n,
            'ip -n %s link add name cni0 type bridge' % n,
            'ip -n %s addr add 10.244.%d.1/24 dev cni0' % (n, i),
            'ip -n %s link set dev cni0 up' % n,
            'ip -n %s link add name veth0 type veth peer name eth0 netns %s' % (n, p),
            'ip -n %s link set dev veth0 master cni0 up' % n,
            'ip -n %s addr add 10.244.%d.2/24 dev eth0' % (p, i),
            'ip -n %s link set dev eth0 up' % p,
            'ip -n %s route add default via 10.244.%d.1' % (p, i),
            'ip netns exec %s sysctl -qw net.ipv4.ip_forward=1' % n,
        ]
    sh(' && '.join(cmds))
    return lab


def hostgw_play(tasks):
    """A play with one hostgw_route task per (name, args); failures are kept, not fatal."""
    lines = ['- hosts: localhost', '  connection: local', '  gather_facts: false', '  tasks:']
    for name, args in tasks:
        lines += ['    - name: %s' % name,
                  '      k8slab.podnet.hostgw_route: %s' % json.dumps(args),
                  '      ignore_errors: true']
    return '\n'.join(lines) + '\n'


def args(lab, i, **kw):
    a = {'netns': lab.node[i], 'dev': 'eth1', 'cluster_cidr': CIDR, 'peers': lab.peers(i)}
    a.update(kw)
    return a


def converge(lab, check=False, **per_node):
    """Run the module on every node in one playbook; per_node overrides args per node."""
    result = run_playbook(hostgw_play([('n%d' % i, per_node.get('n%d' % i, args(lab, i)))
                                       for i in N]), check=check, diff=True)
    assert result.rc == 0 and not result.failed, result
    return result


def run_on(lab, i, check=False, **kw):
    """The result of the module on node i (the whole PlaybookResult is attached as 'run')."""
    result = run_playbook(hostgw_play([('n%d' % i, args(lab, i, **kw))]), check=check, diff=True)
    res = result.task('n%d' % i)
    res['run'] = result
    return res


def ping_ok(lab, src, dst_ip):
    return sh('ip netns exec %s ping -c 1 -W 2 %s >/dev/null && echo ok' % (lab.pod[src], dst_ip),
              check=False).strip() == 'ok'


def hops(lab, src, dst_ip):
    out = sh('ip netns exec %s traceroute -n -q 1 -w 1 %s' % (lab.pod[src], dst_ip))
    return [line.split()[1] for line in out.splitlines()[1:]]


def test_mesh_routes_like_flannel_pods_reach_each_other(lab, root_snapshot):
    root = root_snapshot()
    assert not ping_ok(lab, 3, '10.244.1.2')        # no cross-node route yet

    first = converge(lab)
    for i in N:
        res = first.task('n%d' % i)
        assert res['changed'] and len(res['added']) == 2, res
        assert res['replaced'] == res['removed'] == []
    # exactly the route `ip route add 10.244.1.0/24 via 192.168.56.11 dev eth1` makes:
    # table main, proto boot, scope global, no metric (iproute2 omits all of those)
    assert lab.route(3, '10.244.1.0/24') == [
        {'dst': '10.244.1.0/24', 'gateway': '192.168.56.11', 'dev': 'eth1', 'flags': []}]
    # no route for the node's own subnet but the connected one of cni0
    own = lab.route(3, '10.244.3.0/24')
    assert [(r['dev'], r['protocol']) for r in own] == [('cni0', 'kernel')]

    assert ping_ok(lab, 3, '10.244.1.2')
    assert hops(lab, 3, '10.244.1.2') == ['10.244.3.1', '192.168.56.11', '10.244.1.2']
    assert hops(lab, 1, '10.244.2.2') == ['10.244.1.1', '192.168.56.12', '10.244.2.2']

    second = converge(lab)
    assert second.changed == 0, second
    assert all(second.task('n%d' % i)['commands'] == [] for i in N)
    assert root_snapshot() == root


def test_purge_removes_departed_peer_and_spares_foreign_routes(lab):
    converge(lab)
    n3 = lab.node[3]
    sh('ip -n %s route add 10.244.200.0/24 via 10.244.3.9 dev cni0' % n3)   # in CIDR, other dev
    sh('ip -n %s route add 10.99.0.0/16 via 192.168.56.1 dev eth1' % n3)    # on eth1, not CIDR
    before = lab.routes(3)

    res = run_on(lab, 3, peers=lab.peers(3, exclude=(1,)))
    assert res['changed'] and res['added'] == [] and res['replaced'] == []
    assert res['removed'] == [{'dst': '10.244.1.0/24', 'gateway': '192.168.56.11', 'dev': 'eth1',
                               'route': '10.244.1.0/24 via 192.168.56.11 dev eth1'}]
    after = lab.routes(3)
    gone = [r for r in before if r not in after]
    assert gone == [{'dst': '10.244.1.0/24', 'gateway': '192.168.56.11', 'dev': 'eth1',
                     'flags': []}]
    assert [r for r in after if r not in before] == []     # foreign routes untouched
    assert not ping_ok(lab, 3, '10.244.1.2') and ping_ok(lab, 3, '10.244.2.2')

    again = run_on(lab, 3, peers=lab.peers(3, exclude=(1,)))
    assert not again['changed'], again

    # state=absent without peers removes every owned route and nothing else
    cleared = run_on(lab, 3, state='absent', peers=None)
    assert [r['dst'] for r in cleared['removed']] == ['10.244.2.0/24']
    left = lab.routes(3)
    assert lab.route(3, '10.244.200.0/24') and lab.route(3, '10.99.0.0/16')
    assert [r for r in left if r.get('dev') == 'eth1' and r['dst'].startswith('10.244.')] == []


def test_changed_gateway_or_device_is_replaced(lab):
    converge(lab)
    sh('ip -n %s addr add 192.168.56.21/24 dev eth1' % lab.node[1])    # node-1's new address

    res = run_on(lab, 3, peers=lab.peers(3, gateways={1: '192.168.56.21'}))
    assert res['changed'] and res['added'] == [] and res['removed'] == []
    assert res['replaced'] == [{'dst': '10.244.1.0/24', 'gateway': '192.168.56.21', 'dev': 'eth1',
                                'before': '10.244.1.0/24 via 192.168.56.11 dev eth1'}]
    assert res['commands'] == ['ip -n %s route replace 10.244.1.0/24 via 192.168.56.21 dev eth1'
                               % lab.node[3]]
    assert lab.route(3, '10.244.1.0/24') == [
        {'dst': '10.244.1.0/24', 'gateway': '192.168.56.21', 'dev': 'eth1', 'flags': []}]
    assert ping_ok(lab, 3, '10.244.1.2')

    # someone routed the subnet through another device: the peer's route replaces it
    sh('ip -n %s route replace 10.244.1.0/24 via 10.244.3.9 dev cni0' % lab.node[3])
    res = run_on(lab, 3)
    assert [r['before'] for r in res['replaced']] == ['10.244.1.0/24 via 10.244.3.9 dev cni0']
    assert lab.route(3, '10.244.1.0/24') == [
        {'dst': '10.244.1.0/24', 'gateway': '192.168.56.11', 'dev': 'eth1', 'flags': []}]
    assert ping_ok(lab, 3, '10.244.1.2')


def test_check_mode_changes_nothing_and_diffs(lab):
    n3 = lab.node[3]
    sh('ip -n %s route add 10.244.1.0/24 via 192.168.56.12 dev eth1' % n3)   # wrong gateway
    sh('ip -n %s route add 10.244.7.0/24 via 192.168.56.17 dev eth1' % n3)   # departed peer
    before = lab.routes(3)

    res = run_on(lab, 3, check=True)
    assert res['changed'], res['run']
    assert [r['dst'] for r in res['added']] == ['10.244.2.0/24']
    assert [r['dst'] for r in res['replaced']] == ['10.244.1.0/24']
    assert [r['dst'] for r in res['removed']] == ['10.244.7.0/24']
    assert lab.routes(3) == before
    assert res['diff']['before'].splitlines() == [
        '10.244.1.0/24 via 192.168.56.12 dev eth1',
        '10.244.3.0/24 dev cni0 proto kernel scope link',
        '10.244.7.0/24 via 192.168.56.17 dev eth1']
    assert res['diff']['after'].splitlines() == [
        '10.244.1.0/24 via 192.168.56.11 dev eth1',
        '10.244.2.0/24 via 192.168.56.12 dev eth1',
        '10.244.3.0/24 dev cni0 proto kernel scope link']

    real = run_on(lab, 3)       # the real run does what check mode predicted
    assert real['commands'] == res['commands'] and real['after'] == res['after']


BAD = [
    # (what, overrides of the args, words the message must contain)
    ('unknown device', {'dev': 'eth9'}, ["'eth9'", 'does not exist']),
    ('unknown netns', {'netns': 'kc-no-such-ns'}, ["'kc-no-such-ns'", 'does not exist']),
    ('invalid subnet', {'peers': [{'subnet': '10.244.1/33', 'gateway': '192.168.56.11'}]},
     ["'10.244.1/33'"]),
    ('host bits', {'peers': [{'subnet': '10.244.1.1/24', 'gateway': '192.168.56.11'}]},
     ["'10.244.1.1/24'", 'host bits']),
    ('invalid gateway', {'peers': [{'subnet': '10.244.1.0/24', 'gateway': '192.168.56.256'}]},
     ["'192.168.56.256'"]),
    ('outside cidr', {'peers': [{'subnet': '10.245.1.0/24', 'gateway': '192.168.56.11'}]},
     ['10.245.1.0/24 is outside cluster_cidr 10.244.0.0/16']),
    ('same subnet', {'peers': [{'subnet': '10.244.1.0/24', 'gateway': '192.168.56.11'},
                               {'subnet': '10.244.1.0/24', 'gateway': '192.168.56.12'}]},
     ['same subnet', '10.244.1.0/24']),
    ('own subnet', {'peers': [{'subnet': '10.244.3.0/24', 'gateway': '192.168.56.11'}]},
     ['10.244.3.0/24 overlaps the own pod subnet', 'cni0']),
    ('node_subnet', {'node_subnet': '10.244.1.1/24',
                     'peers': [{'subnet': '10.244.1.0/24', 'gateway': '192.168.56.11'}]},
     ['overlaps the own pod subnet 10.244.1.0/24', 'node_subnet']),
    ('off-link', {'peers': [{'subnet': '10.244.1.0/24', 'gateway': '172.16.0.11'}]},
     ['172.16.0.11', 'not on-link on eth1 of node {n3}', 'one L2 segment']),
    ('local 10.0.2.15', {'peers': [{'subnet': '10.244.1.0/24', 'gateway': '10.0.2.15'}]},
     ['10.0.2.15', 'local address of node {n3}', 'VirtualBox', 'eth1']),
    ('shared gateway', {'peers': [{'subnet': '10.244.1.0/24', 'gateway': '192.168.56.11'},
                                  {'subnet': '10.244.2.0/24', 'gateway': '192.168.56.11'}]},
     ['share gateway 192.168.56.11', 'VirtualBox', 'eth1']),
    ('bad cluster_cidr', {'cluster_cidr': '10.244.0.0/99'}, ["'10.244.0.0/99'"]),
    ('no peers', {'peers': None}, ['peers is required']),
    # issue 16: shapes ansible-core reported without naming the option, and `$` holes
    ('peers a string', {'peers': '10.244.1.0/24'},
     ["peers must be a list of dicts, got '10.244.1.0/24'"]),
    ('peers of strings', {'peers': ['10.244.1.0/24']},
     ["peers[0] must be a dict, got '10.244.1.0/24'"]),
    ('peer subnet a list', {'peers': [{'subnet': ['10.244.1.0/24'], 'gateway': '192.168.56.11'}]},
     ["peers[0].subnet must be a single value, not a list: ['10.244.1.0/24']"]),
    ('dev a list', {'dev': ['eth1']}, ["dev must be a single value, not a list: ['eth1']"]),
    ('subnet newline', {'peers': [{'subnet': '10.244.1.0/24\n', 'gateway': '192.168.56.11'}]},
     ["'10.244.1.0/24\\n'"]),
    ('gateway newline', {'peers': [{'subnet': '10.244.1.0/24', 'gateway': '192.168.56.11\n'}]},
     ["'192.168.56.11\\n'"]),
    ('cluster_cidr newline', {'cluster_cidr': '10.244.0.0/16\n'}, ["'10.244.0.0/16\\n'"]),
]


def test_bad_input_fails_naming_the_value_and_changes_nothing(lab):
    converge(lab)
    before = lab.routes(3)
    # every bad call also asks for a valid change (a new peer, purging the others), so a
    # half-applied run would show up in the route table
    extra = {'subnet': '10.244.9.0/24', 'gateway': '192.168.56.19'}
    tasks = []
    for what, over, _words in BAD:
        a = args(lab, 3, peers=[extra])
        a.update(over)
        if isinstance(a.get('peers'), list) and a['peers'] and extra not in a['peers']:
            a['peers'] = a['peers'] + [extra]
        tasks.append((what, a))
    result = run_playbook(hostgw_play(tasks), diff=True)
    for what, _over, words in BAD:
        res = result.task(what)
        assert res.get('failed'), (what, res)
        for w in words:
            assert w.format(n3=lab.node[3]) in res['msg'], (what, res['msg'])
    assert lab.routes(3) == before


def test_absent_is_satisfied_when_the_netns_is_gone(uid, netns_cleanup):
    """state=absent: a node namespace that is gone took its routes with it (it failed with
    "network namespace ... does not exist"); bad input still fails; present names the file
    of a leftover /run/netns entry."""
    gone, stale = 'he%sg' % uid, 'he%st' % uid
    netns_cleanup.append(stale)
    sh('mkdir -p /run/netns && touch /run/netns/%s' % stale)
    tasks = [('absent %s' % ns, {'netns': ns, 'dev': 'eth1', 'cluster_cidr': CIDR,
                                 'state': 'absent'}) for ns in (gone, stale)]
    tasks += [('bad cidr', {'netns': gone, 'dev': 'eth1', 'cluster_cidr': '10.244.0.0/99',
                            'state': 'absent'}),
              ('present stale', {'netns': stale, 'dev': 'eth1', 'cluster_cidr': CIDR,
                                 'peers': []})]
    result = run_playbook(hostgw_play(tasks))
    for ns in (gone, stale):
        res = result.task('absent %s' % ns)
        assert not res.get('failed') and res['changed'] is False, res
        assert res['before'] == res['after'] == [] and res['commands'] == []
    assert "'10.244.0.0/99'" in result.task('bad cidr')['msg']
    assert ('is not a network namespace: /var/run/netns/%s' % stale
            in result.task('present stale')['msg'])

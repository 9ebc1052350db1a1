"""k8slab.podnet.veth wiring real pod namespaces to a bridge in a throwaway node namespace
(needs root). Nothing here runs in, or changes, the root namespace."""

import json
import subprocess
import sys

import pytest

from conftest import ipj, root_changes, run_module, run_playbook, run_tasks, sh

M = 'k8slab.podnet.veth'


def call(args, check=False, diff=False):
    """The module's result for one call."""
    return run_module(M, args, check=check, diff=diff)[0]


ROUTES = [{'dst': 'default', 'via': '10.244.1.1'}, {'dst': '10.244.0.0/16', 'via': '10.244.1.1'}]


class Lab(object):
    """A node namespace with bridge cni0 (10.244.1.1/24) and two empty pod namespaces."""

    def __init__(self, uid):
        self.uid = uid
        self.node = 'ka%sn' % uid
        self.pods = ['ka%sp1' % uid, 'ka%sp2' % uid]
        self.veths = ['ka%sv1' % uid, 'ka%sv2' % uid]

    def pair(self, n, **extra):
        spec = {'name': self.veths[n], 'peer': 'eth0', 'peer_netns': self.pods[n],
                'addresses': ['10.244.1.%d/24' % (n + 2)], 'routes': ROUTES}
        spec.update(extra)
        return spec

    def args(self, pairs=None, **extra):
        args = {'netns': self.node, 'master': 'cni0', 'hairpin': True, 'mtu': 1500,
                'pairs': pairs if pairs is not None else [self.pair(0), self.pair(1)]}
        args.update(extra)
        return args

    def snapshot(self):
        """Every link, address and route of the lab's namespaces. Left out: the addresses
        of lo (the kernel adds 127.0.0.1 when lo first goes up and keeps it when it goes down
        again) and route flags (linkdown follows the carrier, asynchronously)."""
        out = {}
        for ns in [self.node] + self.pods:
            out[ns] = {
                'links': sorted((l['ifname'], l.get('master'), l['mtu'], 'UP' in l['flags'])
                                for l in ipj('-n %s link show' % ns)),
                'addrs': sorted('%s %s/%s' % (l['ifname'], a['local'], a['prefixlen'])
                                for l in ipj('-n %s addr show' % ns) for a in l['addr_info']
                                if a.get('scope') != 'link' and l['ifname'] != 'lo'),
                'routes': sorted(json.dumps(dict(r, flags=None), sort_keys=True)
                                 for r in ipj('-n %s route show table main' % ns)),
            }
        return out


@pytest.fixture
def lab(uid, netns_cleanup):
    lab = Lab(uid)
    netns_cleanup.extend([lab.node] + lab.pods)
    for ns in [lab.node] + lab.pods:
        sh('ip netns add %s' % ns)
    sh('ip -n {0} link add name cni0 type bridge && ip -n {0} addr add 10.244.1.1/24 dev cni0 '
       '&& ip -n {0} link set dev cni0 up'.format(lab.node))
    return lab


def link(ns, name):
    out = sh('ip -j -d -n %s addr show dev %s' % (ns, name), check=False)
    return json.loads(out)[0] if out.strip() else None


def pod_routes(ns):
    return sorted((r['dst'], r.get('gateway')) for r in ipj('-n %s route show table main' % ns)
                  if r.get('protocol') != 'kernel')


def ping(ns, target):
    return subprocess.run(['ip', 'netns', 'exec', ns, 'ping', '-c1', '-W2', target],
                          capture_output=True, check=False).returncode == 0


def assert_wired(lab, n, mtu=1500):
    host, pod = link(lab.node, lab.veths[n]), link(lab.pods[n], 'eth0')
    assert host['linkinfo']['info_kind'] == 'veth' and pod['linkinfo']['info_kind'] == 'veth'
    assert host['master'] == 'cni0'
    assert host['linkinfo']['info_slave_data']['hairpin'] is True
    assert (host['mtu'], pod['mtu']) == (mtu, mtu)
    assert 'UP' in host['flags'] and 'UP' in pod['flags']
    assert 'UP' in link(lab.pods[n], 'lo')['flags']
    assert ['%s/%s' % (a['local'], a['prefixlen']) for a in pod['addr_info']
            if a['family'] == 'inet'] == ['10.244.1.%d/24' % (n + 2)]
    assert pod_routes(lab.pods[n]) == [('10.244.0.0/16', '10.244.1.1'),
                                       ('default', '10.244.1.1')]
    # really a pair: each end points at the other
    assert host['link_index'] == pod['ifindex'] and pod['link_index'] == host['ifindex']


def test_pods_create_check_idempotent(lab):
    before = lab.snapshot()
    planned = call(lab.args(), check=True, diff=True)
    assert planned['changed'] is True, planned
    assert lab.snapshot() == before, 'check mode changed something'
    assert planned['diff']['before'] == {'%s/%s' % (lab.node, v): {'state': 'absent'}
                                         for v in lab.veths}
    assert planned['diff']['after']['%s/%s' % (lab.node, lab.veths[1])] == {
        'state': 'present', 'peer': 'eth0', 'peer_netns': lab.pods[1], 'master': 'cni0',
        'hairpin': True, 'mtu': 1500, 'peer_mtu': 1500, 'up': True, 'peer_up': True,
        'addresses': ['10.244.1.3/24'],
        'routes': [{'dst': '10.244.0.0/16', 'via': '10.244.1.1'},
                   {'dst': 'default', 'via': '10.244.1.1'}]}

    res = call(lab.args(), diff=True)
    assert res['changed'] is True, res
    assert res['commands'] == planned['commands'], 'check mode predicted other commands'
    assert res['diff'] == planned['diff']
    assert res['commands'][0] == ('ip -n {0} link add name {1} mtu 1500 type veth peer name '
                                  'eth0 netns {2} mtu 1500'.format(lab.node, lab.veths[0],
                                                                   lab.pods[0]))
    # the pod's routes come after its address and link up
    pod_cmds = [c for c in res['commands'] if c.startswith('ip -n %s ' % lab.pods[0])]
    assert pod_cmds[-2:] == ['ip -n %s route add default via 10.244.1.1 dev eth0' % lab.pods[0],
                             'ip -n %s route add 10.244.0.0/16 via 10.244.1.1 dev eth0'
                             % lab.pods[0]]
    assert_wired(lab, 0)
    assert_wired(lab, 1)
    assert ping(lab.pods[0], '10.244.1.3') and ping(lab.pods[1], '10.244.1.1')

    res = call(lab.args())
    assert res['changed'] is False and res['commands'] == [], res
    res = call(lab.args(), check=True)
    assert res['changed'] is False, res


def test_drift_is_corrected(lab):
    res = call(lab.args())
    assert res['changed'] is True, res
    p0, p1, v0, v1, node = lab.pods[0], lab.pods[1], lab.veths[0], lab.veths[1], lab.node
    sh('ip -n {n} link add name other type bridge && ip -n {n} link set dev {v0} master other && '
       'ip -n {n} link set dev {v1} down && ip -n {p1} link set dev eth0 mtu 1400 && '
       'ip -n {p0} route del 10.244.0.0/16 && ip -n {p0} addr add 10.244.1.77/24 dev eth0 && '
       'ip -n {p1} link set dev eth0 down'.format(n=node, v0=v0, v1=v1, p0=p0, p1=p1))
    drifted = lab.snapshot()
    res = call(lab.args(), check=True, diff=True)
    assert res['changed'] is True, res
    assert lab.snapshot() == drifted
    b0, a0 = res['diff']['before']['%s/%s' % (node, v0)], res['diff']['after']['%s/%s' % (node, v0)]
    assert (b0['master'], b0['hairpin'], a0['master'], a0['hairpin']) == ('other', False,
                                                                          'cni0', True)
    assert b0['addresses'] == ['10.244.1.2/24', '10.244.1.77/24']
    assert b0['routes'] == [{'dst': 'default', 'via': '10.244.1.1'}]
    b1 = res['diff']['before']['%s/%s' % (node, v1)]
    assert (b1['up'], b1['peer_up'], b1['peer_mtu']) == (False, False, 1400)

    res = call(lab.args())
    assert res['changed'] is True, res
    assert 'ip -n %s link set dev %s master cni0' % (node, v0) in res['commands']
    assert 'ip -n %s addr del 10.244.1.77/24 dev eth0' % p0 in res['commands']
    assert_wired(lab, 0)
    assert_wired(lab, 1)
    res = call(lab.args())
    assert res['changed'] is False, res

    # an MTU change reaches both ends
    res = call(lab.args(mtu=1400))
    assert res['changed'] is True
    assert_wired(lab, 0, mtu=1400)


def test_absent_removes_pair(lab):
    res = call(lab.args())
    assert res['changed'] is True and not res.get('failed'), res
    res = call({'netns': lab.node, 'name': lab.veths[0], 'state': 'absent'}, check=True)
    assert res['changed'] is True, res
    assert link(lab.node, lab.veths[0]) is not None
    res = call({'netns': lab.node, 'state': 'absent', 'pairs': [
        {'name': lab.veths[0]}, {'name': lab.veths[1], 'peer': 'eth0',
                                 'peer_netns': lab.pods[1]}]})
    assert res['changed'] is True, res
    assert res['commands'] == ['ip -n %s link del dev %s' % (lab.node, v) for v in lab.veths]
    for n in (0, 1):
        assert link(lab.node, lab.veths[n]) is None
        assert link(lab.pods[n], 'eth0') is None
    res = call({'netns': lab.node, 'name': lab.veths[0], 'state': 'absent'})
    assert res['changed'] is False, res


def test_bad_input_leaves_nothing(lab, root_snapshot):
    uid, node, pod, v = lab.uid, lab.node, lab.pods[0], lab.veths[0]
    # things in the way: a veth whose end is "eth0" in pod 2, a bridge named like a veth
    sh('ip -n {n} link add name ka{u}x type veth peer name eth0 netns {p}'.format(
        n=node, u=uid, p=lab.pods[1]))
    sh('ip -n %s link add name ka%sbr type bridge' % (node, uid))
    root = root_snapshot()
    before = lab.snapshot()
    bad = [
        # (pair overrides, top-level overrides, the value the message must name)
        ({'name': 'ka%s0123456789' % uid}, {}, 'ka%s0123456789' % uid),   # 16 bytes
        ({'name': 'ka%s/x' % uid}, {}, 'ka%s/x' % uid),
        ({'name': 'ka%s:x' % uid}, {}, 'ka%s:x' % uid),
        ({'name': 'ka%s x' % uid}, {}, 'ka%s x' % uid),
        ({'peer': 'eth0\t'}, {}, 'eth0\t'),
        ({'peer_netns': '../%s' % pod}, {}, '../%s' % pod),
        ({'peer_netns': 'ka%s..p' % uid}, {}, 'ka%s..p' % uid),
        ({'addresses': ['10.244.1.2/33']}, {}, '10.244.1.2/33'),
        ({'addresses': ['10.244.1.256/24']}, {}, '10.244.1.256/24'),
        ({'addresses': ['10.244.1.2']}, {}, '10.244.1.2'),
        ({'routes': [{'dst': '10.244.0.1/16', 'via': '10.244.1.1'}]}, {}, '10.244.0.1/16'),
        ({'routes': [{'dst': 'default', 'via': '10.244.1.x'}]}, {}, '10.244.1.x'),
        ({'peer_netns': 'ka%sgone' % uid}, {}, 'ka%sgone' % uid),
        ({}, {'netns': 'ka%sgone' % uid}, 'ka%sgone' % uid),
        ({}, {'master': 'ka%snobr' % uid}, 'ka%snobr' % uid),
        ({}, {'master': 'ka%sx' % uid}, 'ka%sx' % uid),                   # a veth, not a bridge
        ({'name': 'ka%sbr' % uid}, {}, 'ka%sbr' % uid),                   # a bridge, not a veth
        ({'peer_netns': lab.pods[1]}, {}, 'eth0'),                        # peer exists there
        ({}, {'mtu': 20}, 20),
    ]
    # (the good pair has no routes: the bad pair moved into its namespace would ask for its
    # routes again through another device - refused too, see the test below)
    calls = [lab.args(pairs=[lab.pair(1, name='ka%sok' % uid, peer='eth1', routes=[]),
                             lab.pair(0, **p)],
                      **top) for p, top, value in bad]
    for res, (p, top, value) in zip(run_tasks(M, calls), bad):
        assert res.get('failed') is True, (p, top, res)
        assert repr(value) in res['msg'], (value, res['msg'])
        assert res['commands'] == [], res
    assert lab.snapshot() == before
    assert root_changes(root, root_snapshot(), [uid, 'eth0', 'eth1', '10.244.']) == []


def test_failed_last_step_undoes_everything(lab):
    """The kernel refuses the last route (its gateway is not on-link) after the pairs were
    made, addressed and routed: every change of the run must be undone."""
    before = lab.snapshot()
    broken = lab.pair(1, routes=ROUTES + [{'dst': '10.96.0.0/12', 'via': '10.99.0.1'}])
    res = call(lab.args(pairs=[lab.pair(0), broken]))
    assert res.get('failed') is True, res
    assert '10.96.0.0/12 via 10.99.0.1' in res['msg'], res['msg']
    assert lab.snapshot() == before

    # and for corrections of an existing pair: its MTU change is rolled back
    call(lab.args(pairs=[lab.pair(0)], mtu=1400))
    drifted = lab.snapshot()
    broken = lab.pair(0, routes=ROUTES + [{'dst': '10.96.0.0/12', 'via': '10.99.0.1'}])
    res = call(lab.args(pairs=[broken]))
    assert res.get('failed') is True, res
    assert res['commands'][:2] == ['ip -n %s link set dev %s mtu 1500' % (lab.node, lab.veths[0]),
                                   'ip -n %s link set dev eth0 mtu 1500' % lab.pods[0]]
    assert lab.snapshot() == drifted


HOLDER = r'''
set -e
mount -t tmpfs k8slab-test /run/netns
ip netns add {pod}
ip link add name cni0 type bridge
ip addr add 10.244.1.1/24 dev cni0
ip link set dev cni0 up
ip link set dev lo up
echo ready
exec sleep 600
'''


def test_module_runs_inside_a_node_namespace(uid, tmp_path):
    """As in the single-host lab: the module process itself runs under
    ``nsenter --mount --net`` of a node whose pods live in its private /run/netns."""
    pod = 'ka%sq' % uid
    holder = subprocess.Popen(['unshare', '--mount', '--net', '--propagation', 'private', 'sh',
                               '-c', HOLDER.format(pod=pod)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'ready'
        wrapper = tmp_path / 'python'
        wrapper.write_text('#!/bin/sh\nexec nsenter -t %d --mount --net -- %s "$@"\n'
                           % (holder.pid, sys.executable))
        wrapper.chmod(0o755)
        pair = {'name': 'veth%s' % uid, 'peer': 'eth0', 'peer_netns': pod,
                'master': 'cni0', 'hairpin': True, 'addresses': ['10.244.1.2/24'],
                'routes': ROUTES}
        play = ('- hosts: localhost\n  connection: local\n  gather_facts: false\n'
                '  vars: {ansible_python_interpreter: "%s"}\n  tasks:\n'
                '    - {name: one, %s: %s}\n    - {name: two, %s: %s}\n'
                % (wrapper, M, json.dumps(pair), M, json.dumps(pair)))
        result = run_playbook(play)
        one, two = result.task('one'), result.task('two')
        assert one['changed'] is True and not one.get('failed'), one
        assert two['changed'] is False, two
        enter = 'nsenter -t %d --mount --net ' % holder.pid
        assert sh(enter + 'ip netns exec %s ping -c1 -W2 10.244.1.1' % pod)
        assert pod not in [n['name'] for n in ipj('netns list')], 'pod leaked into /run/netns'
    finally:
        holder.kill()
        holder.wait()


# ---- issue 16: inputs and drift people hit in the field ------------------------------

def test_two_routes_to_one_destination_refused(lab):
    """`default` and 0.0.0.0/0 are one route: asked with two gateways in one call, every run
    changed it and the last won. Refused before any change, naming both."""
    before = lab.snapshot()
    for routes in ([{'dst': 'default', 'via': '10.244.1.1'}, {'dst': '0.0.0.0/0', 'via': '10.244.1.9'}],
                   [{'dst': '10.244.0.0/16', 'via': '10.244.1.1'},
                    {'dst': '10.244.0.0/16', 'via': '10.244.1.9'}]):
        res = run_module(M, lab.args(pairs=[lab.pair(0, routes=routes)]))[0]
        words = ['%s via %s of eth0' % (r['dst'], r['via']) for r in routes]
        assert res.get('failed') is True and all(w in res['msg'] for w in words), res
        assert 'same route' in res['msg']
    assert lab.snapshot() == before


def test_names_ip_batch_reads_differently(lab):
    """'#' starts a comment in `ip -batch` and a leading quote quotes: names the kernel
    accepts behave the same whether a change runs alone or batched with others."""
    uid = lab.uid
    names = ['h#%s' % uid, "'h%s" % uid]
    pairs = [lab.pair(0, name=names[0]), lab.pair(1, name=names[1])]

    def masters():  # no shell: '#' would start a comment there too
        out = subprocess.run(['ip', '-j', '-n', lab.node, 'link', 'show'], capture_output=True,
                             text=True, check=True).stdout
        return dict((l['ifname'], l.get('master')) for l in json.loads(out))

    res = run_module(M, lab.args(pairs=pairs))[0]
    assert res['changed'] is True and not res.get('failed'), res
    assert masters()[names[0]] == masters()[names[1]] == 'cni0'
    for n in (0, 1):
        assert ping(lab.pods[n], '10.244.1.1')
    assert run_module(M, lab.args(pairs=pairs))[0]['changed'] is False
    res = run_module(M, {'netns': lab.node, 'name': names[0], 'state': 'absent'})[0]
    assert res['changed'] is True and names[0] not in masters(), res


def test_failed_second_route_restores_the_peer_namespace(lab):
    """A new pair whose second route is via an off-link gateway fails and is removed, and
    the pod namespace's lo is down again without the 127.0.0.1/8, ::1 and local routes the
    kernel gave it when the run set it up."""
    pod = lab.pods[0]

    def everything():
        return (sorted(json.dumps(dict(l, qdisc=None), sort_keys=True)
                       for l in ipj('-n %s addr show' % pod)),
                sorted(json.dumps(r, sort_keys=True) for r in ipj('-n %s route show table all' % pod)),
                sorted(json.dumps(r, sort_keys=True) for r in ipj('-n %s -6 route show table all' % pod)))
    before = everything()
    routes = [{'dst': 'default', 'via': '10.244.1.1'}, {'dst': '10.99.0.0/16', 'via': '10.250.0.1'}]
    res = run_module(M, lab.args(pairs=[lab.pair(0, routes=routes)]))[0]
    assert res.get('failed') is True and '10.250.0.1' in res['msg'], res
    assert link(lab.node, lab.veths[0]) is None
    assert everything() == before


@pytest.mark.parametrize('args, word', [
    ({'pairs': [{'name': 'x', 'peer': 'eth0', 'routes': 'default'}]},
     "pairs[0].routes must be a list of dicts, got 'default'"),
    ({'pairs': [{'name': 'x', 'peer': 'eth0', 'routes': ['default']}]},
     "pairs[0].routes[0] must be a dict, got 'default'"),
    ({'name': ['x'], 'peer': 'eth0'}, "name must be a single value, not a list: ['x']"),
    ({'name': 'x', 'peer': 'eth0\n'}, "'eth0\\n'"),
])
def test_wrong_shapes_named(lab, args, word):
    before = lab.snapshot()
    res = run_module(M, dict(args, netns=lab.node))[0]
    assert res.get('failed') is True and word in res['msg'], res
    assert lab.snapshot() == before


def test_absent_is_satisfied_when_the_netns_is_gone(uid, netns_cleanup):
    gone, stale = 'he%sg' % uid, 'he%st' % uid
    netns_cleanup.append(stale)
    sh('mkdir -p /run/netns && touch /run/netns/%s' % stale)
    for ns in (gone, stale):
        res = run_module(M, {'name': 'v0', 'netns': ns, 'state': 'absent'})[0]
        assert res['changed'] is False and not res.get('failed'), res
    res = run_module(M, {'name': 'v0', 'peer': 'eth0', 'netns': stale})[0]
    assert res['failed'] and 'is not a network namespace: /var/run/netns/%s' % stale in res['msg']


def test_absent_deletes_a_pair_whose_peer_netns_name_is_gone(lab, tmp_path):
    """`ip netns del` of a pod while something still holds its namespace leaves the host
    end paired with an end no name leads to: state=absent with that peer_netns deletes it."""
    pod, v = lab.pods[0], lab.veths[0]
    assert not run_module(M, lab.args(pairs=[lab.pair(0)]))[0].get('failed')
    hold = tmp_path / 'hold'
    hold.write_text('')
    sh('mount --bind /run/netns/%s %s && ip netns del %s' % (pod, hold, pod))
    try:
        assert link(lab.node, v) is not None  # alive, its peer in a nameless namespace
        res = run_module(M, {'netns': lab.node, 'name': v, 'peer': 'eth0', 'peer_netns': pod,
                             'state': 'absent'})[0]
        assert res['changed'] is True and link(lab.node, v) is None, res
    finally:
        sh('umount %s' % hold)

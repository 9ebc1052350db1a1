"""k8slab.podnet.bridge against real bridges in a throwaway namespace (needs root)."""

import json

import pytest

from conftest import ipj, root_changes, run_module, run_playbook, sh

M = 'k8slab.podnet.bridge'


def call(args, check=False, diff=False):
    """The module's result for one call."""
    return run_module(M, args, check=check, diff=diff)[0]


def run_tasks(module, args_list, check=False):
    """Several calls of one module in ONE playbook (failures ignored); their results."""
    tasks = ''.join('    - name: call %d\n      %s: %s\n      ignore_errors: true\n'
                    % (n, module, json.dumps(a)) for n, a in enumerate(args_list))
    play = '- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n' + tasks
    result = run_playbook(play, check=check)
    return [result.task('call %d' % n) for n in range(len(args_list))]


@pytest.fixture
def ns(uid, netns_cleanup):
    name = 'ka%s' % uid
    netns_cleanup.append(name)
    sh('ip netns add %s' % name)
    return name


def links(ns):
    return dict((l['ifname'], l) for l in ipj('-d -n %s addr show' % ns))


def state(ns, name):
    link = links(ns)[name]
    data = link['linkinfo']['info_data']
    return {'kind': link['linkinfo']['info_kind'], 'mtu': link['mtu'],
            'up': 'UP' in link['flags'], 'stp': data['stp_state'],
            'forward_delay': data['forward_delay'],
            'addresses': sorted('%s/%s' % (a['local'], a['prefixlen'])
                                for a in link['addr_info'] if a['scope'] != 'link')}


def test_create_idempotent_drift_absent(ns, uid, root_snapshot):
    root = root_snapshot()
    br = 'ka%sbr' % uid
    args = {'name': br, 'netns': ns, 'addresses': ['10.77.0.1/24', 'fd00:77::1/64'],
            'mtu': 1400, 'stp': False}
    res = call(args)
    assert res['changed'] is True, res
    # the MTU is set on the existing bridge: only then does the kernel keep it (issue 16)
    assert res['commands'][:2] == ['ip -n %s link add name %s type bridge stp_state 0' % (ns, br),
                                   'ip -n %s link set dev %s mtu 1400' % (ns, br)]
    assert state(ns, br) == {'kind': 'bridge', 'mtu': 1400, 'up': True, 'stp': 0,
                             'forward_delay': 1500,
                             'addresses': ['10.77.0.1/24', 'fd00:77::1/64']}
    assert res['after']['%s/%s' % (ns, br)]['addresses'] == ['10.77.0.1/24', 'fd00:77::1/64']

    res = call(args)
    assert res['changed'] is False and res['commands'] == [], res

    # drift: wrong MTU, a stray address, a missing one, STP on, down (which also drops
    # the IPv6 address: keep_addr_on_down is 0)
    sh('ip -n {0} link set dev {1} mtu 1500 && ip -n {0} addr del 10.77.0.1/24 dev {1} && '
       'ip -n {0} addr add 10.77.0.9/24 dev {1} && ip -n {0} link set dev {1} type bridge '
       'stp_state 1 && ip -n {0} link set dev {1} down'.format(ns, br))
    res = call(args, check=True, diff=True)
    assert res['changed'] is True
    assert state(ns, br)['mtu'] == 1500, 'check mode changed the bridge'
    key = '%s/%s' % (ns, br)
    assert res['diff']['before'][key] == {
        'state': 'present', 'addresses': ['10.77.0.9/24'], 'mtu': 1500,
        'up': False, 'stp': True, 'forward_delay': 15}
    assert res['diff']['after'][key] == {
        'state': 'present', 'addresses': ['10.77.0.1/24', 'fd00:77::1/64'], 'mtu': 1400,
        'up': True, 'stp': False, 'forward_delay': 15}
    res = call(args)
    assert res['changed'] is True
    assert state(ns, br) == {'kind': 'bridge', 'mtu': 1400, 'up': True, 'stp': 0,
                             'forward_delay': 1500,
                             'addresses': ['10.77.0.1/24', 'fd00:77::1/64']}
    res = call(args)
    assert res['changed'] is False, res

    # addresses: [] removes all; absent removes the bridge
    res = call({'name': br, 'netns': ns, 'addresses': []})
    assert res['changed'] is True and state(ns, br)['addresses'] == []
    res = call({'name': br, 'netns': ns, 'state': 'absent'}, check=True)
    assert res['changed'] is True and br in links(ns)
    res = call({'name': br, 'netns': ns, 'state': 'absent'})
    assert res['changed'] is True and br not in links(ns)
    res = call({'name': br, 'netns': ns, 'state': 'absent'})
    assert res['changed'] is False
    assert root_changes(root, root_snapshot(), [uid, '10.77.', 'fd00:77']) == []


def test_stp_forward_delay_and_list_form(ns, uid):
    b1, b2, b3 = ('ka%sb%d' % (uid, n) for n in (1, 2, 3))
    sh('ip -n %s link add name %s type bridge' % (ns, b3))
    res = call({'netns': ns, 'bridges': [
        {'name': b1, 'stp': True, 'forward_delay': 4},
        {'name': b2, 'forward_delay': 0, 'up': False},
        {'name': b3, 'state': 'absent'}]}, check=True)
    assert res['changed'] is True and set(links(ns)) == {'lo', b3}
    res = call({'netns': ns, 'bridges': [
        {'name': b1, 'stp': True, 'forward_delay': 4},
        {'name': b2, 'forward_delay': 0, 'up': False},
        {'name': b3, 'state': 'absent'}]})
    assert res['changed'] is True, res
    assert res['commands'][-1] == 'ip -n %s link del dev %s' % (ns, b3)
    assert set(links(ns)) == {'lo', b1, b2}
    s1, s2 = state(ns, b1), state(ns, b2)
    assert (s1['stp'], s1['forward_delay'], s1['up']) == (1, 400, True)
    assert (s2['stp'], s2['forward_delay'], s2['up']) == (0, 0, False)
    # STP off with a 0 s delay, and back: the kernel wants the order right
    res = call({'netns': ns, 'bridges': [
        {'name': b1, 'stp': False, 'forward_delay': 0},
        {'name': b2, 'stp': True, 'forward_delay': 2, 'up': False}]})
    assert res['changed'] is True, res
    assert (state(ns, b1)['stp'], state(ns, b1)['forward_delay']) == (0, 0)
    assert (state(ns, b2)['stp'], state(ns, b2)['forward_delay']) == (1, 200)
    res = call({'netns': ns, 'bridges': [
        {'name': b1, 'stp': False, 'forward_delay': 0},
        {'name': b2, 'stp': True, 'forward_delay': 2, 'up': False}]})
    assert res['changed'] is False, res


def test_bad_input_leaves_nothing(ns, uid, root_snapshot):
    root = root_snapshot()
    br = 'ka%sbr' % uid
    other = 'ka%sv' % uid
    sh('ip -n {0} link add name {1} type veth peer name {1}p'.format(ns, other))
    before = links(ns)
    cases = [
        ({'name': 'ka%s0123456789' % uid}, 'ka%s0123456789' % uid),   # 16 bytes
        ({'name': 'ka/%s' % uid}, 'ka/%s' % uid),
        ({'name': 'ka:%s' % uid}, 'ka:%s' % uid),
        ({'name': 'ka %s' % uid}, 'ka %s' % uid),
        ({'name': br, 'addresses': ['10.77.0.300/24']}, '10.77.0.300/24'),
        ({'name': br, 'addresses': ['10.77.0.1']}, '10.77.0.1'),
        ({'name': br, 'mtu': 10}, '10'),
        ({'name': br, 'stp': True, 'forward_delay': 1}, '1'),
        ({'name': other}, other),                                      # a veth, not a bridge
        ({'name': other, 'state': 'absent'}, other),
        ({'bridges': [{'name': br}, {'name': br + '/x'}]}, br + '/x'),
    ]
    args = [dict(a, netns=ns) for a, value in cases]
    args += [{'name': br, 'netns': 'ka%s..x' % uid}, {'name': br, 'netns': 'ka%sgone' % uid}]
    values = [v for a, v in cases] + ['ka%s..x' % uid, 'ka%sgone' % uid]
    for res, value, a in zip(run_tasks(M, args), values, args):
        assert res.get('failed') is True, (a, res)
        assert repr(value) in res['msg'] or value in res['msg'], (value, res['msg'])
    assert links(ns).keys() == before.keys()
    assert root_changes(root, root_snapshot(), [uid, '10.77.', 'fd00:77']) == []


def test_failed_step_is_undone(ns, uid):
    """The second bridge's IPv6 address is refused by the kernel (IPv6 off in this
    namespace) after the first bridge was made: the first one must be removed again."""
    sh('ip netns exec %s sysctl -qw net.ipv6.conf.all.disable_ipv6=1 '
       'net.ipv6.conf.default.disable_ipv6=1' % ns)
    b1, b2 = 'ka%sb1' % uid, 'ka%sb2' % uid
    res = call({'netns': ns, 'bridges': [
        {'name': b1, 'addresses': ['10.78.0.1/24']},
        {'name': b2, 'addresses': ['fd00:78::1/64']}]})
    assert res.get('failed') is True, res
    assert 'fd00:78::1/64' in res['msg'], res['msg']
    assert set(links(ns)) == {'lo'}


# ---- issue 16: inputs and drift people hit in the field ------------------------------

def test_mtu_kept_when_a_port_with_another_mtu_joins(uid, netns_cleanup):
    """The kernel keeps a bridge's MTU only when it was set on the existing bridge: one run
    leaves the bridge at 1400 after a 1500 port joins, and a rerun changes nothing."""
    ns = 'he%sm' % uid
    netns_cleanup.append(ns)
    sh('ip netns add %s' % ns)
    res = call({'name': 'br0', 'netns': ns, 'mtu': 1400})
    assert res['changed'] is True, res
    assert res['commands'][:2] == ['ip -n %s link add name br0 type bridge' % ns,
                                   'ip -n %s link set dev br0 mtu 1400' % ns], res
    res = run_module('k8slab.podnet.veth', {'name': 'v0', 'peer': 'v0p', 'netns': ns,
                                            'master': 'br0'})[0]
    assert res['changed'] is True and ipj('-n %s link show dev v0' % ns)[0]['mtu'] == 1500, res
    assert ipj('-n %s link show dev br0' % ns)[0]['mtu'] == 1400
    res = call({'name': 'br0', 'netns': ns, 'mtu': 1400})
    assert res['changed'] is False, res


def test_absent_is_satisfied_when_the_netns_is_gone(uid, netns_cleanup):
    gone, stale = 'he%sg' % uid, 'he%st' % uid
    netns_cleanup.append(stale)
    sh('mkdir -p /run/netns && touch /run/netns/%s' % stale)
    for ns in (gone, stale):
        res = call({'name': 'br0', 'netns': ns, 'state': 'absent'})
        assert res['changed'] is False and res['after'] == {'%s/br0' % ns: {'state': 'absent'}}, res
        res = call({'bridges': [{'name': 'br0', 'netns': ns, 'state': 'absent'}]})
        assert res['changed'] is False, res
    res = call({'name': 'br0', 'netns': gone})
    assert res['failed'] and "netns %r of bridge br0 does not exist" % gone in res['msg'], res
    res = call({'name': 'br0', 'netns': stale})
    assert res['failed'] and ("netns %r of bridge br0 is not a network namespace: "
                              "/var/run/netns/%s" % (stale, stale)) in res['msg'], res


@pytest.mark.parametrize('args, word', [
    ({'name': ['br1']}, "name must be a single value, not a list: ['br1']"),
    ({'name': 'br1', 'addresses': [['10.0.0.1/24']]},
     "addresses[0] must be a single value, not a list: ['10.0.0.1/24']"),
    ({'bridges': ['br1']}, "bridges[0] must be a dict, got 'br1'"),
    ({'bridges': 'br1'}, "bridges must be a list of dicts, got 'br1'"),
    ({'bridges': [{'name': {'n': 'br1'}}]}, "bridges[0].name must be a single value, not a dict"),
    ({'name': 'br1\n'}, "'br1\\n'"),
])
def test_wrong_shapes_named_and_nothing_made(ns, args, word):
    res = call(dict(args, netns=ns))
    assert res.get('failed') is True and word in res['msg'], res
    assert [l['ifname'] for l in ipj('-n %s link show' % ns)] == ['lo']

"""k8slab.podnet.netns_lab_nat in real namespaces (needs root): a router masquerades, endpoints
never forward; reruns change nothing; a rule that cannot be added leaves nothing made."""

import pytest

from conftest import run_module, run_tasks, sh

M = 'k8slab.podnet.netns_lab_nat'


def forwarding(ns):
    return sh('ip netns exec %s cat /proc/sys/net/ipv4/ip_forward' % ns).strip()


def masquerades(ns):
    """The POSTROUTING rules of the nat table, as iptables-save prints them."""
    return [line for line in sh('ip netns exec %s iptables-save -t nat' % ns).splitlines()
            if line.startswith('-A POSTROUTING')]


@pytest.fixture
def spaces(uid, netns_cleanup):
    """A router namespace, a second router and an endpoint namespace, forwarding set opposite
    to what the module wants."""
    names = dict(router='kn%sr' % uid, other='kn%so' % uid, endpoint='kn%se' % uid)
    netns_cleanup.extend(names.values())
    for ns in names.values():
        sh('ip netns add %s' % ns)
    sh('ip netns exec %s sysctl -qw net.ipv4.ip_forward=1' % names['endpoint'])
    return names


RULE = '-A POSTROUTING -s 10.0.2.0/24 -o wan0 -j MASQUERADE'


def test_router_masquerades_endpoint_never_forwards_rerun_unchanged(spaces):
    args = dict(routers=[{'netns': spaces['router'], 'out_iface': 'wan0',
                          'source': '10.0.2.15/24'}], endpoints=[spaces['endpoint']])
    checked = run_module(M, args, check=True)[0]
    assert checked['changed'] and len(checked['commands']) == 3, checked
    assert (forwarding(spaces['router']), forwarding(spaces['endpoint'])) == ('0', '1')
    assert masquerades(spaces['router']) == []

    res = run_module(M, args, diff=True)[0]
    assert res['commands'] == checked['commands'], res
    assert 'ip netns exec %s sysctl -w net.ipv4.ip_forward=1' % spaces['router'] in \
        res['commands']
    assert (forwarding(spaces['router']), forwarding(spaces['endpoint'])) == ('1', '0')
    assert masquerades(spaces['router']) == [RULE]
    again = run_module(M, args)[0]
    assert again['changed'] is False and again['commands'] == [], again


def test_bad_input_and_a_failed_rule_leave_nothing_made(spaces):
    good = {'netns': spaces['router'], 'out_iface': 'wan0'}
    # iptables refuses an interface name longer than IFNAMSIZ: the second rule fails after
    # the first was added, and the run takes the first back and writes no sysctl.
    bad_iface = {'netns': spaces['other'], 'out_iface': 'w' * 20}
    results = run_tasks(M, [
        {'routers': [good, bad_iface], 'endpoints': [spaces['endpoint']]},
        {'routers': [dict(good, source='10.0.2.0/33')]},
        {'routers': [{'netns': 'kn-none-%s' % spaces['router'], 'out_iface': 'wan0'}]},
    ])
    assert results[0].get('failed') and 'w' * 20 in results[0]['msg'], results[0]
    assert masquerades(spaces['router']) == [] and masquerades(spaces['other']) == []
    assert (forwarding(spaces['router']), forwarding(spaces['endpoint'])) == ('0', '1')
    assert results[1].get('failed') and "'10.0.2.0/33'" in results[1]['msg'], results[1]
    assert results[2].get('failed') and 'kn-none-' in results[2]['msg'], results[2]

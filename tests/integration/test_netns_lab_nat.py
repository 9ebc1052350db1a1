"""k8slab.podnet.netns_lab_nat in real namespaces (needs root): a router masquerades, endpoints
never forward; reruns change nothing; bad input is refused before anything changes, and a rule
that cannot be added leaves nothing made."""

import os
import shutil

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


def test_one_router_namespace_two_ways_out_and_a_router_listed_twice(spaces):
    r = spaces['router']
    routers = [{'netns': r, 'out_iface': 'wan0', 'source': '10.0.2.0/24'},
               {'netns': r, 'out_iface': 'wan1', 'source': '10.0.3.0/24'},
               {'netns': r, 'out_iface': 'wan0', 'source': '10.0.2.0/24'}]
    first, again = run_tasks(M, [{'routers': routers}] * 2)
    assert first['changed'] and not again['changed'], (first, again)
    assert masquerades(r) == [RULE, '-A POSTROUTING -s 10.0.3.0/24 -o wan1 -j MASQUERADE']


def test_bad_input_changes_nothing(spaces):
    r, e = spaces['router'], spaces['endpoint']
    results = run_tasks(M, [
        {'routers': [{'netns': r, 'out_iface': 'w' * 20}]},
        {'routers': [], 'endpoints': ['../netns/' + e]},
        {'routers': [{'netns': r, 'out_iface': 'wan0', 'source': '10.0.2.0/33'}]},
        {'routers': [{'netns': r, 'out_iface': 'wan0'}], 'endpoints': [r]},
        {'routers': [{'netns': 'kn-none-%s' % r, 'out_iface': 'wan0'}]},
    ])
    for res, words in zip(results, (
            ['routers[0].out_iface', 'w' * 20], ['endpoints[0]', "'../netns/%s'" % e],
            ["'10.0.2.0/33'"], [r, 'router', 'endpoint'], ['kn-none-'])):
        assert res.get('failed'), res
        for w in words:
            assert w in res['msg'], (w, res['msg'])
    assert masquerades(r) == [] and (forwarding(r), forwarding(e)) == ('0', '1')


def test_a_rule_that_cannot_be_added_takes_back_the_ones_before_it(spaces, tmp_path):
    """Valid input iptables would take: the failure is injected. A wrapper on PATH runs the
    real iptables, except for -A in the second router's namespace, which fails."""
    wrapper = tmp_path / 'iptables'
    wrapper.write_text('#!/bin/sh\n'
                       'if [ "$(ip netns identify)" = "%s" ]; then\n'
                       '  for a in "$@"; do [ "$a" = -A ] && { echo injected >&2; exit 4; }; done\n'
                       'fi\nexec %s "$@"\n' % (spaces['other'], shutil.which('iptables')))
    wrapper.chmod(0o755)
    res = run_tasks(M, [{'routers': [{'netns': spaces['router'], 'out_iface': 'wan0'},
                                     {'netns': spaces['other'], 'out_iface': 'wan0'}],
                         'endpoints': [spaces['endpoint']]}],
                    env={'PATH': '%s:%s' % (tmp_path, os.environ['PATH'])})[0]
    assert res.get('failed') and 'injected' in res['msg'] and spaces['other'] in res['msg'], res
    assert masquerades(spaces['router']) == [] and masquerades(spaces['other']) == []
    assert (forwarding(spaces['router']), forwarding(spaces['endpoint'])) == ('0', '1')

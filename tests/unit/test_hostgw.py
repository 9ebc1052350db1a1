"""Route diffing of k8slab.podnet.hostgw_route (plugins/module_utils/hostgw.py), no root needed.

The route tables below are ``ip -j -4 route show table main`` output as iproute2 6.1 prints
it for a lab node (node-2: eth0 NAT 10.0.2.15, eth1 192.168.56.12, cni0 10.244.2.1/24).
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), '.collections'))

from ansible_collections.k8slab.podnet.plugins.module_utils.hostgw import (  # noqa: E402
    HostgwError, cidr_view, normalize, plan, route_text)

CIDR = '10.244.0.0/16'
NODE2 = [
    {'dst': 'default', 'gateway': '10.0.2.2', 'dev': 'eth0', 'flags': []},
    {'dst': '10.0.2.0/24', 'dev': 'eth0', 'protocol': 'kernel', 'scope': 'link',
     'prefsrc': '10.0.2.15', 'flags': []},
    {'dst': '10.244.2.0/24', 'dev': 'cni0', 'protocol': 'kernel', 'scope': 'link',
     'prefsrc': '10.244.2.1', 'flags': []},
    {'dst': '192.168.56.0/24', 'dev': 'eth1', 'protocol': 'kernel', 'scope': 'link',
     'prefsrc': '192.168.56.12', 'flags': []},
]
ADDRS = [('127.0.0.1', 'lo'), ('10.0.2.15', 'eth0'), ('192.168.56.12', 'eth1'),
         ('10.244.2.1', 'cni0')]
PEERS = [{'subnet': '10.244.0.0/24', 'gateway': '192.168.56.10'},
         {'subnet': '10.244.1.0/24', 'gateway': '192.168.56.11'}]


def route(dst, gw, dev='eth1', **extra):
    r = {'dst': dst, 'gateway': gw, 'dev': dev, 'flags': []}
    r.update(extra)
    return r


def run(routes=None, peers=(), **kw):
    routes = NODE2 if routes is None else routes
    peers = PEERS if peers == () else peers
    return plan(routes, ADDRS, kw.pop('dev', 'eth1'), peers, kw.pop('cidr', CIDR),
                node='node-2', **kw)


def cmds(result):
    return [' '.join(args) for args, _undo in result['changes']]


def test_normalize_fills_iproute2_defaults():
    r = normalize(route('10.244.1.0/24', '192.168.56.11'))
    assert (r['protocol'], r['scope'], r['metric'], r['type']) == ('boot', 'global', 0, 'unicast')
    assert route_text(r) == '10.244.1.0/24 via 192.168.56.11 dev eth1'
    assert route_text(normalize(NODE2[2])) == '10.244.2.0/24 dev cni0 proto kernel scope link'
    assert normalize({'dst': '10.244.9.7', 'dev': 'eth1'})['dst'] == '10.244.9.7/32'


def test_adds_one_route_per_peer_like_flannel():
    r = run()
    assert cmds(r) == ['route add 10.244.0.0/24 via 192.168.56.10 dev eth1',
                       'route add 10.244.1.0/24 via 192.168.56.11 dev eth1']
    # each add is undone by deleting exactly that route
    assert r['changes'][0][1] == ['route', 'del', '10.244.0.0/24', 'via', '192.168.56.10',
                                  'dev', 'eth1']
    assert r['added'] == [{'dst': '10.244.0.0/24', 'gateway': '192.168.56.10', 'dev': 'eth1'},
                          {'dst': '10.244.1.0/24', 'gateway': '192.168.56.11', 'dev': 'eth1'}]
    assert r['replaced'] == r['removed'] == []
    assert r['before'] == ['10.244.2.0/24 dev cni0 proto kernel scope link']
    assert r['after'] == ['10.244.0.0/24 via 192.168.56.10 dev eth1',
                          '10.244.1.0/24 via 192.168.56.11 dev eth1',
                          '10.244.2.0/24 dev cni0 proto kernel scope link']


def test_nothing_to_do_when_routes_match():
    routes = NODE2 + [route('10.244.0.0/24', '192.168.56.10'),
                      route('10.244.1.0/24', '192.168.56.11')]
    r = run(routes)
    assert r['changes'] == [] and r['before'] == r['after']


@pytest.mark.parametrize('old', [
    route('10.244.1.0/24', '192.168.56.99'),                       # other gateway
    route('10.244.1.0/24', '10.0.2.2', dev='eth0'),                # other device
    route('10.244.1.0/24', '192.168.56.11', protocol='static'),    # other protocol
    route('10.244.1.0/24', '192.168.56.11', flags=['onlink']),     # onlink flag
])
def test_replaces_a_route_to_the_subnet_that_differs(old):
    r = run(NODE2 + [route('10.244.0.0/24', '192.168.56.10'), old])
    assert cmds(r) == ['route replace 10.244.1.0/24 via 192.168.56.11 dev eth1']
    assert r['replaced'] == [{'dst': '10.244.1.0/24', 'gateway': '192.168.56.11', 'dev': 'eth1',
                              'before': route_text(normalize(old))}]
    assert r['removed'] == []          # the replaced route is gone, not purged on top
    assert r['changes'][0][1][:2] == ['route', 'replace']   # undo puts the old one back
    assert route_text(normalize(old)) not in r['after']


def test_purge_removes_only_owned_routes():
    foreign = [
        route('10.244.200.0/24', '10.244.2.9', dev='cni0'),        # in CIDR, other device
        route('10.99.0.0/16', '192.168.56.1'),                     # on eth1, outside CIDR
        route('0.0.0.0/1', '192.168.56.1'),
    ]
    stale = [route('10.244.7.0/24', '192.168.56.17'),              # peer that left
             route('10.244.1.0/24', '192.168.56.11', metric=5)]    # stale metric
    r = run(NODE2 + foreign + stale + [route('10.244.0.0/24', '192.168.56.10')])
    assert cmds(r) == ['route add 10.244.1.0/24 via 192.168.56.11 dev eth1',
                       'route del 10.244.7.0/24 via 192.168.56.17 dev eth1',
                       'route del 10.244.1.0/24 via 192.168.56.11 dev eth1 metric 5']
    assert [x['route'] for x in r['removed']] == [
        '10.244.7.0/24 via 192.168.56.17 dev eth1',
        '10.244.1.0/24 via 192.168.56.11 dev eth1 metric 5']
    # undo of a delete re-adds the route with its metric
    assert r['changes'][2][1] == ['route', 'add', '10.244.1.0/24', 'via', '192.168.56.11',
                                  'dev', 'eth1', 'metric', '5']
    assert '10.244.200.0/24 via 10.244.2.9 dev cni0' in r['after']


def test_purge_false_keeps_stale_routes():
    r = run(NODE2 + [route('10.244.7.0/24', '192.168.56.17')], purge=False)
    assert r['removed'] == [] and len(r['added']) == 2


def test_connected_route_on_dev_is_never_owned():
    routes = NODE2 + [{'dst': '10.244.9.0/24', 'dev': 'eth1', 'protocol': 'kernel',
                       'scope': 'link', 'prefsrc': '10.244.9.1', 'flags': []}]
    assert run(routes, peers=[])['changes'] == []


def test_state_absent_listed_and_all():
    routes = NODE2 + [route('10.244.0.0/24', '192.168.56.10'),
                      route('10.244.1.0/24', '192.168.56.11'),
                      route('10.99.0.0/16', '192.168.56.1')]
    one = run(routes, peers=[{'subnet': '10.244.1.0/24'}], state='absent')
    assert cmds(one) == ['route del 10.244.1.0/24 via 192.168.56.11 dev eth1']
    every = run(routes, peers=None, state='absent')
    assert cmds(every) == ['route del 10.244.0.0/24 via 192.168.56.10 dev eth1',
                           'route del 10.244.1.0/24 via 192.168.56.11 dev eth1']
    assert run(NODE2, peers=None, state='absent')['changes'] == []


def bad(peers, **kw):
    with pytest.raises(HostgwError) as e:
        run(peers=peers, **kw)
    return str(e.value)


@pytest.mark.parametrize('peers,words', [
    ([{'subnet': '10.244.1.1/24', 'gateway': '192.168.56.11'}], ["'10.244.1.1/24'", 'host bits']),
    ([{'subnet': 'ten', 'gateway': '192.168.56.11'}], ["'ten'"]),
    ([{'subnet': '10.244.1.0/24', 'gateway': '192.168.56.300'}], ["'192.168.56.300'"]),
    ([{'subnet': '10.244.1.0/24'}], ['10.244.1.0/24 has no gateway']),
    ([{'subnet': '10.245.1.0/24', 'gateway': '192.168.56.11'}],
     ['10.245.1.0/24 is outside cluster_cidr 10.244.0.0/16']),
    ([{'subnet': '10.244.1.0/24', 'gateway': '192.168.56.11'},
      {'subnet': '10.244.1.0/24', 'gateway': '192.168.56.10'}], ['same subnet', '10.244.1.0/24']),
    ([{'subnet': '10.244.0.0/23', 'gateway': '192.168.56.11'},
      {'subnet': '10.244.1.0/24', 'gateway': '192.168.56.10'}], ['overlapping', '10.244.0.0/23']),
    ([{'subnet': '10.244.2.0/24', 'gateway': '192.168.56.11'}],
     ['10.244.2.0/24 overlaps the own pod subnet 10.244.2.0/24 of node node-2',
      'connected route on cni0']),
    ([{'subnet': '10.244.1.0/24', 'gateway': '10.0.3.11'}],
     ['gateway 10.0.3.11', 'not on-link on eth1 of node node-2', 'one L2 segment',
      '192.168.56.0/24']),
    ([{'subnet': '10.244.1.0/24', 'gateway': '10.0.2.15'}],
     ['gateway 10.0.2.15', 'local address of node node-2 (on eth0)', 'VirtualBox', 'eth1']),
    ([{'subnet': '10.244.1.0/24', 'gateway': '192.168.56.12'}],
     ['192.168.56.12', 'local address', 'VirtualBox']),
    ([{'subnet': '10.244.0.0/24', 'gateway': '192.168.56.11'},
      {'subnet': '10.244.1.0/24', 'gateway': '192.168.56.11'}],
     ['10.244.0.0/24 and 10.244.1.0/24 share gateway 192.168.56.11', 'VirtualBox', 'eth1']),
    ([{'subnet': '10.244.1.0/24', 'gateway': '192.168.56.255'}],
     ['gateway 192.168.56.255', 'broadcast address']),
])
def test_bad_peers_are_refused_with_the_value_named(peers, words):
    msg = bad(peers)
    for w in words:
        assert w in msg


def test_bad_cluster_cidr_and_node_subnet():
    assert "'10.244.0.0/33'" in bad(PEERS, cidr='10.244.0.0/33')
    assert "'10.244.1.0/16'" in bad(PEERS, cidr='10.244.1.0/16')
    assert 'IPv4' in bad(PEERS, cidr='fd00::/48')
    msg = bad(PEERS, node_subnet='10.244.1.1/24')     # FLANNEL_SUBNET form is accepted
    assert 'overlaps the own pod subnet 10.244.1.0/24' in msg and '(node_subnet)' in msg
    assert "'nope'" in bad(PEERS, node_subnet='nope')


def test_gateway_reachable_only_through_an_owned_route_is_off_link():
    # an owned scope-link route may be purged, so it does not make a gateway on-link
    routes = NODE2 + [{'dst': '10.244.9.0/24', 'dev': 'eth1', 'scope': 'link', 'flags': []}]
    assert 'not on-link' in bad([{'subnet': '10.244.1.0/24', 'gateway': '10.244.9.5'}],
                                routes=routes)


def test_all_problems_reported_at_once():
    with pytest.raises(HostgwError) as e:
        run(peers=[{'subnet': '10.245.0.0/24', 'gateway': '1.2.3.4'},
                   {'subnet': 'x', 'gateway': '1.2.3.4'}])
    assert len(e.value.errors) == 2


def test_cidr_view_sorts_by_address():
    view = cidr_view([route('10.244.10.0/24', '192.168.56.20'), route('10.244.9.0/24', '1.1.1.1'),
                      route('10.99.0.0/16', '1.1.1.1')], CIDR)
    assert view == ['10.244.9.0/24 via 1.1.1.1 dev eth1', '10.244.10.0/24 via 192.168.56.20 dev eth1']

"""module_utils/rtnl.py against ``ip -j -d`` on real namespaces (needs root): the same links,
flags, masters, peers, hairpin, addresses, routes and namespace ids, key for key."""

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, sh

sys.path.insert(0, os.path.join(ROOT, '.collections'))
from ansible_collections.k8slab.podnet.plugins.module_utils import iproute  # noqa: E402
from ansible_collections.k8slab.podnet.plugins.module_utils import rtnl  # noqa: E402

LINK_KEYS = ('ifindex', 'ifname', 'mtu', 'txqlen', 'operstate', 'master', 'link',
             'link_index', 'link_netnsid', 'address')
ADDR_KEYS = ('family', 'local', 'prefixlen', 'scope', 'broadcast', 'label')
ROUTE_KEYS = ('dst', 'gateway', 'dev', 'metric', 'type', 'protocol', 'scope')


@pytest.fixture
def spaces(uid, netns_cleanup):
    """node: a bridge with two addresses, a hairpin port whose peer is eth0 in pod, a veth pair
    inside node that stays down; pod: eth0 with IPv4 and IPv6 addresses, a default route, a
    route with a metric, a host route, a blackhole; a leftover /run/netns entry."""
    node, pod, stale = 'kr%sn' % uid, 'kr%sp' % uid, 'kr%ss' % uid
    netns_cleanup.extend([node, pod, stale])
    sh(' && '.join([
        'ip netns add %s' % node, 'ip netns add %s' % pod,
        'ip -n %s link add br0 type bridge' % node,
        'ip -n %s link add v1 mtu 1450 type veth peer name eth0 netns %s' % (node, pod),
        'ip -n %s link set v1 master br0' % node,
        'ip -n %s link set v1 type bridge_slave hairpin on' % node,
        'ip -n %s link add x1 type veth peer name x2' % node,
        'ip -n %s addr add 10.1.0.1/24 dev br0' % node,
        'ip -n %s addr add 10.1.0.2/24 dev br0' % node,
        'ip -n %s link set br0 up && ip -n %s link set v1 up' % (node, node),
        'ip -n %s link set lo up && ip -n %s link set eth0 up' % (pod, pod),
        'ip -n %s addr add 10.1.0.5/24 broadcast 10.1.0.255 dev eth0' % pod,
        'ip -n %s addr add fd00::5/64 nodad dev eth0' % pod,
        'ip -n %s route add default via 10.1.0.1' % pod,
        'ip -n %s route add 10.9.0.0/16 via 10.1.0.1 metric 50' % pod,
        'ip -n %s route add 10.8.0.1 dev eth0' % pod,
        'ip -n %s route add blackhole 10.7.0.0/16' % pod,
        'ip -n %s -6 route add fd01::/64 via fd00::1 dev eth0' % pod,
        'touch /run/netns/%s' % stale]))
    return node, pod, stale


def ip_json(ns, *args):
    out = subprocess.run(['ip', '-j', '-d', '-n', ns] + list(args), capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out) if out.strip() else []


def subset(entry, keys):
    return dict((k, entry.get(k)) for k in keys)


def test_reads_what_ip_prints(spaces, uid):
    node, pod, stale = spaces
    for ns in (node, pod):
        links, routes, routes6, ids = rtnl.read(ns, v6=True)
        theirs = ip_json(ns, 'addr', 'show')
        assert [subset(l, LINK_KEYS) for l in links] == [subset(l, LINK_KEYS) for l in theirs]
        for mine, ip_link in zip(links, theirs):
            assert set(mine['flags']) == set(ip_link['flags']), (mine, ip_link)
            info, ip_info = mine.get('linkinfo') or {}, ip_link.get('linkinfo') or {}
            assert subset(info, ('info_kind', 'info_slave_kind')) == \
                subset(ip_info, ('info_kind', 'info_slave_kind'))
            assert (info.get('info_slave_data') or {}).get('hairpin') == \
                (ip_info.get('info_slave_data') or {}).get('hairpin')
            assert [subset(a, ADDR_KEYS) for a in mine['addr_info']] == \
                [subset(a, ADDR_KEYS) for a in ip_link['addr_info']]
            assert iproute.link_addresses(mine) == iproute.link_addresses(ip_link)
        for mine, family in ((routes, '-4'), (routes6, '-6')):
            assert [subset(r, ROUTE_KEYS) for r in mine] == [
                subset(r, ROUTE_KEYS) for r in ip_json(ns, family, 'route', 'show', 'table',
                                                       'main')]
        listed = json.loads(subprocess.run(['ip', '-j', '-n', ns, 'netns', 'list'],
                                           capture_output=True, text=True, check=True).stdout)
        # only ours: other tests may add or delete namespaces between the two reads
        assert sorted(repr(i) for i in ids if uid in i['name']) == \
            sorted(repr(i) for i in listed if uid in i['name'])
    # what the fixture made is there to compare: the assertions above saw it
    by_name = dict((l['ifname'], l) for l in rtnl.read(node)[0])
    assert by_name['v1']['linkinfo']['info_slave_data'] == {'hairpin': True}
    assert by_name['v1']['master'] == 'br0' and by_name['v1']['mtu'] == 1450
    assert 'M-DOWN' in by_name['x1']['flags'] and by_name['x1']['link'] == 'x2'
    assert {'name': stale} in rtnl.read(node)[3]


def test_a_namespace_that_is_not_there_is_named(uid):
    with pytest.raises(rtnl.RtnlError, match='kr%sz' % uid):
        rtnl.read('kr%sz' % uid)

"""The verify role's filters (plugins/filter/verify.py): the checks derived from the inventory
encode the seed's results, targets resolve from the live store, selection and the report.
Pure logic, no root."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), '.collections'))

from ansible.errors import AnsibleFilterError  # noqa: E402
from ansible_collections.k8slab.podnet.plugins.filter.verify import (  # noqa: E402
    verify_checks, verify_junit, verify_probes, verify_report, verify_select, verify_table)

NODES = {
    'controlplane': {'eth1_ip': '192.168.56.10', 'pod_cidr': '10.244.0.0/24'},
    'node-1': {'eth1_ip': '192.168.56.11', 'pod_cidr': '10.244.1.0/24'},
    'node-2': {'eth1_ip': '192.168.56.12', 'pod_cidr': '10.244.2.0/24'},
}
PODS = [
    {'name': 'httpd', 'node': 'node-1', 'workload': 'httpd'},
    {'name': 'client-1', 'node': 'node-1', 'workload': 'sleep'},
    {'name': 'client-2', 'node': 'node-2', 'workload': 'sleep'},
    {'name': 'client-0', 'node': 'controlplane', 'workload': 'sleep'},
]
LAB = dict(nodes=NODES, node_order=['controlplane', 'node-1', 'node-2'], pods=PODS)
# What k8slab.podnet.node_info reads from each node's host-local store. httpd holds .3, as in
# the seed, to show that addresses come from the store, not from a guess.
FACTS = {
    'controlplane': {'ipam': {'10.244.0.2': {'container_id': 'client-0', 'ifname': 'eth0'}}},
    'node-1': {'ipam': {'10.244.1.2': {'container_id': 'client-1', 'ifname': 'eth0'},
                        '10.244.1.3': {'container_id': 'httpd', 'ifname': 'eth0'}}},
    'node-2': {'ipam': {'10.244.2.2': {'container_id': 'client-2', 'ifname': 'eth0'}}},
}


def by_name(checks):
    return dict((c['name'], c) for c in checks)


@pytest.fixture
def checks():
    return by_name(verify_checks(LAB, FACTS, dict(outside_ip='203.0.113.1')))


def test_seed_node_to_node_is_one_hop(checks):
    c = checks['path controlplane -> node-1 eth1']
    assert (c['node'], c['netns'], c['target'], c['hops']) == \
        ('controlplane', None, '192.168.56.11', ['192.168.56.11'])


def test_seed_pod_to_pod_on_one_node_is_one_hop(checks):
    c = checks['path node-1/client-1 -> node-1/httpd']
    assert (c['node'], c['netns'], c['target'], c['hops']) == \
        ('node-1', 'client-1', '10.244.1.3', ['10.244.1.3'])


def test_seed_cross_node_path(checks):
    c = checks['path node-2/client-2 -> node-1/httpd']
    assert c['hops'] == ['10.244.2.1', '192.168.56.11', '10.244.1.3']
    assert (c['node'], c['netns'], c['target']) == ('node-2', 'client-2', '10.244.1.3')


def test_every_ordered_node_pair_is_derived(checks):
    pairs = [(x, y) for x in NODES for y in NODES if x != y]
    for x, y in pairs:
        assert checks['path %s -> %s eth1' % (x, y)]['hops'] == [NODES[y]['eth1_ip']]
        assert checks['unreach %s -> %s over eth0' % (x, y)]['bind_dev'] == 'eth0'
    cross = [c for c in checks.values() if c['kind'] == 'path' and '/' in c['source']
             and c['node'] != c['to'].split('/')[0]]
    assert len(cross) == len(pairs)
    for c in cross:
        x, y = c['node'], c['to'].split('/')[0]
        gw = NODES[x]['pod_cidr'].replace('0/24', '1')
        assert c['hops'] == [gw, NODES[y]['eth1_ip'], c['target']]


def test_reach_is_linear_in_pods(checks):
    reach = [c for c in checks.values() if c['kind'] == 'reach' and '/' in c['source']]
    # each pod -> one pod on every node (itself excluded; controlplane and node-2 have one pod)
    assert len(reach) <= len(PODS) * len(NODES)
    for pod in PODS:
        targets = set(c['to'].split('/')[0] for c in reach
                      if c['source'] == '%s/%s' % (pod['node'], pod['name']))
        assert targets == set(n for n in NODES if any(
            p['node'] == n and p['name'] != pod['name'] for p in PODS))


def test_http_from_its_node_and_from_other_nodes(checks):
    http = [c for c in checks.values() if c['kind'] == 'http' and c.get('url_path') is None]
    assert sorted(c['source'] for c in http) == ['controlplane/client-0', 'node-1',
                                                 'node-2/client-2']
    assert all(c['target'] == '10.244.1.3' and c['port'] == 80 and
               c['body'] == 'pod httpd on node node-1, container httpd' for c in http)
    hello = checks['http node-1 -> node-1/httpd:80/hello']
    assert (hello['url_path'], hello['body'], hello['source']) == ('/hello', 'HELLO httpd',
                                                                   'node-1')


def test_http_checks_derive_from_every_http_container():
    pods = PODS + [{'name': 'test-pod', 'node': 'node-2', 'containers': [
        {'name': 'lab-web', 'workload': 'http', 'port': 80},
        {'name': 'lab-web-2', 'workload': 'http', 'port': 8080},
        {'name': 'side', 'workload': 'sleep'}]}]
    facts = dict((n, {'ipam': {}}) for n in NODES)
    facts['node-2']['ipam']['10.244.2.9'] = {'container_id': 'x', 'pod': 'test-pod'}
    got = dict((c['name'], c) for c in verify_checks(dict(nodes=NODES, pods=pods), facts))
    c = got['http node-1/httpd -> node-2/test-pod:8080 (lab-web-2)']
    assert (c['target'], c['port'], c['body']) == (
        '10.244.2.9', 8080, 'pod test-pod on node node-2, container lab-web-2')
    assert 'http node-2 -> node-2/test-pod:80 (lab-web)' in got
    assert got['http node-2 -> node-2/test-pod:8080/hello (lab-web-2)']['body'] == 'HELLO test-pod'
    # localhost: each container reaches every other's port, inside the pod's namespace
    local = sorted(n for n in got if n.startswith('localhost '))
    assert local == ['localhost node-2/test-pod lab-web -> lab-web-2:8080',
                     'localhost node-2/test-pod lab-web-2 -> lab-web:80',
                     'localhost node-2/test-pod side -> lab-web-2:8080',
                     'localhost node-2/test-pod side -> lab-web:80']
    c = got['localhost node-2/test-pod side -> lab-web:80']
    assert (c['netns'], c['target'], c['port'], c['body']) == (
        'test-pod', '127.0.0.1', 80, 'pod test-pod on node node-2, container lab-web')
    # pod_netns: one per container; store: one per pod, both run in the node
    c = got['pod_netns node-2/test-pod/side']
    assert (c['node'], c['netns'], c['pod'], c['container'], c['to']) == (
        'node-2', None, 'test-pod', 'side', 'node-2/test-pod/side')
    c = got['store node-2/test-pod']
    assert (c['node'], c['netns'], c['pod'], c['dev'], c['store']) == (
        'node-2', None, 'test-pod', 'eth0', '/var/lib/cni/networks/cbr0')


def test_route_checks_never_eth0(checks):
    c = checks['route node-2 -> node-1/httpd']
    assert (c['dev'], c['gateway'], c['forbid_dev']) == ('eth1', '192.168.56.11', ['eth0'])
    c = checks['route node-1 -> node-1/httpd']
    assert (c['dev'], c['gateway']) == ('cni0', '')


def test_addresses_and_outside(checks):
    assert checks['address node-2 eth0 10.0.2.15/24']['address'] == '10.0.2.15/24'
    assert checks['address node-2 cni0 10.244.2.1']['address'] == '10.244.2.1/24'
    assert checks['address node-1/httpd eth0 = store']['address'] == '10.244.1.3/24'
    assert checks['address node-1/httpd eth0 = store']['netns'] == 'httpd'
    c = checks['reach node-2 -> outside 203.0.113.1 over eth0']
    assert (c['target'], c['bind_dev']) == ('203.0.113.1', 'eth0')


def test_libvirt_drops_the_eth0_expectations():
    checks = verify_checks(LAB, FACTS, dict(nat_address='', nat_isolated=False, outside_ip=''))
    assert not [c for c in checks if c['kind'] == 'unreach' or 'eth0 10.0.2.15' in c['name']]
    assert all(c['forbid_dev'] == ['eth0'] for c in checks if c['kind'] == 'route')


def test_pod_missing_from_the_store_is_an_unresolved_check():
    facts = dict(FACTS, **{'node-1': {'ipam': {}}})
    checks = by_name(verify_checks(LAB, facts))
    c = checks['path node-2/client-2 -> node-1/httpd']
    assert c['target'] is None and 'no address in the host-local store' in c['error']
    assert c['hops'] == ['10.244.2.1', '192.168.56.11', 'node-1/httpd']
    assert 'path node-2/client-2 -> node-1/httpd' not in \
        [p['name'] for p in verify_probes(list(checks.values()), 'node-2')]
    row = by_name(verify_report([c], []))[c['name']]
    assert not row['passed'] and row['observed'] == 'not probed'
    assert row['expected'] == '10.244.2.1 192.168.56.11 node-1/httpd'


def test_extra_checks_resolve_like_the_defaults():
    extra = [dict(name='client-2 -> client-0', kind='path', source='node-2/client-2',
                  target='controlplane/client-0', hops=['10.244.2.1', '192.168.56.10',
                                                        '@target']),
             dict(name='node-2 -> node-1', kind='reach', source='node-2', target='node-1')]
    checks = by_name(verify_checks(LAB, FACTS, None, extra))
    assert checks['client-2 -> client-0']['hops'][-1] == '10.244.0.2'
    assert checks['node-2 -> node-1']['target'] == '192.168.56.11'


@pytest.mark.parametrize('bad,msg', [
    (dict(name='x', kind='ping', source='node-1', target='1.2.3.4'), "kind 'ping'"),
    (dict(name='x', kind='reach', source='node-9', target='1.2.3.4'), "source 'node-9'"),
    (dict(name='path node-1 -> node-2 eth1', kind='reach', source='node-1', target='node-2'),
     'unique'),
    (dict(kind='reach', source='node-1'), 'no'),
])
def test_bad_extra_checks_are_refused(bad, msg):
    with pytest.raises(AnsibleFilterError, match=msg):
        verify_checks(LAB, FACTS, None, [bad])


@pytest.mark.parametrize('pods', ['httpd', {'name': 'httpd'}, ['httpd']])
def test_bad_lab_pods_are_named(pods):
    # playbooks/verify.yml alone: the topology role has not validated lab_pods
    with pytest.raises(AnsibleFilterError, match='lab_pods'):
        verify_checks(dict(LAB, pods=pods), FACTS)


def test_select_by_kind_tag_and_name(checks):
    all_checks = list(checks.values())
    assert set(c['kind'] for c in verify_select(all_checks, None, '', ['path'])) == {'path'}
    assert set(c['kind'] for c in verify_select(all_checks, ['http', 'route'], '', ['all'])) \
        == {'http', 'route'}
    only = verify_select(all_checks, None, 'httpd$')
    assert only and all(c['name'].endswith('httpd') for c in only)


def test_probes_are_per_node_and_module_shaped(checks):
    probes = verify_probes(list(checks.values()), 'node-2')
    keys = {'name', 'kind', 'netns', 'target', 'hops', 'bind_dev', 'dev', 'gateway',
            'forbid_dev', 'address', 'port', 'body', 'url_path', 'status', 'endpoints',
            'requests', 'qname', 'answer', 'max_seconds', 'pod', 'container', 'store'}
    assert probes and all(set(p) <= keys for p in probes)
    assert all(checks[p['name']]['node'] == 'node-2' for p in probes)


def test_report_and_table(checks):
    c1 = checks['path node-2/client-2 -> node-1/httpd']
    c2 = checks['path node-2 -> node-1 eth1']
    results = [dict(name=c1['name'], passed=False, expected='10.244.2.1 192.168.56.11 10.244.1.3',
                    observed='10.244.2.1 10.0.2.2 !N', reason='hop 2: expected 192.168.56.11, '
                    'observed 10.0.2.2', attempts=3, duration=1.5,
                    hops=['10.244.2.1', '10.0.2.2'])]
    rows = verify_report([c1, c2], results)
    assert rows[0]['failure'] == ('path node-2/client-2 -> node-1/httpd: expected 10.244.2.1 '
                                  '192.168.56.11 10.244.1.3; observed 10.244.2.1 10.0.2.2 !N '
                                  '(hop 2: expected 192.168.56.11, observed 10.0.2.2)')
    assert rows[1]['passed'] is False and 'returned no result' in rows[1]['reason']
    table = verify_table(rows, 200).splitlines()
    assert table[0].split() == ['check', 'source', 'target', 'expected', 'observed', 'result']
    assert table[2].endswith('FAIL') and 'node-1/httpd (10.244.1.3)' in table[2]
    assert table[-1] == '2 checks: 0 passed, 2 failed'


def test_checks_grow_linearly_with_pods():
    # 200 pods: per pod an address, mtu, store and pod_netns check (one container) and one
    # reach per node, plus a fixed
    # number per node pair - a big lab still verifies in one probe call per node.
    pods = [dict(name='p%d' % i, node=sorted(NODES)[i % 3], workload='sleep') for i in range(200)]
    facts = dict((n, {'ipam': {}}) for n in NODES)
    for i, pod in enumerate(pods):
        base = NODES[pod['node']]['pod_cidr'].rsplit('.', 1)[0]
        facts[pod['node']]['ipam']['%s.%d' % (base, 2 + i // 3)] = {
            'container_id': pod['name'], 'ifname': 'eth0'}
    checks = verify_checks(dict(nodes=NODES, pods=pods), facts)
    assert len(checks) <= 7 * len(pods) + 10 * len(NODES) ** 2
    assert not [c for c in checks if c.get('error')]


def test_junit_xml_escapes_and_counts(checks):
    import xml.etree.ElementTree as ET
    c = checks['http node-2/client-2 -> node-1/httpd:80']
    rows = verify_report([c, checks['path node-2 -> node-1 eth1']], [dict(
        name=c['name'], passed=False, expected="HTTP 200 containing 'pod httpd'",
        observed='HTTP 500, 3 bytes', reason='expected <200> & "body"', attempts=3,
        duration=0.5)])
    root = ET.fromstring(verify_junit(rows))
    assert (root.get('tests'), root.get('failures')) == ('2', '2')
    cases = root.findall('testsuite/testcase')
    assert [x.get('classname') for x in cases] == ['verify.http', 'verify.path']
    failure = cases[0].find('failure')
    assert failure.get('message') == 'expected <200> & "body"'
    assert 'observed: HTTP 500, 3 bytes' in failure.text
    assert 'target: node-1/httpd (10.244.1.3)' in failure.text


def test_node_order_limits_the_checks_to_those_nodes():
    # --limit node-1,node-2: nothing from or to controlplane, its pod included.
    lab = dict(LAB, node_order=['node-1', 'node-2'])
    checks = verify_checks(lab, FACTS, dict(outside_ip='203.0.113.1'))
    assert checks and not [c for c in checks if 'controlplane' in c['name']]
    assert 'path node-2/client-2 -> node-1/httpd' in [c['name'] for c in checks]


def test_mtu_checks_every_pod_and_the_node_links():
    checks = by_name(verify_checks(dict(LAB, cni_mtu=1450), FACTS))
    mtu = [c for c in checks.values() if c['kind'] == 'mtu']
    # eth1 and cni0 of every node, eth0 of every pod (its veth end is checked with it).
    assert len(mtu) == 2 * len(NODES) + len(PODS)
    c = checks['mtu node-1/httpd eth0 1450']
    assert (c['node'], c['netns'], c['dev'], c['mtu'], c['target']) == \
        ('node-1', 'httpd', 'eth0', 1450, None)
    assert checks['mtu node-2 eth1 1450']['netns'] is None
    probe = [p for p in verify_probes(mtu, 'node-1') if p['name'] == c['name']][0]
    assert probe == dict(name=c['name'], kind='mtu', netns='httpd', dev='eth0', mtu=1450)
    # No planned MTU, no mtu checks (expectations come from the inventory only).
    assert not [c for c in verify_checks(LAB, FACTS) if c['kind'] == 'mtu']


def test_cross_node_traces_share_a_source_at_most_icmp_burst_times():
    """Ten nodes of two pods: a pod's gateway answers its traces at TTL 1, at most ICMP_BURST
    at once (then once a second), so the nine cross-node traces of a node are split between
    its pods; every ordered node pair is still traced, and a three-node lab keeps the seed's
    client as its only source."""
    from ansible_collections.k8slab.podnet.plugins.module_utils.probe import ICMP_BURST
    names = ['n%d' % i for i in range(10)]
    nodes = dict((n, {'eth1_ip': '192.168.56.%d' % (10 + i), 'pod_cidr': '10.244.%d.0/24' % i})
                 for i, n in enumerate(names))
    pods = [dict(name='%sp%d' % (n, j), node=n, workload='sleep') for n in names for j in (0, 1)]
    facts = dict((n, {'ipam': dict(('10.244.%d.%d' % (i, 2 + j), {
        'container_id': '%sp%d' % (n, j), 'ifname': 'eth0'}) for j in (0, 1))})
        for i, n in enumerate(names))
    checks = verify_checks(dict(nodes=nodes, node_order=names, pods=pods), facts)
    cross = [c for c in checks if c['kind'] == 'path' and '/' in c['source']
             and c['node'] != c['to'].split('/')[0]]
    assert sorted((c['node'], c['to'].split('/')[0]) for c in cross) == \
        sorted((x, y) for x in names for y in names if x != y)
    per_source = {}
    for c in cross:
        per_source[c['source']] = per_source.get(c['source'], 0) + 1
    assert max(per_source.values()) <= ICMP_BURST, per_source
    assert per_source['n0/n0p0'] == ICMP_BURST and per_source['n0/n0p1'] == 9 - ICMP_BURST
    seed = [c['source'] for c in verify_checks(LAB, FACTS) if c['kind'] == 'path'
            and c['node'] == 'node-1' and '/' in c['source']]
    assert set(seed) == {'node-1/client-1'}, seed

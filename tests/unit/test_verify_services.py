"""The Services' check kinds (service, nodeport, dns, outside): the checks derived from the
inventory's lab_services and lab_pods, the binomial fair-share bound, and the judgements.
Pure logic, no root."""

import os
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, '.collections'))

from ansible_collections.k8slab.podnet.plugins.filter.verify import verify_checks  # noqa: E402
from ansible_collections.k8slab.podnet.plugins.module_utils.probe import (  # noqa: E402
    ICMP_BURST, evaluate, fair_share_min)

with open(os.path.join(ROOT, 'inventories', 'topology.yml')) as f:
    TOPOLOGY = yaml.safe_load(f)
LAB = dict(nodes=TOPOLOGY['lab_nodes'], node_order=['controlplane', 'node-1', 'node-2'],
           pods=TOPOLOGY['lab_pods'], services=TOPOLOGY['lab_services'])
FACTS = {
    'controlplane': {'ipam': {'10.244.0.2': {'container_id': 'x', 'pod': 'client-0'},
                              '10.244.0.3': {'container_id': 'y', 'pod': 'kube-dns'}}},
    'node-1': {'ipam': {'10.244.1.4': {'container_id': 'z', 'pod': 'app-3'}}},
    'node-2': {'ipam': {'10.244.2.4': {'container_id': 'w', 'pod': 'app-1'}}},
}
OPTIONS = dict(outside_ip='203.0.113.1', host_side='netns', cluster_dns='10.96.0.10',
               node_dns_names={'controlplane': '192.168.56.10', 'node-1': '192.168.56.11',
                               'node-2': '192.168.56.12', 'outside': '203.0.113.1'})


@pytest.fixture
def checks():
    return dict((c['name'], c) for c in verify_checks(LAB, FACTS, OPTIONS))


def test_service_from_a_pod_on_every_node_and_hairpin(checks):
    names = [n for n in checks if n.startswith('service ')]
    assert 'service controlplane/client-0 -> test001/app-svc-clusterip:80' in names
    assert 'service node-2/client-2 -> test001/app-svc-clusterip:80' in names
    c = checks['service node-1/app-3 -> test001/app-svc-clusterip:80 (hairpin)']
    assert (c['node'], c['netns'], c['target'], c['port'], c['url_path']) == \
        ('node-1', 'app-3', '10.109.117.159', 80, '/hello')
    assert c['endpoints'] == ['app-1', 'app-2', 'app-3'] and c['requests'] == 60
    # kube-dns serves no HTTP: the dns kind covers it.
    assert not [n for n in names if 'kube-dns' in n]


def test_nodeport_from_the_host_side_to_every_node(checks):
    c = checks['nodeport host -> controlplane:30080 (test001/app-svc-nodeport:80)']
    assert (c['node'], c['netns'], c['target'], c['port']) == \
        ('host', None, '192.168.56.10', 30080)
    assert len([n for n in checks if n.startswith('nodeport ')]) == 3
    none = verify_checks(LAB, FACTS, dict(OPTIONS, host_side=''))
    assert not [c for c in none if c['kind'] == 'nodeport']


def test_dns_names(checks):
    assert checks['dns node-1/httpd app-svc-clusterip.test001.svc.cluster.local']['answer'] \
        == '10.109.117.159'
    assert checks['dns node-1/httpd app-svc-clusterip.test001']['answer'] == '10.109.117.159'
    assert checks['dns node-1/app-3 app-svc-clusterip']['netns'] == 'app-3'
    # seed 002's pod name form, from the live store
    assert checks['dns node-1/httpd 10-244-1-4.app-svc-clusterip.test001.svc.cluster.local'][
        'answer'] == '10.244.1.4'
    assert checks['dns node-1/httpd 10.96.0.10']['answer'] == \
        'kube-dns.kube-system.svc.cluster.local'
    assert checks['dns node-2 controlplane']['answer'] == '192.168.56.10'
    assert checks['dns node-2 outside']['max_seconds'] == 1.0
    assert checks['dns node-2 10.244.2.1 (reverse, at once)']['answer'] == ''


def test_outside_from_a_pod_on_every_node(checks):
    assert [n for n in checks if n.startswith('outside ')] == [
        'outside controlplane/client-0 -> 203.0.113.1', 'outside node-1/httpd -> 203.0.113.1',
        'outside node-2/client-2 -> 203.0.113.1']


def test_fair_share_bound_is_binomial():
    # 60 requests over 3 endpoints: 20 expected, a healthy endpoint gives fewer than 7 with
    # probability below 1e-4; one endpoint must answer all; 2 endpoints at least 16.
    assert fair_share_min(60, 3) == 7
    assert fair_share_min(60, 1) == 60
    assert fair_share_min(60, 2) == 16


def probe(**kw):
    p = dict(name='s', kind='service', target='10.109.117.159', port=80, requests=60,
             endpoints=['app-1', 'app-2', 'app-3'])
    p.update(kw)
    return p


def test_service_judgement_shows_the_spread():
    ok = dict(counts={'app-1': 17, 'app-2': 23, 'app-3': 20}, errors=[], requests=60)
    passed, expected, text, _reason = evaluate(probe(), ok)
    assert passed and text == 'app-1 17, app-2 23, app-3 20 of 60'
    assert expected == 'each of app-1, app-2, app-3 >= 7 of 60'
    skewed = dict(counts={'app-1': 54, 'app-2': 6}, errors=[], requests=60)
    passed, _e, _t, reason = evaluate(probe(), skewed)
    assert not passed and 'app-2 answered 6, fewer than 7' in reason and 'app-3 answered 0' \
        in reason
    lost = dict(counts={'app-1': 5}, errors=['timed out'] * 3, requests=60)
    passed, _e, text, reason = evaluate(probe(), lost)
    assert not passed and '3 of the requests got no answer' in reason


def test_service_without_endpoints_must_refuse():
    p = probe(endpoints=[])
    passed, expected, text, _r = evaluate(p, dict(counts={}, errors=['Connection refused'],
                                                  refused=True, requests=1))
    assert passed and expected == 'no endpoints: refused' and text == 'no endpoints: refused'
    passed, _e, _t, reason = evaluate(p, dict(counts={}, errors=['timed out'], refused=False,
                                              requests=1))
    assert not passed and 'expected a refusal' in reason


def test_dns_judgement_needs_the_answer_in_time():
    p = dict(name='d', kind='dns', qname='node-1', answer='192.168.56.11', max_seconds=1.0)
    assert evaluate(p, dict(answers=['192.168.56.11'], seconds=0.05, rc=0))[0]
    passed, _e, text, reason = evaluate(p, dict(answers=['192.168.56.11'], seconds=10.2, rc=0))
    assert not passed and 'took 10.20s' in reason
    passed, _e, text, reason = evaluate(p, dict(answers=[], seconds=0.01, rc=2))
    assert not passed and text == 'no answer in 0.01s'
    any_answer = dict(p, answer='')
    assert evaluate(any_answer, dict(answers=[], seconds=0.01, rc=2))[0]


def test_refusals_are_expected_from_a_pod_whose_traces_leave_them_room():
    """kube-proxy's REJECT is an ICMP error from the node to the pod, rate-limited together
    with the TTL-1 answers to that pod's traces: with ten nodes, a node's first pods start nine
    traces between them (at most ICMP_BURST each), so the refusal checks go from a pod whose
    traces leave room for them - else one is answered with silence and passes only on a
    retry. With room (the reference lab), the usual client."""
    order = ['controlplane'] + ['node-%d' % i for i in range(1, 10)]
    nodes = dict((n, {'eth1_ip': '192.168.56.%d' % (10 + i), 'pod_cidr': '10.244.%d.0/24' % i})
                 for i, n in enumerate(order))
    pods = [{'name': 'n%dp%d' % (i, k), 'node': n} for i, n in enumerate(order) for k in range(4)]
    nobody = [{'namespace': 'default', 'name': name, 'clusterIP': ip, 'selector': {'app': 'none'},
               'ports': [{'port': 80}]}
              for name, ip in (('nobody', '10.96.100.100'), ('none', '10.96.100.101'))]
    lab = dict(nodes=nodes, node_order=order, pods=pods, services=nobody)
    checks = verify_checks(lab, {}, dict(OPTIONS, node_dns_names={}))
    traces = {}
    for c in checks:
        words = c['name'].split()
        if c['kind'] == 'path' and '/' in words[1] and \
                words[1].split('/')[0] != words[3].split('/')[0]:
            traces[c['netns']] = traces.get(c['netns'], 0) + 1
    refusals = [c for c in checks if c['kind'] == 'service']
    assert len(refusals) == 2 * len(order) and max(traces.values()) == ICMP_BURST
    for c in refusals:
        assert c['endpoints'] == [] and traces.get(c['netns'], 0) + 2 <= ICMP_BURST, \
            (c['name'], traces)
    ref = dict(LAB, services=LAB['services'] + nobody[:1])
    assert sorted(c['name'] for c in verify_checks(ref, FACTS, OPTIONS)
                  if c['kind'] == 'service' and 'nobody' in c['name']) == [
        'service controlplane/client-0 -> default/nobody:80',
        'service node-1/httpd -> default/nobody:80',
        'service node-2/client-2 -> default/nobody:80']

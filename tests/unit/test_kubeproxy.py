"""kube-proxy's rules for seed 002's services (plugins/module_utils/kubeproxy.py), no root.

SEED_CLUSTERIP is the listing of seed 002 ("一个 ClusterIP 类型的服务会产生 15 条 iptables 规则"):
the article's own iptables-save lines for test001/app-svc-clusterip with its three pods.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), '.collections'))

from ansible_collections.k8slab.podnet.plugins.module_utils.kubeproxy import (  # noqa: E402
    KubeProxyError, endpoints, normalize_services, probability_text, proxy_rules, sep_chain,
    service_port_name, svc_chain)
from ansible_collections.k8slab.podnet.plugins.module_utils.iptables import (  # noqa: E402
    listing, owned_view, parse_save, restore_table)

SEED_CLUSTERIP = '''\
:KUBE-SEP-63ULW6JC6WIZUZAX - [0:0]
:KUBE-SEP-MGLKNLMW4TUU5NXD - [0:0]
:KUBE-SEP-U4ZMXMHDO2QATTS7 - [0:0]
:KUBE-SVC-F657HDVWWTO5ELQA - [0:0]
-A KUBE-SEP-63ULW6JC6WIZUZAX -s 10.244.2.15/32 -j KUBE-MARK-MASQ
-A KUBE-SEP-63ULW6JC6WIZUZAX -p tcp -m tcp -j DNAT --to-destination 10.244.2.15:8080
-A KUBE-SEP-MGLKNLMW4TUU5NXD -s 10.244.1.19/32 -j KUBE-MARK-MASQ
-A KUBE-SEP-MGLKNLMW4TUU5NXD -p tcp -m tcp -j DNAT --to-destination 10.244.1.19:8080
-A KUBE-SEP-U4ZMXMHDO2QATTS7 -s 10.244.2.16/32 -j KUBE-MARK-MASQ
-A KUBE-SEP-U4ZMXMHDO2QATTS7 -p tcp -m tcp -j DNAT --to-destination 10.244.2.16:8080
-A KUBE-SERVICES ! -s 10.244.0.0/16 -d 10.109.117.159/32 -p tcp -m comment --comment \
"test001/app-svc-clusterip: cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ
-A KUBE-SERVICES -d 10.109.117.159/32 -p tcp -m comment --comment \
"test001/app-svc-clusterip: cluster IP" -m tcp --dport 80 -j KUBE-SVC-F657HDVWWTO5ELQA
-A KUBE-SVC-F657HDVWWTO5ELQA -m statistic --mode random --probability 0.33332999982 \
-j KUBE-SEP-MGLKNLMW4TUU5NXD
-A KUBE-SVC-F657HDVWWTO5ELQA -m statistic --mode random --probability 0.50000000000 \
-j KUBE-SEP-63ULW6JC6WIZUZAX
-A KUBE-SVC-F657HDVWWTO5ELQA -j KUBE-SEP-U4ZMXMHDO2QATTS7
'''.splitlines()

SEED_NODEPORT = [
    '-A KUBE-NODEPORTS -p tcp -m comment --comment "test001/app-svc-nodeport:" -m tcp '
    '--dport 30080 -j KUBE-MARK-MASQ',
    '-A KUBE-NODEPORTS -p tcp -m comment --comment "test001/app-svc-nodeport:" -m tcp '
    '--dport 30080 -j KUBE-SVC-CFVXM4HF2HSCB2P5',
    '-A KUBE-SERVICES -d 10.111.7.86/32 -p tcp -m comment --comment '
    '"test001/app-svc-nodeport: cluster IP" -m tcp --dport 80 -j KUBE-SVC-CFVXM4HF2HSCB2P5',
    '-A KUBE-SVC-CFVXM4HF2HSCB2P5 -m statistic --mode random --probability 0.33332999982 '
    '-j KUBE-SEP-YZPFJIVDJH5M2X7F',
    '-A KUBE-SEP-2HTJJZZDPAT4VCE2 -p tcp -m tcp -j DNAT --to-destination 10.244.2.16:8080',
]

SERVICES = [
    {'namespace': 'test001', 'name': 'app-svc-clusterip', 'clusterIP': '10.109.117.159',
     'selector': {'app': 'lab-web'}, 'ports': [{'port': 80, 'targetPort': 8080}]},
    {'namespace': 'test001', 'name': 'app-svc-nodeport', 'type': 'NodePort',
     'clusterIP': '10.111.7.86', 'selector': {'app': 'lab-web'},
     'ports': [{'port': 80, 'targetPort': 8080, 'nodePort': 30080}]},
]
PODS = [
    {'name': 'app-58866f5c7-2lj7z', 'namespace': 'test001', 'labels': {'app': 'lab-web'},
     'ip': '10.244.2.15', 'ready': '1/1', 'ports': [8080]},
    {'name': 'app-58866f5c7-2nxgh', 'namespace': 'test001', 'labels': {'app': 'lab-web'},
     'ip': '10.244.2.16/24', 'ready': True, 'containers': [{'name': 'lab-web', 'port': 8080}]},
    {'name': 'app-58866f5c7-5mhrm', 'namespace': 'test001', 'labels': {'app': 'lab-web'},
     'ip': '10.244.1.19', 'ready': '1/1', 'ports': [8080]},
]


def nat_lines(services=None, pods=None):
    services = SERVICES if services is None else services
    pods = PODS if pods is None else pods
    tables, report = proxy_rules(normalize_services(services, pods), pods, '10.244.0.0/16')
    return listing(tables['nat'], 'nat'), tables, report


def test_chain_hashes_are_the_articles():
    assert svc_chain(service_port_name('test001', 'app-svc-clusterip', ''), 'TCP') == \
        'KUBE-SVC-F657HDVWWTO5ELQA'
    assert svc_chain('test001/app-svc-nodeport:', 'TCP') == 'KUBE-SVC-CFVXM4HF2HSCB2P5'
    assert svc_chain('default/kubernetes:https', 'TCP') == 'KUBE-SVC-NPX46M4PTMTKRN6Y'
    spn = 'test001/app-svc-clusterip:'
    assert sep_chain(spn, 'TCP', '10.244.2.15:8080') == 'KUBE-SEP-63ULW6JC6WIZUZAX'
    assert sep_chain(spn, 'TCP', '10.244.1.19:8080') == 'KUBE-SEP-MGLKNLMW4TUU5NXD'
    assert sep_chain('test001/app-svc-nodeport:', 'TCP', '10.244.2.16:8080') == \
        'KUBE-SEP-2HTJJZZDPAT4VCE2'


def test_probability_prints_as_iptables_save():
    assert probability_text(1 / 3.0) == '0.33332999982'
    assert probability_text(0.5) == '0.50000000000'
    assert probability_text(0.25) == '0.25000000000'


def test_seed_clusterip_service_is_15_rules_as_in_the_article():
    lines, _tables, _report = nat_lines()
    chains = ('KUBE-SVC-F657HDVWWTO5ELQA', 'KUBE-SEP-63ULW6JC6WIZUZAX',
              'KUBE-SEP-MGLKNLMW4TUU5NXD', 'KUBE-SEP-U4ZMXMHDO2QATTS7')
    mine = [l for l in lines if any(c in l for c in chains) or '10.109.117.159' in l]
    assert mine == SEED_CLUSTERIP
    assert len(mine) == 15


def test_seed_nodeport_service_lines():
    lines, _tables, _report = nat_lines()
    for line in SEED_NODEPORT:
        assert line in lines
    assert lines.index(SEED_NODEPORT[0]) + 1 == lines.index(SEED_NODEPORT[1])


def test_base_chains_and_entry_points():
    lines, tables, _report = nat_lines()
    services_rules = [l for l in lines if l.startswith('-A KUBE-SERVICES')]
    assert services_rules[-1].endswith('-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS')
    assert '-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000' in lines
    assert ('-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring '
            'SNAT" -j MASQUERADE --random-fully') in lines
    assert tables['nat']['jumps']['PREROUTING'] == [
        '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES']
    assert tables['filter']['chains'] == {'KUBE-SERVICES': []}


def test_no_endpoints_rejects_and_reports():
    svcs = SERVICES + [{'namespace': 'test001', 'name': 'lonely', 'type': 'NodePort',
                        'selector': {'app': 'nobody'}, 'ports': [{'port': 80}]}]
    _lines, tables, report = nat_lines(svcs)
    entry = [r for r in report if r['service'] == 'test001/lonely'][0]
    assert entry['status'] == 'no endpoints' and entry['chain'] is None
    rej = tables['filter']['chains']['KUBE-SERVICES']
    assert rej[0] == ('-d %s/32 -p tcp -m comment --comment "test001/lonely: has no endpoints" '
                      '-m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable'
                      % entry['clusterIP'])
    assert '--dst-type LOCAL -m tcp --dport %d -j REJECT' % entry['nodePort'] in rej[1]
    assert not any('lonely' in l for l in listing(tables['nat'], 'nat'))


def test_endpoints_are_ready_matching_pods_in_the_namespace():
    svc = normalize_services(SERVICES)[0]
    pods = PODS + [
        {'name': 'other-ns', 'namespace': 'default', 'labels': {'app': 'lab-web'}, 'ip': '10.244.1.5'},
        {'name': 'not-ready', 'namespace': 'test001', 'labels': {'app': 'lab-web'},
         'ip': '10.244.1.6', 'ready': '0/1'},
        {'name': 'other-label', 'namespace': 'test001', 'labels': {'app': 'x'}, 'ip': '10.244.1.7'},
    ]
    assert [e['ip'] for e in endpoints(svc, pods)] == ['10.244.1.19', '10.244.2.15', '10.244.2.16']


def test_allocation_is_deterministic_and_never_twice():
    svcs = [{'name': 's%d' % i, 'type': 'NodePort', 'selector': {'a': 'b'},
             'ports': [{'port': 80}]} for i in range(50)]
    a = normalize_services(svcs)
    b = normalize_services(svcs)
    assert a == b
    ips = [s['clusterIP'] for s in a]
    nps = [s['ports'][0]['nodePort'] for s in a]
    assert len(set(ips)) == 50 and len(set(nps)) == 50
    assert all(ip.startswith('10.') for ip in ips)
    assert all(30000 <= n <= 32767 for n in nps)
    # a given value is never handed out to another service
    taken = dict(svcs[1], clusterIP=a[0]['clusterIP'])
    again = normalize_services([svcs[0], taken])
    assert again[0]['clusterIP'] != again[1]['clusterIP']


@pytest.mark.parametrize('change, words', [
    ({'clusterIP': '10.200.0.1'}, ['10.200.0.1', 'service CIDR']),
    ({'clusterIP': '10.96.0.0'}, ['10.96.0.0', 'service CIDR']),
    ({'clusterIP': '10.111.7.86'}, ['10.111.7.86', 'already taken']),
    ({'name': 'App_Svc'}, ['App_Svc', 'DNS-1035']),
    ({'name': '1svc'}, ['1svc', 'DNS-1035']),
    ({'type': 'LoadBalancer'}, ['LoadBalancer']),
    ({'ports': [{'port': 80, 'targetPort': 8081}]}, ['8081', 'served by no container',
                                                     'app-58866f5c7-2lj7z']),
    ({'ports': [{'name': 'web', 'port': 80}, {'name': 'web', 'port': 81}]}, ["'web'", 'twice']),
    ({'ports': [{'port': 80}, {'port': 81}]}, ['needs a name']),
    ({'ports': [{'port': 80, 'protocol': 'SCTP'}]}, ['SCTP']),
    ({'ports': [{'port': 70000}]}, ['70000']),
    ({'ports': [{'port': 80, 'nodePort': 30080}]}, ['30080', 'type is ClusterIP']),
    ({'type': 'NodePort', 'ports': [{'port': 80, 'targetPort': 8080, 'nodePort': 29999}]},
     ['29999', '30000-32767']),
    ({'type': 'NodePort', 'ports': [{'port': 80, 'targetPort': 8080, 'nodePort': 30080}]},
     ['30080', 'already taken']),
    ({'colour': 'red'}, ['colour']),
])
def test_bad_input_names_the_value(change, words):
    svcs = [dict(SERVICES[0], **change), SERVICES[1]]
    with pytest.raises(KubeProxyError) as e:
        normalize_services(svcs, PODS)
    for w in words:
        assert w in str(e.value)


def test_selector_matching_nothing_is_legal():
    svcs = [dict(SERVICES[0], selector={'app': 'none'})]
    assert normalize_services(svcs, PODS)[0]['selector'] == {'app': 'none'}


SAVE = '''# Generated by iptables-save v1.8.9
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [3:180]
:FOREIGN - [0:0]
:KUBE-SVC-OLD - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -s 10.9.9.0/24 -j MASQUERADE
-A KUBE-SVC-OLD -j RETURN
COMMIT
'''


def test_owned_view_and_restore_plan():
    saved = parse_save(SAVE)
    view = owned_view(saved, 'nat', 'KUBE-')
    assert view == {'chains': {'KUBE-SVC-OLD': ['-j RETURN']},
                    'jumps': {'PREROUTING': ['-m comment --comment "kubernetes service portals" '
                                             '-j KUBE-SERVICES']}}
    _lines, tables, _report = nat_lines()
    plan = restore_table(view, tables['nat'], 'nat')
    assert plan[0] == '*nat' and plan[-1] == 'COMMIT'
    assert ':KUBE-SVC-OLD - [0:0]' in plan and plan[-2] == '-X KUBE-SVC-OLD'
    # the existing entry point is kept, the missing ones inserted at the top
    assert not any(l.startswith('-I PREROUTING') or l.startswith('-D') for l in plan)
    assert '-I POSTROUTING 1 -m comment --comment "kubernetes postrouting rules" ' \
           '-j KUBE-POSTROUTING' in plan
    assert not any('FOREIGN' in l or '10.9.9.0' in l for l in plan)
    assert restore_table(tables['nat'], tables['nat'], 'nat') == []

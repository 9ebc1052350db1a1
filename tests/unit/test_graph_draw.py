"""k8slab graph's pure parts: reading path checks from verify.json (the failing hop) and
kube-proxy's services from iptables-save output; and drawing, when Graphviz is here."""

import html
import os
import shutil
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, '.collections'))

from ansible_collections.k8slab.podnet.plugins.plugin_utils.k8slab_cli import graph  # noqa: E402


def _path(name, expected, hops, passed):
    return dict(kind='path', name=name, source='node-2/client-2', target='node-1/httpd',
                expected=' '.join(expected), hops=hops, observed=' '.join(hops), passed=passed)


def test_path_checks_find_the_failing_hop():
    want = ['10.244.2.1', '192.168.56.11', '10.244.1.2']
    report = {'results': [
        _path('ok', want, want, True),
        _path('silent', want, ['10.244.2.1', '*', '*'], False),
        _path('short', want, ['10.244.2.1'], False),
        _path('wrong first', want, ['10.0.2.2', '203.0.113.1'], False),
        _path('not reached', want, want, False),
        dict(kind='reach', name='not a path', passed=False),
    ]}
    got = dict((p['name'], p) for p in graph.path_checks(report))
    assert set(got) == {'ok', 'silent', 'short', 'wrong first', 'not reached'}
    assert got['not reached']['failed_at'] == 2
    assert got['ok']['failed_at'] is None and got['ok']['passed']
    assert got['silent']['failed_at'] == 1
    assert got['short']['failed_at'] == 1
    assert got['wrong first']['failed_at'] == 0
    assert graph.path_checks(None) == []


IPTABLES = '''*nat
:KUBE-SERVICES - [0:0]
:KUBE-SVC-F657HDVWWTO5ELQA - [0:0]
-A KUBE-SERVICES -d 10.96.3.4/32 -p tcp -m comment --comment "test001/app-svc-clusterip cluster IP" -m tcp --dport 80 -j KUBE-SVC-F657HDVWWTO5ELQA
-A KUBE-NODEPORTS -p tcp -m comment --comment "test001/app-svc-nodeport" -m tcp --dport 30080 -j KUBE-EXT-CFVXM4HF2HSCB2P5
-A KUBE-SERVICES -d 10.96.7.8/32 -p tcp -m comment --comment "test001/app-svc-nodeport cluster IP" -m tcp --dport 80 -j KUBE-SVC-CFVXM4HF2HSCB2P5
-A KUBE-SVC-F657HDVWWTO5ELQA -m comment --comment "test001/app-svc-clusterip -> 10.244.1.3:8080" -m statistic --mode random --probability 0.5 -j KUBE-SEP-AAA
-A KUBE-SVC-F657HDVWWTO5ELQA -m comment --comment "test001/app-svc-clusterip -> 10.244.2.3:8080" -j KUBE-SEP-BBB
-A KUBE-SEP-AAA -p tcp -m comment --comment "test001/app-svc-clusterip" -m tcp -j DNAT --to-destination 10.244.1.3:8080
-A KUBE-SEP-BBB -p tcp -m comment --comment "test001/app-svc-clusterip" -m tcp -j DNAT --to-destination 10.244.2.3:8080
COMMIT
'''


def test_kube_proxy_rules_give_services_and_endpoints():
    svcs = graph.parse_kube_proxy(IPTABLES)
    assert [s['name'] for s in svcs] == ['test001/app-svc-clusterip', 'test001/app-svc-nodeport']
    cip, nport = svcs
    assert cip['chain'] == 'KUBE-SVC-F657HDVWWTO5ELQA'
    assert cip['cluster_ip'] == '10.96.3.4:80/tcp'
    assert cip['endpoints'] == ['10.244.1.3:8080', '10.244.2.3:8080']
    assert nport['node_ports'] == ['30080/tcp'] and nport['cluster_ip'] == '10.96.7.8:80/tcp'
    assert graph.parse_kube_proxy('*nat\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n') == []


def _node(n, i, pods):
    return dict(
        name=n, netns='t-' + n, up=True,
        ifaces={'eth0': dict(addresses=['10.0.2.15/24'], mtu=1500, up=True),
                'eth1': dict(addresses=['192.168.56.1%d/24' % i], mtu=1500, up=True),
                'cni0': dict(addresses=['10.244.%d.1/24' % i], mtu=1500, up=True)},
        routes=[dict(dst='10.244.%d.0/24' % (1 - i), gateway='192.168.56.1%d' % (1 - i),
                     dev='eth1')],
        pods=[dict(name=p, ip='10.244.%d.2/24' % i, up=True, veth='veth%d' % i, veth_up=True,
                   veth_master='cni0') for p in pods],
        nat=dict(netns='t-%s-nat' % n, lan=['10.0.2.2/24'], wan=['203.0.113.1%d/24' % i]))


def _lab():
    node = _node
    return dict(lab='t', up=True, host=dict(netns='t-host', ip='192.168.56.1/24'),
                outside=dict(netns='t-outside', ip='203.0.113.1/24'),
                nodes=[node('node-0', 0, ['a']), node('node-1', 1, ['b'])],
                services=graph.parse_kube_proxy(IPTABLES))


@pytest.mark.skipif(not shutil.which('dot'), reason="Graphviz's dot is not installed")
def test_render_draws_the_failing_hop_red(tmp_path):
    pytest.importorskip('graphviz')
    want = ['10.244.0.1', '192.168.56.11', '10.244.1.2']
    paths = graph.path_checks({'results': [
        dict(_path('p', want, ['10.244.0.1', '*', '*'], False), source='node-0/a', name='path p')]})
    svg, png = graph.render(_lab(), paths, str(tmp_path / 'g'))
    assert png.endswith('.png') and os.path.getsize(png) > 0
    text = html.unescape(open(svg).read())
    assert 'path p: hop 2 FAILED: expected 192.168.56.11, got *' in text
    assert graph.FAIL_COLOR in text and 'test001/app-svc-clusterip' in text

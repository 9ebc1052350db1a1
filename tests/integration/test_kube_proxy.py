"""k8slab.podnet.kube_proxy on real iptables, in throwaway namespaces (hF<hex>-*).

Topology (nothing is added to the root namespace; its iptables-save is compared before/after):

    client ns (c): eth0 192.168.56.1/24, routes 10.96.0.0/12 and 10.244.0.0/16 via the node
    node ns (n):   eth1 192.168.56.11/24 (veth to c), cni0 10.244.1.1/24 (bridge), ip_forward=1,
                   eth0 10.0.2.15/24 (a port-less bridge standing in for the NAT side), default via 10.0.2.2
    pod ns a1, a2: eth0 10.244.1.2 / 10.244.1.3 on cni0 (hairpin on), default via 10.244.1.1,
                   each running an HTTP server on 8080 whose page names the pod
"""

import os
import re
import subprocess
import time

import pytest

from conftest import HTTP_SERVER, run_module, run_tasks, sh

SVC_IP = '10.100.0.10'
NP_IP = '10.100.0.20'
NONE_IP = '10.100.0.30'


def services(pods_selector='web'):
    return [
        {'namespace': 'test001', 'name': 'app-svc-clusterip', 'clusterIP': SVC_IP,
         'selector': {'app': pods_selector}, 'ports': [{'port': 80, 'targetPort': 8080}]},
        {'namespace': 'test001', 'name': 'app-svc-nodeport', 'type': 'NodePort',
         'clusterIP': NP_IP, 'selector': {'app': pods_selector},
         'ports': [{'port': 80, 'targetPort': 8080, 'nodePort': 30080}]},
        {'namespace': 'test001', 'name': 'nothing', 'clusterIP': NONE_IP,
         'selector': {'app': 'none'}, 'ports': [{'port': 80}]},
    ]


def pods(ready=(True, True)):
    return [{'name': 'a%d' % i, 'namespace': 'test001', 'labels': {'app': 'web'},
             'ip': '10.244.1.%d/24' % (i + 1), 'ready': ready[i - 1], 'ports': [8080]}
            for i in (1, 2)]


def normalized_save(netns=None):
    """iptables-save without comments and counters (they change with traffic)."""
    out = sh(('ip netns exec %s ' % netns if netns else '') + 'iptables-save')
    return [re.sub(r'\[\d+:\d+\]', '[]', l) for l in out.splitlines() if not l.startswith('#')]


class Lab(object):
    def __init__(self, prefix):
        self.c, self.n = prefix + '-c', prefix + '-n'
        self.a = {1: prefix + '-a1', 2: prefix + '-a2'}
        self.servers = []

    def curl(self, ns, url, timeout=3):
        proc = subprocess.run(['ip', 'netns', 'exec', ns, 'curl', '-s', '-m', str(timeout), url],
                              capture_output=True, text=True, check=False)
        return proc.returncode, proc.stdout

    def kube_proxy(self, check=False, **args):
        args.setdefault('services', services())
        args.setdefault('pods', pods())
        args['netns'] = self.n
        return run_module('k8slab.podnet.kube_proxy', args, check=check, diff=True)[0]


@pytest.fixture
def lab(uid, netns_cleanup, tmp_path):
    root_before = normalized_save()
    lab = Lab('hF' + uid)
    netns_cleanup.extend([lab.c, lab.n, lab.a[1], lab.a[2]])
    cmds = ['ip netns add %s' % lab.c, 'ip netns add %s' % lab.n,
            'ip -n %s link set lo up' % lab.c, 'ip -n %s link set lo up' % lab.n,
            'ip -n %s link add eth1 type veth peer name eth0 netns %s' % (lab.n, lab.c),
            'ip -n %s addr add 192.168.56.11/24 dev eth1' % lab.n,
            'ip -n %s link set eth1 up' % lab.n,
            'ip -n %s addr add 192.168.56.1/24 dev eth0' % lab.c,
            'ip -n %s link set eth0 up' % lab.c,
            'ip -n %s route add 10.96.0.0/12 via 192.168.56.11' % lab.c,
            'ip -n %s route add 10.244.0.0/16 via 192.168.56.11' % lab.c,
            'ip -n %s link add cni0 type bridge' % lab.n,
            'ip -n %s addr add 10.244.1.1/24 dev cni0' % lab.n,
            'ip -n %s link set cni0 up' % lab.n,
            # A node needs some route to cluster IPs: a lab node's default goes out eth0 (NAT).
            # (Not via eth1: the node would then send the client an ICMP redirect, which uses
            # up the per-peer ICMP rate limit and swallows the REJECT's port-unreachable.)
            'ip -n %s link add eth0 type bridge' % lab.n,
            'ip -n %s addr add 10.0.2.15/24 dev eth0' % lab.n,
            'ip -n %s link set eth0 up' % lab.n,
            'ip -n %s route add default via 10.0.2.2' % lab.n,
            'ip netns exec %s sysctl -qw net.ipv4.ip_forward=1' % lab.n]
    for i in (1, 2):
        a = lab.a[i]
        cmds += ['ip netns add %s' % a, 'ip -n %s link set lo up' % a,
                 'ip -n %s link add veth%d type veth peer name eth0 netns %s' % (lab.n, i, a),
                 'ip -n %s link set veth%d master cni0 up' % (lab.n, i),
                 'ip -n %s link set veth%d type bridge_slave hairpin on' % (lab.n, i),
                 'ip -n %s addr add 10.244.1.%d/24 dev eth0' % (a, i + 1),
                 'ip -n %s link set eth0 up' % a,
                 'ip -n %s route add default via 10.244.1.1' % a]
    sh(' && '.join(cmds))
    for i in (1, 2):
        root = tmp_path / ('www%d' % i)
        root.mkdir()
        (root / 'index.html').write_text('pod a%d\n' % i)
        lab.servers.append(subprocess.Popen(
            ['ip', 'netns', 'exec', lab.a[i]] + HTTP_SERVER
            + ['10.244.1.%d' % (i + 1), '8080', str(root)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    for i in (1, 2):
        for dummy in range(50):
            if lab.curl(lab.n, 'http://10.244.1.%d:8080/' % (i + 1), 1)[0] == 0:
                break
            time.sleep(0.1)
    yield lab
    for proc in lab.servers:
        proc.terminate()
        proc.wait()
    assert normalized_save() == root_before, 'the root namespace iptables changed'


def owned(netns):
    return [l for l in normalized_save(netns) if 'KUBE-' in l]


def test_apply_rerun_check_and_traffic(lab):
    sh('ip netns exec %s iptables -t nat -N FOREIGN' % lab.n)
    sh('ip netns exec %s iptables -t nat -A POSTROUTING -s 10.9.9.0/24 -j MASQUERADE' % lab.n)
    sh('ip netns exec %s iptables -A INPUT -p tcp --dport 9 -j ACCEPT' % lab.n)
    foreign = [l for l in normalized_save(lab.n) if 'KUBE-' not in l]

    # check mode changes nothing but reports the change and the diff
    res = lab.kube_proxy(check=True)
    assert res['changed'] and not res.get('failed'), res
    assert owned(lab.n) == []
    diff = res['diff'][0] if isinstance(res['diff'], list) else res['diff']
    assert 'KUBE-SVC-' in diff['after'] and 'KUBE-SVC-' not in diff['before'], diff

    res = lab.kube_proxy()
    assert res['changed'] and not res.get('failed'), res
    assert res['no_endpoints'] == ['test001/nothing:']
    save = normalized_save(lab.n)
    # every rule the module reports is in the kernel, and foreign rules are untouched
    for line in res['rules']:
        if line.startswith('-A'):
            assert line in save
    assert [l for l in save if 'KUBE-' not in l] == foreign
    # a 2-endpoint service: 2 KUBE-SERVICES rules, 2 SVC rules, 2 x 2 SEP rules, 3 chains
    svc = [e for e in res['endpoints'] if e['service'] == 'test001/app-svc-clusterip'][0]
    names = [svc['chain']] + [e['chain'] for e in svc['endpoints']]
    mine = [l for l in save if any(n in l for n in names) or SVC_IP in l]
    assert len(mine) == 2 + 2 + 4 + 3, mine
    assert '-A %s -m statistic --mode random --probability 0.50000000000 -j %s' % (
        svc['chain'], svc['endpoints'][0]['chain']) in save

    # rerun: nothing to do
    res2 = lab.kube_proxy()
    assert not res2['changed'] and res2['restore'] == [], res2
    assert lab.kube_proxy(check=True)['changed'] is False

    # ClusterIP from the client (PREROUTING, FORWARD) reaches both endpoints
    seen = set()
    for dummy in range(30):
        rc, out = lab.curl(lab.c, 'http://%s/' % SVC_IP)
        assert rc == 0, (rc, out)
        seen.add(out.strip())
    assert seen == {'pod a1', 'pod a2'}
    # ClusterIP from the node itself (OUTPUT)
    assert lab.curl(lab.n, 'http://%s/' % SVC_IP)[0] == 0
    # hairpin: a pod reaching its own service (needs the SEP's KUBE-MARK-MASQ)
    for dummy in range(10):
        assert lab.curl(lab.a[1], 'http://%s/' % SVC_IP)[0] == 0
    # NodePort on the node's LOCAL address, from outside and from the node
    assert lab.curl(lab.c, 'http://192.168.56.11:30080/')[0] == 0
    assert lab.curl(lab.n, 'http://192.168.56.11:30080/')[0] == 0
    # no endpoints: REJECT, so the client is refused at once (curl 7), not timed out (28)
    t0 = time.time()
    assert lab.curl(lab.c, 'http://%s/' % NONE_IP)[0] == 7
    assert lab.curl(lab.n, 'http://%s/' % NONE_IP)[0] == 7
    # (a rejection the host's ICMP budget held back costs a SYN retransmission, 1 s)
    assert time.time() - t0 < 4


def test_hairpin_needs_the_mark(lab):
    """The drill's premise: without the SEP's -s podIP -j KUBE-MARK-MASQ a pod cannot reach
    itself through its service (so the hairpin check above can fail)."""
    res = lab.kube_proxy(pods=pods()[:1])
    sep = res['endpoints'][0]['endpoints'][0]['chain']
    assert lab.curl(lab.a[1], 'http://%s/' % SVC_IP)[0] == 0
    sh('ip netns exec %s iptables -t nat -D %s -s 10.244.1.2/32 -j KUBE-MARK-MASQ' % (lab.n, sep))
    assert lab.curl(lab.a[1], 'http://%s/' % SVC_IP, 2)[0] != 0
    # the next run repairs the drift
    assert lab.kube_proxy(pods=pods()[:1])['changed']
    assert lab.curl(lab.a[1], 'http://%s/' % SVC_IP)[0] == 0


def test_endpoints_follow_pods_and_stale_removal(lab):
    res = lab.kube_proxy()
    eps = [e for e in res['endpoints'] if e['service'] == 'test001/app-svc-clusterip'][0]
    a2_chain = eps['endpoints'][1]['chain']
    assert any(a2_chain in l for l in owned(lab.n))
    # a2 not ready: its SEP chains are gone, a1 alone answers
    res = lab.kube_proxy(pods=pods(ready=(True, '0/1')))
    assert res['changed']
    assert not any(a2_chain in l for l in owned(lab.n))
    assert {lab.curl(lab.c, 'http://%s/' % SVC_IP)[1].strip() for dummy in range(8)} == {'pod a1'}
    # no pods at all: every service rejects; the SVC/SEP chains are gone
    res = lab.kube_proxy(pods=[])
    assert sorted(res['no_endpoints']) == ['test001/app-svc-clusterip:',
                                           'test001/app-svc-nodeport:', 'test001/nothing:']
    assert not [l for l in owned(lab.n) if 'KUBE-SVC-' in l or 'KUBE-SEP-' in l]
    assert lab.curl(lab.c, 'http://192.168.56.11:30080/')[0] == 7
    # stale service removal: only the nodeport service left
    lab.kube_proxy()
    res = lab.kube_proxy(services=services()[1:2])
    assert res['changed']
    assert not [l for l in owned(lab.n) if SVC_IP in l or NONE_IP in l]
    assert lab.curl(lab.c, 'http://192.168.56.11:30080/')[0] == 0
    # state=absent removes every KUBE-* chain and entry point, nothing else
    sh('ip netns exec %s iptables -t nat -A POSTROUTING -s 10.9.9.0/24 -j MASQUERADE' % lab.n)
    res = lab.kube_proxy(state='absent')
    assert res['changed'] and owned(lab.n) == []
    assert '-A POSTROUTING -s 10.9.9.0/24 -j MASQUERADE' in normalized_save(lab.n)
    assert not lab.kube_proxy(state='absent')['changed']


BAD = [
    ({'clusterIP': '10.200.0.1'}, ['10.200.0.1', 'service CIDR']),
    ({'clusterIP': NP_IP}, [NP_IP, 'already taken']),
    ({'name': 'App_Svc'}, ['App_Svc', 'DNS-1035']),
    ({'ports': [{'port': 80, 'targetPort': 8081}]}, ['8081', 'served by no container']),
    ({'ports': [{'name': 'web', 'port': 80}, {'name': 'web', 'port': 81}]}, ["'web'", 'twice']),
    ({'type': 'NodePort', 'ports': [{'port': 80, 'targetPort': 8080, 'nodePort': 29999}]},
     ['29999', '30000-32767']),
    ({'type': 'NodePort', 'ports': [{'port': 80, 'targetPort': 8080, 'nodePort': 30080}]},
     ['30080', 'already taken']),
]


def test_bad_input_changes_nothing(lab):
    """Each bad value fails the module, names the value, and leaves iptables-save identical
    (one lab for all cases: a run costs seconds)."""
    lab.kube_proxy()
    before = normalized_save(lab.n)
    for bad, words in BAD:
        svcs = services()
        svcs[2] = dict(svcs[2], clusterIP='10.100.0.31')   # a change would be due
        svcs[0] = dict(svcs[0], **bad)
        res = lab.kube_proxy(services=svcs)
        assert res.get('failed'), (bad, res)
        for w in words:
            assert w in res['msg'], (bad, res['msg'])
        assert normalized_save(lab.n) == before, bad


@pytest.mark.parametrize('module, args', [
    ('k8slab.podnet.kube_proxy', {'services': []}),
    ('k8slab.podnet.flannel_ipmasq', {'network': '10.244.0.0/16', 'subnet': '10.244.1.1/24'}),
])
def test_netns_contract_of_the_iptables_modules(uid, netns_cleanup, module, args):
    """The netns doc fragment's contract, in both iptables modules: state=absent in a namespace
    that is gone, or a leftover /run/netns entry, is already clean (unchanged); present fails
    naming the option (gone) or the leftover file; a bad name fails naming the value."""
    gone, stale = 'hF%sg' % uid, 'hF%st' % uid
    netns_cleanup.append(stale)
    sh('mkdir -p /run/netns && touch /run/netns/%s' % stale)
    absent = [dict(args, netns=ns, state='absent') for ns in (gone, stale)]
    present = [dict(args, netns=gone), dict(args, netns=stale), dict(args, netns='hF/x')]
    results = run_tasks(module, absent + present)
    for res in results[:2]:
        assert not res.get('failed') and res['changed'] is False, res
        assert res['rules'] == [] and res['restore'] == [], res
    assert results[2]['msg'] == "netns '%s' does not exist" % gone, results[2]
    assert 'is not a network namespace: /var/run/netns/%s' % stale in results[3]['msg']
    assert "'hF/x'" in results[4]['msg'] and 'netns' in results[4]['msg'], results[4]
    assert not os.path.exists('/run/netns/' + gone)


def test_missing_netns_fails(uid):
    res = run_module('k8slab.podnet.kube_proxy', {'netns': 'hF%s-none' % uid, 'services': []})[0]
    assert res.get('failed') and 'hF%s-none' % uid in res['msg']
    assert not os.path.exists('/run/netns/hF%s-none' % uid)

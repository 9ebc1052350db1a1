"""Cluster DNS (k8slab.podnet.cluster_dns + dnsmasq in a DNS pod, reached through
k8slab.podnet.kube_proxy's rules at 10.96.0.10) and the NAT router's DNS
(k8slab.podnet.netns_lab_dns), all in throwaway namespaces (hF<hex>-*).

    node ns (n):   cni0 10.244.1.1/24, ip_forward=1, kube_proxy rules
    dns pod (d):   10.244.1.10 on cni0, runs dnsmasq with the generated configuration
    client pod (c): 10.244.1.11 on cni0, resolv.conf as kubelet writes it (through
                   /etc/netns/<name>/resolv.conf, which `ip netns exec` mounts over
                   /etc/resolv.conf), so glibc's own resolver (getent) does the lookups
Queries without glibc use module_utils/clusterdns.query (no dig on the machine).
"""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from conftest import ROOT, run_module, sh

DNS_IP = '10.96.0.10'
SERVICES = [
    {'namespace': 'kube-system', 'name': 'kube-dns', 'clusterIP': DNS_IP,
     'selector': {'k8s-app': 'kube-dns'},
     'ports': [{'name': 'dns', 'protocol': 'UDP', 'port': 53},
               {'name': 'dns-tcp', 'protocol': 'TCP', 'port': 53}]},
    {'namespace': 'test001', 'name': 'app-svc-clusterip', 'clusterIP': '10.109.117.159',
     'selector': {'app': 'lab-web'}, 'ports': [{'port': 80, 'targetPort': 8080}]},
    {'namespace': 'test001', 'name': 'app-svc-nodeport', 'type': 'NodePort',
     'selector': {'app': 'lab-web'}, 'ports': [{'port': 80, 'targetPort': 8080, 'nodePort': 30080}]},
]
PODS = [
    {'name': 'coredns', 'namespace': 'kube-system', 'labels': {'k8s-app': 'kube-dns'},
     'ip': '10.244.1.10/24', 'ports': [53]},
    {'name': 'app-1', 'namespace': 'test001', 'labels': {'app': 'lab-web'},
     'ip': '10.244.2.15/24', 'ports': [8080]},
    {'name': 'app-2', 'namespace': 'test001', 'labels': {'app': 'lab-web'},
     'ip': '10.244.1.19/24', 'ports': [8080]},
]


def query(ns, server, name, qtype='A'):
    """module_utils/clusterdns.query run inside ns; returns (rcode, answers, seconds)."""
    code = ('import sys, json, time\n'
            'from ansible_collections.k8slab.podnet.plugins.module_utils.clusterdns import query\n'
            't = time.time(); r = query(*sys.argv[1:4])\n'
            'print(json.dumps([r["rcode"], r["answers"], time.time() - t]))\n')
    out = subprocess.run(['ip', 'netns', 'exec', ns, sys.executable,
                          '-c', code, server, name, qtype],
                         env=dict(os.environ, PYTHONPATH=os.path.join(ROOT, '.collections')),
                         capture_output=True, text=True, check=True).stdout
    return tuple(json.loads(out))


@pytest.fixture
def lab(uid, netns_cleanup, tmp_path):
    p = 'hF' + uid
    n, d, c = p + '-n', p + '-d', p + '-c'
    netns_cleanup.extend([n, d, c])
    cmds = ['ip netns add %s' % x for x in (n, d, c)]
    cmds += ['ip -n %s link set lo up' % x for x in (n, d, c)]
    cmds += ['ip -n %s link add cni0 type bridge' % n,
             'ip -n %s addr add 10.244.1.1/24 dev cni0' % n, 'ip -n %s link set cni0 up' % n,
             'ip netns exec %s sysctl -qw net.ipv4.ip_forward=1' % n]
    for i, (ns, ip) in enumerate(((d, '10.244.1.10'), (c, '10.244.1.11'))):
        cmds += ['ip -n %s link add veth%d type veth peer name eth0 netns %s' % (n, i, ns),
                 'ip -n %s link set veth%d master cni0 up' % (n, i),
                 'ip -n %s addr add %s/24 dev eth0' % (ns, ip), 'ip -n %s link set eth0 up' % ns,
                 'ip -n %s route add default via 10.244.1.1' % ns]
    sh(' && '.join(cmds))
    etc = '/etc/netns/' + c
    procs = []
    yield {'n': n, 'd': d, 'c': c, 'tmp': tmp_path, 'etc': etc, 'procs': procs}
    for proc in procs:
        proc.terminate()
        proc.wait()
    shutil.rmtree(etc, ignore_errors=True)


def test_cluster_dns_through_the_kube_dns_service(lab):
    conf = str(lab['tmp'] / 'dns' / 'dnsmasq.conf')
    args = {'dest': conf, 'services': SERVICES, 'pods': PODS}
    res = run_module('k8slab.podnet.cluster_dns', args, check=True)[0]
    assert res['changed'] and not os.path.exists(conf)
    res = run_module('k8slab.podnet.cluster_dns', args, diff=True)[0]
    assert res['changed'] and os.path.exists(conf), res
    assert res['resolv_conf']['test001'] == (
        'search test001.svc.cluster.local svc.cluster.local cluster.local\n'
        'nameserver 10.96.0.10\noptions ndots:5\n')
    assert not run_module('k8slab.podnet.cluster_dns', args)[0]['changed']
    # force: false (the first configuration, written before the pods are known) leaves an
    # existing file alone, in check mode too; force: true (the default) rewrites it.
    written = open(conf).read()
    first = dict(args, pods=[], force=False)
    for check in (True, False):
        res = run_module('k8slab.podnet.cluster_dns', first, check=check)[0]
        assert not res['changed'] and open(conf).read() == written, res
    assert run_module('k8slab.podnet.cluster_dns', dict(first, force=True), check=True)[0]['changed']

    lab['procs'].append(subprocess.Popen(
        ['ip', 'netns', 'exec', lab['d'], 'dnsmasq', '--keep-in-foreground', '--conf-file=' + conf],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    proxy = {'netns': lab['n'], 'services': SERVICES, 'pods': PODS}
    res = run_module('k8slab.podnet.kube_proxy', proxy)[0]
    assert res['changed'] and res['no_endpoints'] == [], res
    for dummy in range(50):
        try:
            if query(lab['c'], DNS_IP, 'kube-dns.kube-system.svc.cluster.local')[0] == 0:
                break
        except subprocess.CalledProcessError:
            pass
        time.sleep(0.1)

    # from a pod, through the kube-dns ClusterIP (DNAT to the DNS pod)
    c = lab['c']
    assert query(c, DNS_IP, 'app-svc-clusterip.test001.svc.cluster.local')[:2] == \
        (0, ['10.109.117.159'])
    assert query(c, DNS_IP, '10.0.96.10.in-addr.arpa', 'PTR')[:2] == \
        (0, ['kube-dns.kube-system.svc.cluster.local'])
    assert query(c, DNS_IP, '159.117.109.10.in-addr.arpa', 'PTR')[:2] == \
        (0, ['app-svc-clusterip.test001.svc.cluster.local'])
    # seed 002's pod names, forward and reverse (one reverse name per pod IP)
    assert query(c, DNS_IP, '10-244-2-15.app-svc-clusterip.test001.svc.cluster.local')[:2] == \
        (0, ['10.244.2.15'])
    assert query(c, DNS_IP, '10-244-2-15.app-svc-nodeport.test001.svc.cluster.local')[:2] == \
        (0, ['10.244.2.15'])
    assert query(c, DNS_IP, '15.2.244.10.in-addr.arpa', 'PTR')[:2] == \
        (0, ['10-244-2-15.app-svc-clusterip.test001.svc.cluster.local'])
    assert query(c, DNS_IP, '10-244-1-19.test001.pod.cluster.local')[:2] == (0, ['10.244.1.19'])
    assert query(c, DNS_IP, '_dns._udp.kube-dns.kube-system.svc.cluster.local', 'SRV')[:2] == \
        (0, ['53 kube-dns.kube-system.svc.cluster.local'])
    # unknown cluster names: NXDOMAIN at once; other names: refused at once (no upstream)
    rcode, answers, secs = query(c, DNS_IP, 'nope.test001.svc.cluster.local')
    assert (rcode, answers) == (3, []) and secs < 1
    rcode, answers, secs = query(c, DNS_IP, 'example.com')
    assert rcode == 5 and secs < 1

    # glibc with the kubelet resolv.conf: the short name through the search path
    os.makedirs(lab['etc'])
    with open(os.path.join(lab['etc'], 'resolv.conf'), 'w') as f:
        f.write(res_conf('test001'))
    out = sh('ip netns exec %s getent ahostsv4 app-svc-clusterip' % c)
    assert out.split()[0] == '10.109.117.159'
    assert 'app-svc-clusterip.test001.svc.cluster.local' in out
    t0 = time.time()
    assert subprocess.run(['ip', 'netns', 'exec', c, 'getent', 'ahostsv4', 'no-such-name'],
                          capture_output=True, check=False).returncode == 2
    assert time.time() - t0 < 2


def res_conf(ns):
    return ('search %s.svc.cluster.local svc.cluster.local cluster.local\n'
            'nameserver 10.96.0.10\noptions ndots:5\n' % ns)


def test_nat_router_dns(lab, uid):
    r = lab['n']      # any namespace stands in for the NAT router
    conf, pidfile = str(lab['tmp'] / 'r' / 'dnsmasq.conf'), str(lab['tmp'] / 'r' / 'dnsmasq.pid')
    args = {'netns': r, 'hosts': {'node-1': '192.168.56.11', 'outside': '203.0.113.1'},
            'conf': conf, 'pidfile': pidfile}
    res = run_module('k8slab.podnet.netns_lab_dns', args)[0]
    assert res.get('failed') and '10.0.2.3' in res['msg']          # address not there yet
    sh('ip -n %s addr add 10.0.2.3/32 dev lo' % r)
    res = run_module('k8slab.podnet.netns_lab_dns', args, check=True)[0]
    assert res['changed'] and not os.path.exists(pidfile)
    res = run_module('k8slab.podnet.netns_lab_dns', args)[0]
    assert res['changed'] and res['pid'], res
    pid = res['pid']
    try:
        assert query(r, '10.0.2.3', 'node-1')[:2] == (0, ['192.168.56.11'])
        assert query(r, '10.0.2.3', '11.56.168.192.in-addr.arpa', 'PTR')[:2] == (0, ['node-1'])
        rcode, _answers, secs = query(r, '10.0.2.3', 'deb.debian.org')
        assert rcode == 3 and secs < 1                               # never forwarded
        rcode, _answers, secs = query(r, '10.0.2.3', '2.2.0.10.in-addr.arpa', 'PTR')
        assert rcode == 3 and secs < 1
        res = run_module('k8slab.podnet.netns_lab_dns', args)[0]
        assert not res['changed'] and res['pid'] == pid
        # a new name restarts it with the new configuration
        args['hosts']['node-2'] = '192.168.56.12'
        res = run_module('k8slab.podnet.netns_lab_dns', args, diff=True)[0]
        assert res['changed'] and res['pid'] != pid and not os.path.exists('/proc/%d' % pid)
        pid = res['pid']
        assert query(r, '10.0.2.3', 'node-2')[:2] == (0, ['192.168.56.12'])
    finally:
        res = run_module('k8slab.podnet.netns_lab_dns', dict(args, state='absent'))[0]
    assert res['changed'] and not os.path.exists('/proc/%d' % pid)


def test_nat_router_dns_servers_in_one_run(lab):
    """servers: every NAT router in one run (the netns_lab role's way); every namespace and
    address is checked before any server starts."""
    r1, r2 = lab['n'], lab['c']  # any namespaces stand in for two NAT routers
    servers = [{'netns': r, 'conf': str(lab['tmp'] / r / 'dnsmasq.conf'),
                'pidfile': str(lab['tmp'] / r / 'dnsmasq.pid')} for r in (r1, r2)]
    args = {'servers': servers, 'hosts': {'node-1': '192.168.56.11'}}
    res = run_module('k8slab.podnet.netns_lab_dns',
                     dict(args, servers=[servers[0], dict(servers[1], netns=r2 + '-none')]))[0]
    assert res.get('failed') and 'servers[1].netns' in res['msg'], res
    sh('ip -n %s addr add 10.0.2.3/32 dev lo' % r1)
    try:
        res = run_module('k8slab.podnet.netns_lab_dns', args)[0]
        # r2 lacks the address: the run fails before r1's server starts
        assert res.get('failed') and r2 in res['msg'], res
        assert not any(os.path.exists(s['pidfile']) for s in servers)
        sh('ip -n %s addr add 10.0.2.3/32 dev lo' % r2)
        res = run_module('k8slab.podnet.netns_lab_dns', args, check=True)[0]
        assert res['changed'] and not any(os.path.exists(s['pidfile']) for s in servers), res
        res = run_module('k8slab.podnet.netns_lab_dns', args, diff=True)[0]
        assert res['changed'] and [s['netns'] for s in res['servers']] == [r1, r2], res
        pids = [s['pid'] for s in res['servers']]
        assert all(pids) and len(res['diff']) == 2, res
        for r in (r1, r2):
            assert query(r, '10.0.2.3', 'node-1')[:2] == (0, ['192.168.56.11'])
        res = run_module('k8slab.podnet.netns_lab_dns', args)[0]
        assert not res['changed'] and [s['pid'] for s in res['servers']] == pids, res
        # A server that cannot be set up puts back the ones this run changed: r1 keeps its
        # server and its configuration when r2's new configuration cannot be written.
        before = open(servers[0]['conf']).read()
        (lab['tmp'] / 'file').write_text('')
        broken = dict(args, hosts={'node-2': '192.168.56.12'},
                      servers=[servers[0], dict(servers[1], conf=str(lab['tmp'] / 'file' / 'c'))])
        res = run_module('k8slab.podnet.netns_lab_dns', broken)[0]
        assert res.get('failed') and r2 in res['msg'] and 'file/c' in res['msg'], res
        assert open(servers[0]['conf']).read() == before
        back = int(open(servers[0]['pidfile']).read())
        assert query(r1, '10.0.2.3', 'node-1')[:2] == (0, ['192.168.56.11'])
        pids[0] = back
        # no two servers on one namespace or file, files by absolute paths, names that
        # cannot add a line to the configuration: refused before anything changes
        for bad, needle in [(dict(servers[1], netns=r1), 'servers[1].netns'),
                            (dict(servers[1], pidfile=servers[0]['conf']), 'servers[1].pidfile'),
                            (dict(servers[1], pidfile=None), 'servers[1].pidfile')]:
            res = run_module('k8slab.podnet.netns_lab_dns',
                             dict(args, servers=[servers[0], bad]))[0]
            assert res.get('failed') and needle in res['msg'], (needle, res)
        res = run_module('k8slab.podnet.netns_lab_dns', dict(args, domain='lab\nserver=8.8.8.8'))[0]
        assert res.get('failed') and 'domain' in res['msg'], res
        assert open(servers[0]['conf']).read() == before
        res = run_module('k8slab.podnet.netns_lab_dns', {'netns': None, 'conf': 'x'})[0]
        assert res.get('failed') and 'required' in res['msg'], res
    finally:
        res = run_module('k8slab.podnet.netns_lab_dns', dict(args, state='absent'))[0]
    assert res['changed'] and [s['changed'] for s in res['servers']] == [True, True], res
    assert not any(os.path.exists('/proc/%d' % p) for p in pids)

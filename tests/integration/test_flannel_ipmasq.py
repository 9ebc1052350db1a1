"""k8slab.podnet.flannel_ipmasq on real iptables, in throwaway namespaces (hF<hex>-*).

    outside ns (o):  eth0 10.0.2.2/24 and 203.0.113.1/32 on lo; serves "who am I" on 8000
    node ns (n):     eth0 10.0.2.15/24 (veth to o), default via 10.0.2.2; cni0 10.244.1.1/24;
                     eth1 192.168.56.11/24 (veth to p2, standing in for node-2 and its pod),
                     route 10.244.2.0/24 via 192.168.56.12; ip_forward=1
    pod ns (p):      eth0 10.244.1.2/24 on cni0, default via 10.244.1.1
    peer pod (p2):   eth0 192.168.56.12/24 and 10.244.2.2/32 on lo, default via 192.168.56.11;
                     serves "who am I" on 8000
The "who am I" server answers with the peer address it sees, so NAT is observed, not inferred.
"""

import re
import subprocess
import sys

import pytest

from conftest import run_module, sh

WHOAMI = ('import socket,sys\n'
          's=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n'
          's.bind((sys.argv[1], 8000)); s.listen(8)\n'
          'while True:\n'
          '    c, a = s.accept(); c.sendall((a[0] + "\\n").encode()); c.close()\n')
ASK = ('import socket,sys\n'
       'c=socket.create_connection((sys.argv[1], 8000), 3); print(c.recv(100).decode().strip())\n')


def save(ns=None):
    out = sh(('ip netns exec %s ' % ns if ns else '') + 'iptables-save')
    return [re.sub(r'\[\d+:\d+\]', '[]', l) for l in out.splitlines() if not l.startswith('#')]


@pytest.fixture
def lab(uid, netns_cleanup):
    root_before = save()
    p = 'hF' + uid
    o, n, pod, p2 = p + '-o', p + '-n', p + '-p', p + '-p2'
    netns_cleanup.extend([o, n, pod, p2])
    cmds = ['ip netns add %s' % x for x in (o, n, pod, p2)]
    cmds += ['ip -n %s link set lo up' % x for x in (o, n, pod, p2)]
    cmds += [
        'ip -n %s link add eth0 type veth peer name eth0 netns %s' % (n, o),
        'ip -n %s addr add 10.0.2.15/24 dev eth0' % n, 'ip -n %s link set eth0 up' % n,
        'ip -n %s addr add 10.0.2.2/24 dev eth0' % o, 'ip -n %s link set eth0 up' % o,
        'ip -n %s addr add 203.0.113.1/32 dev lo' % o,
        'ip -n %s route add default via 10.0.2.2' % n,
        'ip -n %s link add cni0 type bridge' % n,
        'ip -n %s addr add 10.244.1.1/24 dev cni0' % n, 'ip -n %s link set cni0 up' % n,
        'ip -n %s link add veth1 type veth peer name eth0 netns %s' % (n, pod),
        'ip -n %s link set veth1 master cni0 up' % n,
        'ip -n %s addr add 10.244.1.2/24 dev eth0' % pod, 'ip -n %s link set eth0 up' % pod,
        'ip -n %s route add default via 10.244.1.1' % pod,
        'ip -n %s link add eth1 type veth peer name eth0 netns %s' % (n, p2),
        'ip -n %s addr add 192.168.56.11/24 dev eth1' % n, 'ip -n %s link set eth1 up' % n,
        'ip -n %s addr add 192.168.56.12/24 dev eth0' % p2, 'ip -n %s link set eth0 up' % p2,
        'ip -n %s addr add 10.244.2.2/32 dev lo' % p2,
        'ip -n %s route add default via 192.168.56.11' % p2,
        'ip -n %s route add 10.244.2.0/24 via 192.168.56.12' % n,
        'ip netns exec %s sysctl -qw net.ipv4.ip_forward=1' % n,
    ]
    sh(' && '.join(cmds))
    servers = [subprocess.Popen(['ip', 'netns', 'exec', ns, sys.executable, '-c', WHOAMI, addr])
               for ns, addr in ((o, '203.0.113.1'), (p2, '10.244.2.2'))]

    def ask(ns, addr):
        for dummy in range(30):
            proc = subprocess.run(['ip', 'netns', 'exec', ns, sys.executable, '-c', ASK, addr],
                                  capture_output=True, text=True, check=False)
            if proc.returncode == 0 or 'refused' not in proc.stderr:
                return proc.stdout.strip() if proc.returncode == 0 else None
            sh('sleep 0.1')
        return None

    def ipmasq(check=False, **args):
        args.setdefault('network', '10.244.0.0/16')
        args.setdefault('subnet', '10.244.1.1/24')
        args['netns'] = n
        return run_module('k8slab.podnet.flannel_ipmasq', args, check=check, diff=True)[0]

    yield {'o': o, 'n': n, 'pod': pod, 'ask': ask, 'ipmasq': ipmasq}
    for s in servers:
        s.terminate()
        s.wait()
    assert save() == root_before, 'the root namespace iptables changed'


def test_pods_way_out(lab):
    n, ask, ipmasq = lab['n'], lab['ask'], lab['ipmasq']
    # without the rules the outside cannot answer a pod: it has no route back to 10.244/16
    assert ask(lab['pod'], '203.0.113.1') is None
    sh('ip netns exec %s iptables -t nat -A POSTROUTING -s 10.9.9.0/24 -j MASQUERADE' % n)
    sh('ip netns exec %s iptables -t nat -N FLANNEL-STALE' % n)
    foreign = [l for l in save(n) if 'FLANNEL' not in l]

    res = ipmasq(check=True)
    assert res['changed'] and not [l for l in save(n) if 'FLANNEL-POSTRTG' in l]
    res = ipmasq()
    assert res['changed'] and not res.get('failed'), res
    rules = save(n)
    assert '-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG' in rules
    assert rules.index('-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG') \
        < rules.index('-A POSTROUTING -s 10.9.9.0/24 -j MASQUERADE')   # inserted at the top
    assert ('-A FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4 -m comment --comment '
            '"flanneld masq" -j MASQUERADE --random-fully') in rules
    assert ('-A FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d 10.244.1.0/24 -m comment --comment '
            '"flanneld masq" -j RETURN') in rules
    assert not [l for l in rules if 'FLANNEL-STALE' in l]
    assert [l for l in rules if 'FLANNEL' not in l] == foreign
    assert not ipmasq()['changed']

    # a pod reaches the outside, which sees the node's eth0 address
    assert ask(lab['pod'], '203.0.113.1') == '10.0.2.15'
    # pod to pod is never NATed
    assert ask(lab['pod'], '10.244.2.2') == '10.244.1.2'

    # a changed subnet rewrites the chain; absent removes it and only it
    assert ipmasq(subnet='10.244.3.0/24')['changed']
    assert ipmasq(state='absent')['changed']
    assert [l for l in save(n) if 'FLANNEL' in l] == []
    assert [l for l in save(n) if 'FLANNEL' not in l] == foreign
    assert ask(lab['pod'], '203.0.113.1') is None


def test_bad_input(lab):
    res = lab['ipmasq'](subnet='10.245.1.0/24')
    assert res.get('failed') and '10.245.1.0/24' in res['msg']
    res = lab['ipmasq'](network='10.244.0.1/16')
    assert res.get('failed') and '10.244.0.1/16' in res['msg']
    assert not [l for l in save(lab['n']) if 'FLANNEL' in l]


NFT_NAT = ('table ip nat {\n chain POSTROUTING {\n  type nat hook postrouting priority 100;\n'
           '  meta l4proto tcp ct state new counter masquerade\n }\n}\n')


def test_a_nat_table_iptables_cannot_read_is_refused_untouched(uid, netns_cleanup):
    """A nat table made with nft that iptables-nft cannot show (iptables-save prints it as a
    comment only): read as empty, the restore would add a second jump on every run."""
    ns = 'hF%sx' % uid
    netns_cleanup.append(ns)
    sh('ip netns add %s' % ns)
    subprocess.run(['ip', 'netns', 'exec', ns, 'nft', '-f', '-'], input=NFT_NAT, text=True,
                   check=True)
    if 'is incompatible' not in sh('ip netns exec %s iptables-save' % ns):
        pytest.skip('this iptables reads the nft table (legacy backend or a newer iptables-nft)')
    before = sh('ip netns exec %s nft list ruleset' % ns)
    res = run_module('k8slab.podnet.flannel_ipmasq', {'network': '10.244.0.0/16',
                                                      'subnet': '10.244.1.1/24', 'netns': ns})[0]
    assert res.get('failed') and 'nat table of netns %s' % ns in res['msg'], res
    assert 'nothing was changed' in res['msg']
    assert sh('ip netns exec %s nft list ruleset' % ns) == before

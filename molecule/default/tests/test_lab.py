"""molecule verify: the lab, checked from outside the collection's own verify role.

Every command runs through Ansible (testinfra's ansible backend with force_ansible), so it
enters the node through the k8slab.podnet.netns connection, exactly as the roles do. The
expectations are read from the inventory data (inventories/netns/group_vars/all/lab.yml), the
observations from the kernel (`ip -j`), the node's host-local store files and its pod records
(/run/podnet/pods/<pod>/pod.json: the store names a pod by its sandbox's id, as in seed 000).
One command per node gathers everything, because every Ansible run costs a second or two.
"""

import ipaddress
import json
import os

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.environ.get('MOLECULE_PROJECT_DIRECTORY',
                         os.path.dirname(os.path.dirname(os.path.dirname(HERE))))


def _load(*parts):
    with open(os.path.join(*parts)) as f:
        return yaml.safe_load(f)


LAB = _load(PROJECT, 'inventories', 'netns', 'group_vars', 'all', 'lab.yml')
# The molecule lab's own name (molecule.yml adds this inventory after inventories/netns).
LAB_NAME = _load(HERE, '..', 'inventory', 'group_vars', 'all', 'molecule.yml')['lab_name']
NODES = LAB['lab_nodes']
PODS = LAB['lab_pods']
STORE = os.path.join(LAB.get('cni_data_dir', '/var/lib/cni/networks'), LAB['cni_network'])
PREFIX = ipaddress.ip_network(LAB['hostonly_cidr']).prefixlen
RECORDS = '/run/podnet/pods'
# The pod that serves HTTP on port 80 (seed 001's httpd).
WEB = next(p for p in PODS if p.get('workload') == 'httpd')

testinfra_hosts = ['k8s_cluster']

_cache = {}


def sh(host, command):
    """Runs a shell command on the node through Ansible (with the molecule lab's name, which
    testinfra's inventory alone does not know) and returns stdout; fails on rc != 0."""
    out = host.ansible('shell', command, check=False, extra_vars={'lab_name': LAB_NAME})
    assert out.get('rc') == 0, out
    return out['stdout']


def node_of(host):
    return host.backend.host


def observe(host):
    """Everything the tests look at on one node, in one command: links, routes, the store,
    and each of its pods' eth0."""
    node = node_of(host)
    if node in _cache:
        return _cache[node]
    pods = [p['name'] for p in PODS if p['node'] == node]
    store = ("python3 -c 'import json, os, sys; d = sys.argv[1]; "
             "print(json.dumps(dict((f, open(os.path.join(d, f), newline=\"\").read()) "
             "for f in os.listdir(d))))' %s" % STORE)
    cmd = ' && '.join(['ip -j addr show', 'ip -j -4 route show', store] +
                      ['ip -n %s -j addr show dev eth0' % p for p in pods] +
                      ['tr -d "\\n" < %s/%s/pod.json; echo' % (RECORDS, p) for p in pods])
    lines = sh(host, cmd).splitlines()
    assert len(lines) == 3 + 2 * len(pods), lines
    data = dict(addr=json.loads(lines[0]), routes=json.loads(lines[1]),
                store=json.loads(lines[2]),
                pods=dict((p, json.loads(line)) for p, line in zip(pods, lines[3:])),
                sandbox=dict((p, json.loads(line)['sandbox']['id'])
                             for p, line in zip(pods, lines[3 + len(pods):])))
    _cache[node] = data
    return data


def v4(links, name):
    for link in links:
        if link['ifname'] == name:
            return ['%s/%s' % (a['local'], a['prefixlen'])
                    for a in link.get('addr_info', []) if a['family'] == 'inet']
    raise AssertionError('no link %s in %s' % (name, [l['ifname'] for l in links]))


def web_ip(host):
    """The web pod's address, as its node's store gives it to the pod's sandbox."""
    import testinfra
    web_host = testinfra.get_host('ansible://%s' % WEB['node'], force_ansible=True,
                                  ansible_inventory=host.backend.ansible_inventory)
    data = observe(web_host)
    owner = '%s\r\neth0' % data['sandbox'][WEB['name']]
    found = [ip for ip, text in data['store'].items() if text == owner]
    assert len(found) == 1, (owner, data['store'])
    return found[0]


def test_interfaces_hold_the_inventory_addresses(host):
    node = node_of(host)
    data = observe(host)
    net = ipaddress.ip_network(NODES[node]['pod_cidr'])
    assert v4(data['addr'], LAB['public_iface']) == ['%s/%d' % (NODES[node]['eth1_ip'], PREFIX)]
    assert v4(data['addr'], LAB['cni_bridge']) == ['%s/%d' % (net.network_address + 1,
                                                              net.prefixlen)]
    # VirtualBox's NAT layout: the same address on every node.
    assert v4(data['addr'], LAB['nat_iface']) == [LAB['nat_ip']]


def test_pods_are_numbered_from_two_as_the_store_says(host):
    node = node_of(host)
    data = observe(host)
    net = ipaddress.ip_network(NODES[node]['pod_cidr'])
    pods = [p['name'] for p in PODS if p['node'] == node]
    got = {}
    for pod in pods:
        addrs = v4(data['pods'][pod], 'eth0')
        assert len(addrs) == 1, (pod, addrs)
        got[pod] = addrs[0]
    # A fresh store hands out .2, .3, ... (the gateway .1 is skipped), one per pod.
    assert sorted(ipaddress.ip_interface(a).ip for a in got.values()) == \
        [net.network_address + 2 + n for n in range(len(pods))]
    for pod, addr in got.items():
        ip = addr.split('/')[0]
        assert addr.endswith('/%d' % net.prefixlen)
        # host-local's file format: '<container id>\r\n<ifname>', no trailing newline; the
        # container id is the pod sandbox's (64 hex), as the runtime passes it in CNI_CONTAINERID.
        sandbox = data['sandbox'][pod]
        assert len(sandbox) == 64 and int(sandbox, 16) >= 0, (pod, sandbox)
        assert data['store'].get(ip) == '%s\r\neth0' % sandbox, (pod, ip, data['store'])
    assert 'lock' in data['store']
    assert [k for k in data['store'] if k.startswith('last_reserved_ip.')]


def test_hostgw_routes_go_over_eth1_never_eth0(host):
    node = node_of(host)
    routes = observe(host)['routes']
    cluster = ipaddress.ip_network(LAB['cluster_cidr'])
    for peer, spec in NODES.items():
        if peer == node:
            continue
        match = [r for r in routes if r['dst'] == spec['pod_cidr']]
        assert len(match) == 1, (peer, routes)
        assert (match[0].get('gateway'), match[0]['dev']) == (
            spec['eth1_ip'], LAB['public_iface'])
    for r in routes:
        if r['dst'] != 'default' and ipaddress.ip_network(r['dst']).subnet_of(cluster):
            assert r['dev'] != LAB['nat_iface'], r


def test_httpd_answers_from_every_node_and_pod(host):
    web = WEB
    ip = web_ip(host)
    node = node_of(host)
    curl = 'curl -sS --max-time 5 http://%s/' % ip
    cmds = [curl] + ['ip netns exec %s %s' % (p['name'], curl)
                     for p in PODS if p['node'] == node and p['name'] != web['name']]
    out = sh(host, ' && '.join(cmds))
    assert out.count(web['name']) >= len(cmds), out


def test_seed_path_with_the_real_traceroute(host):
    """The seed's exercise with traceroute(8) itself, not the collection's probe: a pod on
    every other node reaches httpd through its own cni0 gateway and node-1's eth1."""
    node = node_of(host)
    web = WEB
    client = next((p for p in PODS if p['node'] == node and p['name'] != web['name']), None)
    if node == web['node'] or client is None:
        pytest.skip('the seed traces from a pod on another node')
    ip = web_ip(host)
    out = sh(host, 'ip netns exec %s traceroute -n -q 1 -w 1 -m 5 %s' % (client['name'], ip))
    # ' 1  10.244.2.1  0.067 ms': the hop number, then the address (or '*').
    hops = [line.split()[1] for line in out.splitlines()[1:] if line.split()]
    gateway = ipaddress.ip_network(NODES[node]['pod_cidr']).network_address + 1
    assert hops == [str(gateway), NODES[web['node']]['eth1_ip'], ip], out

"""The lab topology filters (plugins/filter/topology.py): inventory validation and the module
arguments the roles derive from it. Pure logic, no root needed."""

import copy
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), '.collections'))

from ansible.errors import AnsibleFilterError  # noqa: E402
from ansible_collections.k8slab.podnet.plugins.filter.topology import (  # noqa: E402
    FilterModule, cidr_host, hostgw_peers, ipam_containers, pod_specs, pod_veth_name,
    pod_veth_pairs, topology_errors)

# The reference topology (inventories/topology.yml), as inventories/netns/group_vars/all/lab.yml has it.
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
HOSTS = ['controlplane', 'node-1', 'node-2']


def errors(nodes=None, pods=None, **kw):
    args = dict(lab_pods=PODS if pods is None else pods, cluster_cidr='10.244.0.0/16',
                hostonly_cidr='192.168.56.0/24', hostonly_host_ip='192.168.56.1',
                cluster_hosts=HOSTS, lab_name='k8slab', lab_name_max=16)
    args.update(kw)
    return topology_errors(NODES if nodes is None else nodes, **args)


def nodes_with(node, **changes):
    nodes = copy.deepcopy(NODES)
    nodes[node].update(changes)
    return nodes


def only(errs, *fragments):
    """Exactly one error, and it names every fragment (the bad values)."""
    assert len(errs) == 1, errs
    for fragment in fragments:
        assert fragment in errs[0], (fragment, errs)
    return errs[0]


def test_reference_topology_is_valid():
    assert errors() == []


def test_overlapping_pod_cidrs_name_both():
    only(errors(nodes_with('node-2', pod_cidr='10.244.0.128/25')),
         '10.244.0.128/25', 'node-2', '10.244.0.0/24', 'controlplane', 'overlaps')


def test_pod_cidr_outside_cluster_cidr():
    only(errors(nodes_with('node-1', pod_cidr='10.245.1.0/24')),
         'node-1', '10.245.1.0/24', 'outside cluster_cidr 10.244.0.0/16')


def test_pod_cidr_with_host_bits_or_garbage():
    only(errors(nodes_with('node-1', pod_cidr='10.244.1.1/24')), 'node-1', '10.244.1.1/24')
    only(errors(nodes_with('node-1', pod_cidr='banana')), 'banana')


def test_pod_cidr_too_small():
    only(errors(nodes_with('node-1', pod_cidr='10.244.1.0/31')), '10.244.1.0/31', 'too small')


def test_pod_on_unknown_node():
    pods = PODS + [{'name': 'lost', 'node': 'node-9', 'workload': 'sleep'}]
    only(errors(pods=pods), 'lost', "'node-9'", 'unknown node')


def test_duplicate_pod_on_a_node_but_not_across_nodes():
    pods = PODS + [{'name': 'httpd', 'node': 'node-1', 'workload': 'sleep'}]
    only(errors(pods=pods), 'duplicate pod name httpd on node node-1')
    # The same name on another node is another pod (its own namespace, store and veth).
    assert errors(pods=PODS + [{'name': 'httpd', 'node': 'node-2'}]) == []


def test_eth1_outside_hostonly_cidr():
    only(errors(nodes_with('node-2', eth1_ip='192.168.57.12')),
         'node-2', '192.168.57.12', 'outside hostonly_cidr 192.168.56.0/24')
    only(errors(nodes_with('node-2', eth1_ip='192.168.56.255')), '192.168.56.255')
    only(errors(nodes_with('node-2', eth1_ip='not-an-ip')), "'not-an-ip'")


def test_duplicate_eth1_addresses():
    only(errors(nodes_with('node-2', eth1_ip='192.168.56.11')),
         'node-1', 'node-2', 'same eth1_ip 192.168.56.11')


def test_eth1_is_the_host_side():
    only(errors(nodes_with('node-2', eth1_ip='192.168.56.1')), '192.168.56.1', 'hostonly_host_ip')


def test_cluster_host_without_lab_nodes_entry():
    only(errors(cluster_hosts=HOSTS + ['node-3']), 'node-3', 'no lab_nodes entry')


def test_lab_nodes_entry_not_in_inventory():
    only(errors(cluster_hosts=HOSTS[:2]), 'node-2', 'not a host')


def test_empty_inventory_group():
    errs = errors(cluster_hosts=[])
    assert any('has no hosts' in e for e in errs), errs


@pytest.mark.parametrize('name', ['Bad_Name', 'a/b', '-x', 'x-', '', 'a' * 64])
def test_bad_pod_names(name):
    only(errors(pods=PODS + [{'name': name, 'node': 'node-1'}]), repr(name)[:20])


def test_node_name_too_long_for_a_switch_port():
    nodes = dict(NODES, **{'worker-number-one': NODES['node-2']})
    del nodes['node-2']
    hosts = ['controlplane', 'node-1', 'worker-number-one']
    only(errors(nodes=nodes, pods=PODS[:2], cluster_hosts=hosts, node_name_max=15),
         "'worker-number-one'", 'at most 15')


def test_unknown_pod_keys_and_bad_ports():
    only(errors(pods=PODS + [{'name': 'db', 'node': 'node-1', 'image': 'mysql'}]),
         'pod db', 'image')
    only(errors(pods=PODS + [{'name': 'db', 'node': 'node-1', 'port': 0}]), 'pod db', 'port 0')
    assert errors(pods=PODS + [{'name': 'db', 'node': 'node-1', 'port': 8080}]) == []


def test_unknown_workload():
    only(errors(pods=PODS + [{'name': 'db', 'node': 'node-1', 'workload': 'mysql'}]),
         'db', "'mysql'")


def test_lab_name_too_long_or_invalid():
    only(errors(lab_name='k8slab-much-too-long'), "'k8slab-much-too-long'", 'at most 16')
    only(errors(lab_name='K8S LAB'), "'K8S LAB'")


def test_bad_networks_named():
    only(errors(cluster_cidr='10.244.0.1/16'), "'10.244.0.1/16'")
    errs = errors(hostonly_cidr='10.244.56.0/24')
    assert any('overlaps hostonly_cidr' in e for e in errs), errs


def test_more_pods_than_addresses():
    nodes = nodes_with('node-1', pod_cidr='10.244.1.0/30')
    pods = [{'name': 'p%d' % i, 'node': 'node-1'} for i in range(2)]
    only(errors(nodes=nodes, pods=pods), 'node-1', '2 pods', '10.244.1.0/30', 'only 1')


def test_malformed_data_is_reported_not_raised():
    assert errors(nodes={}) != []
    assert errors(pods='httpd') != []
    assert errors(nodes={'node-1': 'x'}, cluster_hosts=['node-1'], pods=[]) != []
    assert errors(pods=['httpd']) != []


def test_hostgw_peers_are_the_other_nodes():
    assert hostgw_peers(NODES, 'node-2') == [
        {'subnet': '10.244.0.0/24', 'gateway': '192.168.56.10'},
        {'subnet': '10.244.1.0/24', 'gateway': '192.168.56.11'},
    ]
    with pytest.raises(AnsibleFilterError):
        hostgw_peers(NODES, 'node-9')


def test_cidr_host():
    assert cidr_host('10.244.1.0/24') == '10.244.1.1/24'
    assert cidr_host('10.244.1.0/24', 2) == '10.244.1.2/24'
    with pytest.raises(AnsibleFilterError):
        cidr_host('10.244.1.1/24')


def test_veth_names_are_stable_and_short():
    name = pod_veth_name('httpd')
    assert name == pod_veth_name('httpd') != pod_veth_name('client-1')
    assert name.startswith('veth') and len(name) == 12
    int(name[4:], 16)


def test_ipam_containers_and_veth_pairs():
    sid = 'ab' * 32
    assert ipam_containers(['httpd', {'name': 'client-1', 'id': sid}]) == [
        {'container_id': 'httpd', 'ifname': 'eth0'},
        {'container_id': sid, 'ifname': 'eth0'}]
    # With the sandboxes, a sandbox id maps back to its pod's namespace and veth name.
    by_id = [{'container_id': sid, 'ifname': 'eth0', 'ip': '10.244.1.3/24',
              'gateway': '10.244.1.1'}]
    pair = pod_veth_pairs(by_id, 'cni0', '10.244.0.0/16',
                          sandboxes=[{'name': 'client-1', 'id': sid}])[0]
    assert pair['peer_netns'] == 'client-1' and pair['name'] == pod_veth_name('client-1')
    allocs = [{'container_id': 'httpd', 'ifname': 'eth0', 'ip': '10.244.1.2/24',
               'gateway': '10.244.1.1'}]
    assert pod_veth_pairs(allocs, 'cni0', '10.244.0.0/16', mtu='1500') == [{
        'name': pod_veth_name('httpd'), 'peer': 'eth0', 'peer_netns': 'httpd',
        'master': 'cni0', 'hairpin': True, 'mtu': 1500, 'addresses': ['10.244.1.2/24'],
        'routes': [{'dst': 'default', 'via': '10.244.1.1'},
                   {'dst': '10.244.0.0/16', 'via': '10.244.1.1'}]}]


def test_filters_registered():
    wanted = {'topology_errors', 'hostgw_peers', 'cidr_host', 'pod_veth_name', 'pod_veth_pairs',
              'ipam_containers', 'pod_specs'}
    assert set(FilterModule().filters()) >= wanted


# ---- pods and containers (PODS.md) ----------------------------------------------------------

SEED000 = {'name': 'test-pod', 'node': 'node-2', 'containers': [
    {'name': 'lab-web', 'workload': 'http', 'port': 80},
    {'name': 'lab-web-2', 'workload': 'http', 'port': 8080}]}


def test_long_form_pods_are_valid():
    app = {'name': 'app-1', 'node': 'node-1', 'namespace': 'test001',
           'labels': {'app': 'lab-web'}, 'containers': [
               {'name': 'lab-web', 'workload': 'http', 'port': 8080}]}
    dns = {'name': 'dns', 'node': 'node-1', 'restart_policy': 'OnFailure', 'containers': [
        {'name': 'dnsmasq', 'workload': 'command', 'command': ['dnsmasq', '-k']},
        {'name': 'echo', 'workload': 'echo', 'port': 53}]}
    assert errors(pods=PODS + [SEED000, app, dns]) == []


@pytest.mark.parametrize('containers, words', [
    ([], ['pod bad', 'containers is empty']),
    ([{'name': 'web', 'workload': 'http', 'port': 80},
      {'name': 'web', 'workload': 'http', 'port': 8080}], ['container name web', 'twice']),
    ([{'name': 'db', 'workload': 'mysql'}], ["'mysql'", 'unknown']),
    ([{'name': 'web', 'workload': 'http', 'port': 65536}], ['web', 'port 65536', '1-65535']),
    ([{'name': 'web', 'workload': 'http', 'port': 0}], ['web', 'port 0']),
    ([{'name': 'web', 'workload': 'http'}], ['web', 'port None']),
    ([{'name': 'run', 'workload': 'command'}], ['run', 'command']),
    ([{'name': 'Web', 'workload': 'sleep'}], ["'Web'"]),
    ([{'name': 'web', 'workload': 'sleep', 'image': 'nginx'}], ['unknown keys image']),
])
def test_bad_containers_are_named(containers, words):
    only(errors(pods=PODS + [{'name': 'bad', 'node': 'node-1', 'containers': containers}]),
         *words)


def test_bad_pod_fields_are_named():
    only(errors(pods=PODS + [{'name': 'x', 'node': 'node-1', 'restart_policy': 'Sometimes'}]),
         "'Sometimes'")
    only(errors(pods=PODS + [dict(SEED000, workload='http')]), 'either containers')
    only(errors(pods=PODS + [{'name': 'x', 'node': 'node-1', 'namespace': 'Bad_NS'}]),
         "'Bad_NS'")
    only(errors(pods=PODS + [{'name': 'x', 'node': 'node-1', 'containers': 'web'}]),
         'must be a list')


def test_pod_specs_expand_the_shorthand():
    specs = pod_specs(PODS + [SEED000], 'node-1')
    assert [s['name'] for s in specs] == ['httpd', 'client-1']
    assert specs[0]['containers'] == [{'name': 'httpd', 'workload': 'http', 'port': 80}]
    assert specs[1]['containers'] == [{'name': 'client-1', 'workload': 'sleep'}]
    assert specs[0]['veth'] == pod_veth_name('httpd') and specs[0]['namespace'] == 'default'
    two = pod_specs([SEED000], keys=['name', 'containers'])
    assert two == [{'name': 'test-pod', 'containers': SEED000['containers']}]
    # The pods role takes its modules' views from the long form (pods_on_node): the same.
    assert pod_specs(specs) == specs
    assert pod_specs(specs, keys=['name', 'veth']) == pod_specs(PODS + [SEED000], 'node-1',
                                                                keys=['name', 'veth'])

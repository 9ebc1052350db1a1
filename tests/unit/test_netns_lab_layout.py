"""The single-host lab's layout (plugins/module_utils/netns_lab.py) and its filter
(plugins/filter/netns_lab.py): names, their limits, the wiring as data, and when a node's UTS
namespace is entered. The wiring is compared with what the role's Jinja vars rendered for the
reference topology before they were replaced."""

import os
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), '.collections'))

from ansible.errors import AnsibleFilterError  # noqa: E402
from ansible_collections.k8slab.podnet.plugins.filter.netns_lab import (  # noqa: E402
    FilterModule, netns_lab_layout)
from ansible_collections.k8slab.podnet.plugins.module_utils import netns_lab  # noqa: E402
from ansible_collections.k8slab.podnet.plugins.module_utils.netns_lab import (  # noqa: E402
    LayoutError, check_names, enters_uts, lab_name_error, layout, node_name_error,
    node_nsenter_options, nsenter_options)

NODES = ['controlplane', 'node-1', 'node-2']
LAB_NODES = {
    'controlplane': {'eth1_ip': '192.168.56.10', 'pod_cidr': '10.244.0.0/24'},
    'node-1': {'eth1_ip': '192.168.56.11', 'pod_cidr': '10.244.1.0/24'},
    'node-2': {'eth1_ip': '192.168.56.12', 'pod_cidr': '10.244.2.0/24'},
}
IPS = dict((n, v['eth1_ip']) for n, v in LAB_NODES.items())


# ---- names --------------------------------------------------------------------------------
@pytest.mark.parametrize('lab', ['k8slab', 'hc', 'a', 'x' * 16, 'lab-2', '0lab'])
def test_good_lab_names(lab):
    assert lab_name_error(lab) is None


@pytest.mark.parametrize('lab', ['x' * 17, 'kd_bad', 'KdBad', 'kd-', '-kd', 'kd/x', '', None, 7])
def test_bad_lab_names_name_the_value_and_the_limit(lab):
    error = lab_name_error(lab)
    assert error and repr(lab) in error and '16' in error


@pytest.mark.parametrize('node', ['node-1', 'controlplane', 'n', 'N_1.a', 'x' * 15])
def test_good_node_names(node):
    assert node_name_error(node) is None


@pytest.mark.parametrize('node', ['x' * 16, 'node-', '.node', 'no de', 'a/b', '', 'vboxnet0'])
def test_bad_node_names(node):
    error = node_name_error(node)
    assert error and repr(node) in error and '15' in error


def test_check_names_raises_for_the_first_bad_name():
    check_names('hc', NODES)
    with pytest.raises(LayoutError, match="'node_'"):
        check_names('hc', ['node-1', 'node_', 'x' * 20])


def test_namespace_names_and_tree():
    data = layout('hc', NODES)
    assert data['namespaces'] == [
        'hc-host', 'hc-hostonly', 'hc-outside', 'hc-controlplane', 'hc-node-1', 'hc-node-2',
        'hc-controlplane-nat', 'hc-node-1-nat', 'hc-node-2-nat']
    assert data['endpoints'] == ['hc-host', 'hc-hostonly', 'hc-outside']
    assert data['dir'] == '/run/k8slab/hc' and data['record'] == '/run/k8slab/hc/lab.json'
    assert data['nodes'][1] == {
        'name': 'node-1', 'netns': 'hc-node-1', 'nat_netns': 'hc-node-1-nat',
        'mount_ns': '/run/k8slab/hc/mnt/node-1', 'uts_ns': '/run/k8slab/hc/uts/node-1',
        'dir': '/run/k8slab/hc/nodes/node-1'}
    assert netns_lab.node_dir('hc', 'node-1', '/etc/cni') == '/run/k8slab/hc/nodes/node-1/etc/cni'
    # names and paths only: nothing of the wiring
    assert 'pairs' not in data and 'bridges' not in data


def test_the_longest_names_fit_the_kernels_limits():
    lab, node = 'x' * netns_lab.LAB_NAME_MAX, 'y' * netns_lab.NODE_NAME_MAX
    data = layout(lab, [node], {node: '192.168.56.10'})
    for pair in data['pairs']:
        for name in (pair['name'], pair['peer']):
            assert len(name) <= 15, name  # IFNAMSIZ - 1
    for ns in data['namespaces']:
        assert len(ns) <= 255 and '/' not in ns


# ---- wiring -------------------------------------------------------------------------------
def test_wiring_of_the_reference_lab():
    data = layout('hc', NODES, IPS)
    assert data['bridges'] == [
        {'name': 'br0', 'netns': 'hc-hostonly', 'addresses': []},
        {'name': 'br0', 'netns': 'hc-outside', 'addresses': ['203.0.113.1/24']},
    ] + [{'name': 'lan0', 'netns': 'hc-%s-nat' % n,
          'addresses': ['10.0.2.2/24', '10.0.2.3/24']} for n in NODES]
    nat = [{'name': 'lan0-node', 'netns': 'hc-%s-nat' % n, 'master': 'lan0', 'peer': 'eth0',
            'peer_netns': 'hc-%s' % n, 'addresses': ['10.0.2.15/24'],
            'routes': [{'dst': 'default', 'via': '10.0.2.2'}]} for n in NODES]
    hostonly = [{'name': 'vboxnet0', 'netns': 'hc-hostonly', 'master': 'br0', 'peer': 'vboxnet0',
                 'peer_netns': 'hc-host', 'addresses': ['192.168.56.1/24']}] + [
        {'name': n, 'netns': 'hc-hostonly', 'master': 'br0', 'peer': 'eth1',
         'peer_netns': 'hc-%s' % n, 'mtu': 1500, 'addresses': ['%s/24' % IPS[n]]} for n in NODES]
    outside = [{'name': n, 'netns': 'hc-outside', 'master': 'br0', 'peer': 'wan0',
                'peer_netns': 'hc-%s-nat' % n, 'addresses': ['203.0.113.%d/24' % (10 + i)],
                'routes': [{'dst': 'default', 'via': '203.0.113.1'}]}
               for i, n in enumerate(NODES)]
    # NAT pairs first: a node's eth0 gets a lower interface index than eth1, as on a VM
    assert data['pairs'] == nat + hostonly + outside
    assert data['routers'] == [{'netns': 'hc-%s-nat' % n, 'out_iface': 'wan0',
                                'source': '10.0.2.15/24'} for n in NODES]
    assert data['outside'] == {'netns': 'hc-outside', 'address': '203.0.113.1', 'port': 80,
                               'root': '/run/k8slab/hc/outside/www',
                               'pidfile': '/run/k8slab/hc/outside/http.pid'}
    assert data['dns'] == {'address': '10.0.2.3', 'servers': [
        {'netns': 'hc-%s-nat' % n, 'conf': '/run/k8slab/hc/dns/%s/dnsmasq.conf' % n,
         'pidfile': '/run/k8slab/hc/dns/%s/dnsmasq.pid' % n} for n in NODES]}


def test_wiring_follows_the_inventory():
    data = layout('hc', ['a'], {'a': '172.16.0.5'}, hostonly_cidr='172.16.0.0/16',
                  hostonly_host_ip='172.16.0.1', public_iface='ens4', nat_iface='ens3',
                  nat_ip='10.9.0.15/16', nat_gateway='10.9.0.2', nat_dns='10.9.0.3',
                  outside_cidr='198.51.100.0/25', outside_ip='198.51.100.100', router_offset='3')
    by = dict((p['peer'], p) for p in data['pairs'])
    assert by['ens3']['addresses'] == ['10.9.0.15/16']
    assert by['ens3']['routes'] == [{'dst': 'default', 'via': '10.9.0.2'}]
    assert by['ens4']['addresses'] == ['172.16.0.5/16']
    assert by['vboxnet0']['addresses'] == ['172.16.0.1/16']
    assert by['wan0']['addresses'] == ['198.51.100.3/25']
    assert by['wan0']['routes'] == [{'dst': 'default', 'via': '198.51.100.100'}]
    assert data['bridges'][2]['addresses'] == ['10.9.0.2/16', '10.9.0.3/16']
    assert data['dns']['address'] == '10.9.0.3'
    # None is "not set": the default
    assert layout('hc', ['a'], {'a': '192.168.56.10'}, nat_iface=None)['pairs'][0]['peer'] == 'eth0'


@pytest.mark.parametrize('kw, needle', [
    (dict(nat_ip='10.0.2.300/24'), 'nat_ip'),
    (dict(hostonly_cidr='192.168.56/x'), 'hostonly_cidr'),
    (dict(outside_cidr='203.0.113.0/30'), 'netns_lab_router_offset'),
    (dict(router_offset=255), 'no address for the NAT router of node a'),  # broadcast
    (dict(router_offset=300), 'no address for the NAT router of node a'),
    (dict(router_offset=1), 'no address for the NAT router'),  # the server's own
    (dict(colour='blue'), 'unknown layout options: colour'),
])
def test_bad_wiring_inputs_are_named(kw, needle):
    with pytest.raises(LayoutError, match=needle):
        layout('hc', ['a'], {'a': '192.168.56.10'}, **kw)


def test_a_lab_to_build_needs_nodes():
    with pytest.raises(LayoutError, match='needs nodes'):
        layout('hc', [], {})
    assert layout('hc', [], None)['namespaces'] == ['hc-host', 'hc-hostonly', 'hc-outside']


def test_a_node_without_address_is_named():
    with pytest.raises(LayoutError, match='node-2'):
        layout('hc', NODES, {'controlplane': '192.168.56.10', 'node-1': '192.168.56.11'})


# ---- the filter ---------------------------------------------------------------------------
def test_filter_reads_lab_nodes_and_names_bad_values():
    assert FilterModule().filters()['netns_lab_layout'] is netns_lab_layout
    assert netns_lab_layout('hc', NODES, LAB_NODES) == layout('hc', NODES, IPS)
    assert netns_lab_layout('hc', NODES) == layout('hc', NODES)
    with pytest.raises(AnsibleFilterError, match="'kd_bad'"):
        netns_lab_layout('kd_bad', NODES)
    with pytest.raises(AnsibleFilterError, match='node-2'):
        netns_lab_layout('hc', NODES, {'controlplane': {'eth1_ip': '192.168.56.10'},
                                       'node-1': {'eth1_ip': '192.168.56.11'}})


# ---- entering a node's UTS namespace: one decision for k8slab exec and the connection ----
def test_uts_is_entered_only_when_a_namespace_is_pinned():
    with tempfile.NamedTemporaryFile(prefix='hC-uts-') as plain:
        # exists, but is a plain file (what a killed build leaves): not entered
        assert os.path.exists(plain.name) and not enters_uts(plain.name)
        assert nsenter_options('/m', '/run/netns/x', plain.name) == [
            '--mount=/m', '--net=/run/netns/x']
    assert not enters_uts('/nonexistent/hC-uts')
    # a namespace file (on nsfs, as a pinned one is): entered, between mount and net
    assert enters_uts('/proc/self/ns/uts')
    assert nsenter_options('/m', '/run/netns/x', '/proc/self/ns/uts') == [
        '--mount=/m', '--uts=/proc/self/ns/uts', '--net=/run/netns/x']


def test_node_nsenter_options_use_the_standard_paths():
    # no such lab here: the UTS file is not pinned, so only mount and net
    assert node_nsenter_options('hc-none', 'node-1') == [
        '--mount=/run/k8slab/hc-none/mnt/node-1', '--net=/run/netns/hc-none-node-1']

"""The single-host lab's neighbour-table budget (plugins/filter/neigh.py)."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, '.collections'))

from ansible.errors import AnsibleFilterError  # noqa: E402
from ansible_collections.k8slab.podnet.plugins.filter.neigh import neigh_entries  # noqa: E402

REFERENCE_NODES = ['controlplane', 'node-1', 'node-2']
# The reference inventory's pods (inventories/topology.yml): 2, 3 and 4 a node.
REFERENCE_PODS = [dict(name=name, node=node) for node, names in (
    ('controlplane', ('client-0', 'kube-dns')),
    ('node-1', ('httpd', 'client-1', 'app-3')),
    ('node-2', ('client-2', 'test-pod', 'app-1', 'app-2'))) for name in names]


def lab(nodes, pods_per_node):
    names = ['node-%d' % i for i in range(nodes)]
    return names, [dict(name='p%d' % j, node=n) for n in names for j in range(pods_per_node)]


def test_the_reference_lab_as_measured():
    # Counted on a built and verified reference lab (ip -4 neigh in every namespace, FAILED
    # and INCOMPLETE left out): nodes 7 + 8 + 9, the host 3, routers 2 + 2 + 2, the outside 3,
    # pods 2 + 2 (controlplane), 3 + 2 + 2 (node-1), 4 + 2 + 2 + 2 (node-2): 57.
    got = neigh_entries(REFERENCE_NODES, REFERENCE_PODS)
    assert (got['nodes'], got['pods']) == (3, 9)
    assert got['entries'] == 57
    assert got['per'] == dict(node_eth0=3, node_dns=3, node_eth1=6, host=6, routers=6,
                              outside=3, cni0=9, pod_gateway=9, same_node=12)


def test_the_issue_sizes_against_the_default_1024():
    assert neigh_entries(*lab(10, 20))['entries'] == 940           # must build and verify
    assert neigh_entries(*lab(12, 2))['entries'] == 288
    assert neigh_entries(*lab(10, 25))['entries'] > 1024           # ~250 pods overflow
    assert neigh_entries(*lab(12, 21))['entries'] > 1024


def test_a_pod_on_an_unknown_node_is_named():
    with pytest.raises(AnsibleFilterError, match="pod 'x' is on node 'node-9'"):
        neigh_entries(REFERENCE_NODES, [dict(name='x', node='node-9')])
    assert neigh_entries([], [])['entries'] == 0

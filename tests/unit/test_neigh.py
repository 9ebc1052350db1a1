"""The single-host lab's neighbour-table budget (plugins/filter/neigh.py)."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, '.collections'))

from ansible.errors import AnsibleFilterError  # noqa: E402
from ansible_collections.k8slab.podnet.plugins.filter.neigh import neigh_entries  # noqa: E402

REFERENCE_NODES = ['controlplane', 'node-1', 'node-2']
REFERENCE_PODS = [dict(name='httpd', node='node-1'), dict(name='client-1', node='node-1'),
                  dict(name='client-2', node='node-2'), dict(name='client-0', node='controlplane')]


def lab(nodes, pods_per_node):
    names = ['node-%d' % i for i in range(nodes)]
    return names, [dict(name='p%d' % j, node=n) for n in names for j in range(pods_per_node)]


def test_the_reference_lab_as_measured():
    # Counted on a built and verified reference lab (ip -4 neigh in every namespace): nodes
    # 4 + 5 + 4, routers 2 + 2 + 2, the outside 3, pods 1 + 2 + 2 + 1: 28.
    got = neigh_entries(REFERENCE_NODES, REFERENCE_PODS)
    assert (got['nodes'], got['pods']) == (3, 4)
    assert got['entries'] == 28
    assert got['per'] == dict(node_eth0=3, node_eth1=6, routers=6, outside=3, cni0=4,
                              pod_gateway=4, same_node=2)


def test_the_issue_sizes_against_the_default_1024():
    assert neigh_entries(*lab(10, 20))['entries'] == 910           # must build and verify
    assert neigh_entries(*lab(12, 2))['entries'] == 252
    assert neigh_entries(*lab(10, 25))['entries'] > 1024           # ~250 pods overflow
    assert neigh_entries(*lab(12, 21))['entries'] > 1024


def test_a_pod_on_an_unknown_node_is_named():
    with pytest.raises(AnsibleFilterError, match="pod 'x' is on node 'node-9'"):
        neigh_entries(REFERENCE_NODES, [dict(name='x', node='node-9')])
    assert neigh_entries([], [])['entries'] == 0

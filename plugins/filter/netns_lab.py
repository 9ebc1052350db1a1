# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""The single-host lab's layout for the netns_lab role: one filter over the one description in
module_utils/netns_lab.py, so the role holds no names, paths or wiring of its own."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.k8slab.podnet.plugins.module_utils.netns_lab import LayoutError, layout


def netns_lab_layout(lab, nodes, lab_nodes=None, **options):
    """``lab | k8slab.podnet.netns_lab_layout(nodes, lab_nodes, hostonly_cidr=..., ...)``.

    lab: the lab's name; nodes: the node names (group k8s_cluster); lab_nodes: the inventory's
    dict node -> {eth1_ip, ...}, or None for names and paths only (teardown); options: the
    wiring inputs of module_utils.netns_lab.WIRING_DEFAULTS (None takes the default).
    Returns module_utils.netns_lab.layout()'s dict; AnsibleFilterError names a bad value.
    """
    node_ips = None
    if lab_nodes is not None:
        node_ips = dict((n, (lab_nodes.get(n) or {}).get('eth1_ip')) for n in nodes)
    try:
        return layout(lab, list(nodes), node_ips, **options)
    except LayoutError as e:
        raise AnsibleFilterError(str(e)) from e


class FilterModule(object):
    def filters(self):
        return {'netns_lab_layout': netns_lab_layout}

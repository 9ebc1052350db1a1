#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: flannel_ipmasq
short_description: Keep the masquerade rules flanneld --ip-masq installs on a node
description:
  - Keeps the C(nat) chain C(FLANNEL-POSTRTG) and its entry point C(-A POSTROUTING -m comment
    --comment "flanneld masq" -j FLANNEL-POSTRTG) (inserted at the top), as current flanneld
    writes them when C(FLANNEL_IPMASQ=true), in one C(iptables-restore --noflush) run.
  - "The chain, in flanneld's order: packets kube-proxy marked (C(0x4000)) are left to
    KUBE-POSTROUTING; pod to pod (C(-s network -d network)) is never NATed; pod traffic leaving
    the cluster network (not multicast) is masqueraded; traffic from outside the network to this
    node's own O(subnet) is not; traffic from the node to other nodes' pods is masqueraded."
  - B(Ownership.) Every C(FLANNEL-*) chain of the C(nat) table and the built-in chain rules
    that jump to one; stale ones are removed; every other rule of every table is untouched.
    flanneld's C(FLANNEL-FWD) (filter table) is not this module's.
version_added: "1.0.0"
author: k8slab.podnet developers (@k8slab)
options:
  network:
    description: The flannel network (C(FLANNEL_NETWORK)), e.g. C(10.244.0.0/16).
    type: str
  subnet:
    description:
      - This node's pod subnet (C(FLANNEL_SUBNET)); the gateway form C(10.244.1.1/24) is
        accepted and taken as C(10.244.1.0/24). Must lie inside O(network).
    type: str
  random_fully:
    description: Add C(--random-fully) to the masquerade rules, as flanneld does when iptables supports it.
    type: bool
    default: true
  state:
    description: C(present) keeps the rules (O(network) and O(subnet) required); C(absent) removes them.
    type: str
    choices: [present, absent]
    default: present
attributes:
  platform:
    support: full
    platforms: linux
    description: Needs C(iptables-save)/C(iptables-restore) and root.
extends_documentation_fragment:
  - k8slab.podnet.attributes
  - k8slab.podnet.netns
'''

EXAMPLES = r'''
- name: The pods' way out (FLANNEL_IPMASQ=true)
  k8slab.podnet.flannel_ipmasq:
    network: 10.244.0.0/16
    subnet: 10.244.1.1/24
'''

RETURN = r'''
rules:
  description: The owned rules after the run, as C(iptables-save) lines.
  returned: always
  type: list
  elements: str
restore:
  description: The C(iptables-restore --noflush) input that was (or in check mode would be) applied.
  returned: always
  type: list
  elements: str
'''

import ipaddress

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.k8slab.podnet.plugins.module_utils.iproute import (
    IprouteError, validate_netns_name)
from ansible_collections.k8slab.podnet.plugins.module_utils.iptables import sync_module

CHAIN = 'FLANNEL-POSTRTG'
COMMENT = '-m comment --comment "flanneld masq"'


def masq_rules(network, subnet, random_fully=True):
    """flanneld's ip-masq rules for ``network`` and this node's ``subnet`` as an owned view of
    the nat table (see plugins/module_utils/iptables.py), in iptables-save form."""
    masq = 'MASQUERADE' + (' --random-fully' if random_fully else '')
    n, sn = str(network), str(subnet)
    return {'chains': {CHAIN: [
        '-m mark --mark 0x4000/0x4000 %s -j RETURN' % COMMENT,
        '-s %s -d %s %s -j RETURN' % (n, n, COMMENT),
        '-s %s ! -d 224.0.0.0/4 %s -j %s' % (n, COMMENT, masq),
        '! -s %s -d %s %s -j RETURN' % (n, sn, COMMENT),
        '! -s %s -d %s %s -j %s' % (n, n, COMMENT, masq),
    ]}, 'jumps': {'POSTROUTING': ['%s -j %s' % (COMMENT, CHAIN)]}}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            network=dict(type='str'),
            subnet=dict(type='str'),
            random_fully=dict(type='bool', default=True),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            netns=dict(type='str'),
        ),
        required_if=[('state', 'present', ('network', 'subnet'))],
        supports_check_mode=True,
    )
    p = module.params
    if p['netns'] is not None:
        try:
            validate_netns_name(p['netns'], 'netns')
        except IprouteError as e:
            module.fail_json(msg=str(e))
    view = {'chains': {}, 'jumps': {}}
    if p['state'] == 'present':
        try:
            network = ipaddress.ip_network(p['network'], strict=True)
        except ValueError as e:
            module.fail_json(msg='network %r is not a network: %s' % (p['network'], e))
        try:
            subnet = ipaddress.ip_interface(p['subnet']).network
        except ValueError as e:
            module.fail_json(msg='subnet %r is not a subnet: %s' % (p['subnet'], e))
        if network.version != 4 or subnet.version != 4 or not subnet.subnet_of(network):
            module.fail_json(msg='subnet %s is not inside network %s (IPv4)' % (subnet, network))
        view = masq_rules(network, subnet, p['random_fully'])
    sync_module(module, 'FLANNEL-', {'nat': view})


if __name__ == '__main__':
    main()

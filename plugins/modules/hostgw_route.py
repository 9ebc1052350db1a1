#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: hostgw_route
short_description: Keep the routes of flannel's host-gw backend
description:
  - Keeps one route per peer node, C(<peer pod subnet> via <peer address> dev <dev>), the
    routes flannel's C(host-gw) backend maintains so that pods reach pods on other nodes
    without encapsulation.
  - Each route is exactly what flannel adds (C({Dst, Gw, LinkIndex}) and nothing else), the
    same as C(ip route add 10.244.1.0/24 via 192.168.56.11 dev eth1), that is table main, proto boot,
    scope global, no metric.
  - A route to a peer subnet with another gateway or device (same destination, metric 0) is
    replaced with C(ip route replace).
  - B(Ownership.) The module owns the unicast routes in table main whose destination lies inside
    O(cluster_cidr) and whose device is O(dev), except kernel connected routes (those belong to
    addresses). Only owned routes are purged. Every other route is left alone, in particular
    the node's own pod subnet (the connected route of C(cni0)) and anything outside the
    cluster CIDR, even on O(dev).
  - Everything is checked before anything changes; on bad input the module fails with a
    message naming the value and the routes are unchanged. A gateway must be on-link on O(dev)
    (host-gw needs all nodes on one L2 segment), must not be a local address of the node, and
    must not be shared by two peers (the VirtualBox NAT C(10.0.2.15) pitfall).
  - Changes are applied in one C(ip -batch) run and undone if any of them fails.
  - IPv4 only.
version_added: "1.0.0"
author: k8slab.podnet developers (@k8slab)
options:
  dev:
    description:
      - The node's public interface, the one on the network shared by all nodes (C(eth1) in the
        lab). Every route leaves through it. It must exist.
    type: str
    required: true
  peers:
    description:
      - The whole desired set of peer nodes, one element per peer, in one call.
      - Required when O(state=present) (an empty list is allowed and, with O(purge), removes
        every owned route). With O(state=absent) only O(peers[].subnet) is used; omit
        O(peers) to remove every owned route.
    type: list
    elements: dict
    suboptions:
      subnet:
        description:
          - The peer's pod subnet (host bits zero), inside O(cluster_cidr), e.g. C(10.244.1.0/24).
        type: str
        required: true
      gateway:
        description:
          - The peer's public address on O(dev)'s network (flannel's C(PublicIP)), e.g.
            C(192.168.56.11). Required when O(state=present).
        type: str
  cluster_cidr:
    description:
      - The cluster's pod network (flannel's C(Network)), e.g. C(10.244.0.0/16). Peer subnets
        must lie inside it, and it bounds the routes the module owns.
    type: str
    required: true
  node_subnet:
    description:
      - This node's own pod subnet (e.g. C(10.244.2.0/24), or the C(FLANNEL_SUBNET) form
        C(10.244.2.1/24)). A peer subnet overlapping it is refused.
      - Independently of this option, every kernel connected route inside O(cluster_cidr) (such
        as C(cni0)'s C(10.244.2.0/24)) counts as an own pod subnet, so the option matters
        mainly before C(cni0) has its address.
    type: str
  purge:
    description:
      - With O(state=present), remove owned routes that O(peers) does not ask for (a peer that
        left the cluster, a stale metric). When false, only add and replace.
    type: bool
    default: true
  state:
    description:
      - V(present) makes the routes of O(peers) exist (and purges, see O(purge)).
      - V(absent) removes the owned routes to the subnets in O(peers), whatever their
        gateway, or every owned route when O(peers) is omitted.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - k8slab.podnet.attributes
  - k8slab.podnet.attributes.iproute2
  - k8slab.podnet.netns
attributes:
  diff_mode:
    description: Shows the routes of table main inside O(cluster_cidr), on any device, before
      and after.
seealso:
  - name: flannel host-gw backend
    description: The routes this module keeps.
    link: https://github.com/flannel-io/flannel/blob/master/Documentation/backends.md#host-gw
notes:
  - Messages name the node by its O(netns) or, without it, the host name.
'''

EXAMPLES = r'''
- name: Host-gw routes of node-2 to the pods of controlplane and node-1
  k8slab.podnet.hostgw_route:
    dev: eth1
    cluster_cidr: 10.244.0.0/16
    node_subnet: 10.244.2.0/24
    peers:
      - {subnet: 10.244.0.0/24, gateway: 192.168.56.10}
      - {subnet: 10.244.1.0/24, gateway: 192.168.56.11}

- name: The same on a single-host lab node (a network namespace)
  k8slab.podnet.hostgw_route:
    netns: node-2
    dev: eth1
    cluster_cidr: 10.244.0.0/16
    peers:
      - {subnet: 10.244.0.0/24, gateway: 192.168.56.10}
      - {subnet: 10.244.1.0/24, gateway: 192.168.56.11}

- name: Node-1 left the cluster; drop only its route
  k8slab.podnet.hostgw_route:
    dev: eth1
    cluster_cidr: 10.244.0.0/16
    state: absent
    peers:
      - subnet: 10.244.1.0/24

- name: Remove every host-gw route on eth1
  k8slab.podnet.hostgw_route:
    dev: eth1
    cluster_cidr: 10.244.0.0/16
    state: absent
'''

RETURN = r'''
added:
  description: Routes added (C(ip route add)).
  returned: always
  type: list
  elements: dict
  sample: [{dst: 10.244.1.0/24, gateway: 192.168.56.11, dev: eth1}]
replaced:
  description: Routes replaced (C(ip route replace)); C(before) is the route they replaced.
  returned: always
  type: list
  elements: dict
  sample: [{dst: 10.244.1.0/24, gateway: 192.168.56.21, dev: eth1,
            before: 10.244.1.0/24 via 192.168.56.11 dev eth1}]
removed:
  description: Owned routes removed (purged, or by O(state=absent)); C(route) is the whole route.
  returned: always
  type: list
  elements: dict
  sample: [{dst: 10.244.0.0/24, gateway: 192.168.56.10, dev: eth1,
            route: 10.244.0.0/24 via 192.168.56.10 dev eth1}]
commands:
  description: The C(ip) commands run (in check mode, the ones that would run).
  returned: always
  type: list
  elements: str
  sample: [ip -n node-2 route add 10.244.1.0/24 via 192.168.56.11 dev eth1]
before:
  description:
    - Routes of table main inside O(cluster_cidr), on any device, before the change.
    - Empty when O(state=absent) and O(netns) is gone (its routes went with it).
  returned: always
  type: list
  elements: str
  sample: [10.244.2.0/24 dev cni0 proto kernel scope link]
after:
  description: The same after the change (in check mode, as it would be).
  returned: always
  type: list
  elements: str
  sample: [10.244.1.0/24 via 192.168.56.11 dev eth1, 10.244.2.0/24 dev cni0 proto kernel scope link]
'''

import socket

from ansible_collections.k8slab.podnet.plugins.module_utils.argspec import PodnetModule
from ansible_collections.k8slab.podnet.plugins.module_utils.iproute import (
    Iproute, IprouteError, netns_missing, netns_problem, validate_ifname, validate_netns_name)
from ansible_collections.k8slab.podnet.plugins.module_utils.hostgw import (
    HostgwError, cidr_view, plan)


def local_addresses(ip, netns):
    """[(address, device)] of every IPv4 address of the node."""
    out = []
    for link in ip.json(['-4', 'addr', 'show'], netns=netns):
        for a in link.get('addr_info', []):
            if a.get('family') == 'inet':
                out.append((a['local'], link['ifname']))
    return out


def main():
    module = PodnetModule(
        argument_spec=dict(
            dev=dict(type='str', required=True),
            peers=dict(type='list', elements='dict', options=dict(
                subnet=dict(type='str', required=True),
                gateway=dict(type='str'),
            )),
            cluster_cidr=dict(type='str', required=True),
            node_subnet=dict(type='str'),
            purge=dict(type='bool', default=True),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            netns=dict(type='str'),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if p['state'] == 'present' and p['peers'] is None:
        module.fail_json(msg='peers is required with state=present (use [] for no peers)')
    netns = p['netns']
    ip = Iproute(module)
    try:
        validate_ifname(p['dev'], 'dev')
        if netns is not None:
            validate_netns_name(netns, 'netns')
            missing = netns_missing([netns])
            if missing and p['state'] == 'absent':
                # the namespace, and every route in it, is gone: nothing left to remove
                plan([], [], p['dev'], p['peers'], p['cluster_cidr'], state='absent')
                module.exit_json(changed=False, added=[], replaced=[], removed=[], commands=[],
                                 before=[], after=[])
            if missing:
                module.fail_json(msg=netns_problem(netns, missing[netns]))
        where = 'network namespace %s' % netns if netns else 'this host'
        if ip.link(p['dev'], netns=netns) is None:
            module.fail_json(msg='device %r (dev) does not exist in %s' % (p['dev'], where))
        routes = ip.routes(netns=netns)
        result = plan(routes, local_addresses(ip, netns), p['dev'], p['peers'],
                      p['cluster_cidr'], purge=p['purge'], state=p['state'],
                      node=netns or socket.gethostname(), node_subnet=p['node_subnet'])
        for args, undo in result['changes']:
            ip.plan(args, netns=netns, undo=undo)
        if ip.changes and not module.check_mode:
            ip.apply()
            # Report what the kernel really has now, not what was predicted.
            result['after'] = cidr_view(ip.routes(netns=netns), p['cluster_cidr'])
    except HostgwError as e:
        module.fail_json(msg=str(e), errors=e.errors)
    except IprouteError as e:
        module.fail_json(msg=str(e))

    before, after = result['before'], result['after']
    module.exit_json(
        changed=bool(ip.changes),
        added=result['added'],
        replaced=result['replaced'],
        removed=result['removed'],
        commands=ip.commands(),
        before=before,
        after=after,
        diff=dict(before=''.join(r + '\n' for r in before),
                  after=''.join(r + '\n' for r in after),
                  before_header='routes in %s' % p['cluster_cidr'],
                  after_header='routes in %s' % p['cluster_cidr']),
    )


if __name__ == '__main__':
    main()

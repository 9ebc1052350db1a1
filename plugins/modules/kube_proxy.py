#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: kube_proxy
short_description: Keep kube-proxy's iptables-mode rules for a set of Services on a node
description:
  - Writes the rules kube-proxy's iptables mode writes for O(services), with endpoints taken
    from O(pods) (the ready pods a selector matches, on any node), in one
    C(iptables-restore --noflush) run.
  - "Table C(nat): chains C(KUBE-SERVICES) (per cluster IP, C(! -s <cluster_cidr> ... -j
    KUBE-MARK-MASQ) then C(-j KUBE-SVC-<hash>), comment C(ns/name:port cluster IP); last,
    C(-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS)), C(KUBE-NODEPORTS), C(KUBE-SVC-<hash>)
    (one C(-m statistic --mode random) rule per endpoint but the last, with probability
    1/(n-i) for the i-th of n),
    C(KUBE-SEP-<hash>) (C(-s podIP -j KUBE-MARK-MASQ), C(DNAT --to-destination
    podIP:targetPort)), C(KUBE-MARK-MASQ) (mark C(0x4000)), C(KUBE-POSTROUTING) (masquerade
    of marked packets), entered from PREROUTING, OUTPUT and POSTROUTING."
  - Table C(filter), chain C(KUBE-SERVICES) (entered from INPUT, FORWARD and OUTPUT for new
    connections) - kube-proxy's REJECT for a service port with no endpoints.
  - Chain names are hashed as kube-proxy hashes them (first 16 characters of base32 of the
    SHA-256 of C(ns/name:port) + protocol, plus C(ip:port) for C(KUBE-SEP)); rule text is what
    C(iptables-save) prints, as in the listings of seed 002.
  - B(Ownership.) The module owns every C(KUBE-*) chain of the C(nat) and C(filter) tables
    and the rules of built-in chains that jump to one. Stale chains are removed; everything
    else in every table is untouched.
  - All input is validated before anything changes; a bad value fails the module naming it,
    and iptables is unchanged (one restore is all or nothing).
version_added: "1.0.0"
author: k8slab.podnet developers (@k8slab)
options:
  services:
    description:
      - The whole set of Services, as a user writes them. Each is a dict with C(namespace)
        (default C(default)), C(name) (a DNS-1035 label), C(type) (C(ClusterIP) or
        C(NodePort), default C(ClusterIP)), C(clusterIP) (inside O(service_cidr); allocated
        when missing, never twice), C(selector) (labels), and C(ports), a list of
        C({name, protocol, port, targetPort, nodePort}) (C(protocol) C(TCP) or C(UDP), default
        C(TCP); C(targetPort) defaults to C(port); C(nodePort) in O(node_port_range), only for
        C(NodePort), allocated when missing). Port names must be unique, and given when a
        service has several ports.
      - Allocation is deterministic (a hash of the name), so every node computes the same.
    type: list
    elements: dict
    default: []
  pods:
    description:
      - Every pod of the cluster, on any node, as C({name, namespace, labels, ip, ready,
        ports}); C(ip) may carry a prefix (C(10.244.2.3/24)); C(ready) is a bool or kubectl's
        C(n/m) (default true); C(ports) lists the ports the pod's containers serve (or give
        C(containers) with C(port) each, as in the node's pod record).
      - A service's endpoints are the ready pods in its namespace whose labels match its
        selector. When a matched pod says which ports it serves, every targetPort must be
        one of them.
    type: list
    elements: dict
    default: []
  cluster_cidr:
    description:
      - The pod network (kube-proxy's C(--cluster-cidr)). Traffic to a cluster IP from
        outside it is marked for masquerade. Empty string to omit those rules.
    type: str
    default: 10.244.0.0/16
  service_cidr:
    description: The service CIDR (the API server's C(--service-cluster-ip-range)).
    type: str
    default: 10.96.0.0/12
  node_port_range:
    description: The NodePort range, C(first-last).
    type: str
    default: 30000-32767
  random_fully:
    description: Add C(--random-fully) to the masquerade rule, as current kube-proxy does.
    type: bool
    default: true
  state:
    description:
      - C(present) keeps the rules for O(services); C(absent) removes every owned chain and
        rule (O(services) is then ignored).
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
- name: Seed 002's services on a node
  k8slab.podnet.kube_proxy:
    netns: k8slab-node-1
    services:
      - {namespace: test001, name: app-svc-clusterip, selector: {app: lab-web},
         ports: [{port: 80, targetPort: 8080}]}
      - {namespace: test001, name: app-svc-nodeport, type: NodePort, selector: {app: lab-web},
         ports: [{port: 80, targetPort: 8080, nodePort: 30080}]}
    pods:
      - {name: app-1, namespace: test001, labels: {app: lab-web}, ip: 10.244.1.2, ports: [8080]}
      - {name: app-2, namespace: test001, labels: {app: lab-web}, ip: 10.244.2.2, ports: [8080]}
'''

RETURN = r'''
services:
  description: The services after validation and allocation (clusterIP and nodePorts filled in).
  returned: always
  type: list
  elements: dict
endpoints:
  description:
    - One entry per service port - C(service) (C(ns/name)), C(port), C(protocol), C(clusterIP),
      C(nodePort), C(chain) (its C(KUBE-SVC-) chain, null without endpoints), C(endpoints)
      (C({pod, ip, chain})), C(status) (C(ok) or C(no endpoints)).
  returned: always
  type: list
  elements: dict
no_endpoints:
  description: C(ns/name:port) of every service port without endpoints (rejected).
  returned: always
  type: list
  elements: str
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

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.k8slab.podnet.plugins.module_utils.iptables import sync_module
from ansible_collections.k8slab.podnet.plugins.module_utils.iproute import (
    IprouteError, validate_netns_name, validate_network)
from ansible_collections.k8slab.podnet.plugins.module_utils.kubeproxy import (
    KubeProxyError, normalize_services, proxy_rules, service_port_name)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            services=dict(type='list', elements='dict', default=[]),
            pods=dict(type='list', elements='dict', default=[]),
            cluster_cidr=dict(type='str', default='10.244.0.0/16'),
            service_cidr=dict(type='str', default='10.96.0.0/12'),
            node_port_range=dict(type='str', default='30000-32767'),
            random_fully=dict(type='bool', default=True),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            netns=dict(type='str'),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        if p['netns'] is not None:
            validate_netns_name(p['netns'], 'netns')
        validate_network(p['service_cidr'], 'service_cidr')
        if p['cluster_cidr']:
            validate_network(p['cluster_cidr'], 'cluster_cidr')
    except IprouteError as e:
        module.fail_json(msg=str(e))
    try:
        lo, hi = (int(x) for x in p['node_port_range'].split('-'))
        if not 1 <= lo <= hi <= 65535:
            raise ValueError
    except ValueError:
        module.fail_json(msg='node_port_range %r is not FIRST-LAST' % p['node_port_range'])
    services, report = [], []
    tables = dict((t, {'chains': {}, 'jumps': {}}) for t in ('nat', 'filter'))
    try:
        if p['state'] == 'present':
            services = normalize_services(p['services'], p['pods'], p['service_cidr'], (lo, hi))
            tables, report = proxy_rules(services, p['pods'], p['cluster_cidr'] or None,
                                         p['random_fully'])
    except KubeProxyError as e:
        module.fail_json(msg='bad services: %s' % e, errors=e.errors)
    except (KeyError, TypeError, ValueError) as e:
        module.fail_json(msg='bad pods: %r' % (e,))
    sync_module(module, 'KUBE-', tables, services=services, endpoints=report,
                no_endpoints=[service_port_name(*(r['service'].split('/') + [r['port']]))
                              for r in report if r['status'] == 'no endpoints'])


if __name__ == '__main__':
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: node_info
short_description: Read a lab node's live network state - links, pods and the host-local store
version_added: 0.1.0
description:
  - Returns, in one call, what verification needs to know about a node as it is now, not as
    the inventory says it should be - the IPv4 addresses of its links, its pods (the named
    network namespaces) with the address of their C(eth0) and the host end of their veth, and
    the entries of the host-local IPAM store of the CNI network.
  - All network state is read over rtnetlink inside each namespace, in the shape C(ip -j)
    prints (no process per pod); the store is read as the CNI host-local plugin
    writes it (one file per address holding C(<container id>\r\n<ifname>)).
author: k8slab.podnet developers (@k8slab)
options:
  netns:
    description:
      - Read the links of this named network namespace instead of the current one (like
        C(ip -n)). Pods are still the named namespaces of the current mount namespace.
    type: str
  pods:
    description:
      - Names of the pods to describe. Omitted, every named network namespace is a pod (on a
        lab node, pod namespaces are the only named ones).
    type: list
    elements: str
  pod_ifname:
    description: The pod's interface, as the CNI runtime names it.
    type: str
    default: eth0
  network:
    description: The CNI network whose host-local store is read.
    type: str
    default: cbr0
  data_dir:
    description: The host-local store's parent directory.
    type: path
    default: /var/lib/cni/networks
  node:
    description: The node's name, copied into each of RV(records).
    type: str
extends_documentation_fragment:
  - k8slab.podnet.attributes.info
attributes:
  platform:
    support: full
    platforms: linux
    description: Needs root (to enter the pods' network namespaces).
seealso:
  - module: k8slab.podnet.probe
  - module: k8slab.podnet.cni_ipam
'''

EXAMPLES = r'''
- name: What node-1 looks like now
  k8slab.podnet.node_info:
  register: node

- name: The address of the httpd pod, as the live pod has it
  ansible.builtin.debug:
    msg: "{{ node.pods.httpd.ip }} (store: {{ node.ipam[node.pods.httpd.ip] | default('missing') }})"
'''

RETURN = r'''
interfaces:
  description: Every link of the node, by name - its IPv4 addresses, state and MTU.
  returned: always
  type: dict
  sample:
    eth1: {addresses: [192.168.56.11/24], state: UP, mtu: 1500}
    cni0: {addresses: [10.244.1.1/24], state: UP, mtu: 1500}
pods:
  description:
    - Every pod by name - the IPv4 addresses of its interface, the first of them as C(ip)
      (null when it has none), the link state and MTU, and the name of the veth's node end.
  returned: always
  type: dict
  sample:
    httpd:
      addresses: [10.244.1.2/24]
      ip: 10.244.1.2
      state: UP
      mtu: 1500
      host_veth: veth1a2b3c4d
ipam:
  description:
    - The host-local store of O(network) - every allocated address with its owner, and
      C(pod), the pod whose sandbox id is the container id (from the node's pod records in
      C(/run/podnet/pods)), when one is.
  returned: always
  type: dict
  sample:
    10.244.1.2: {container_id: 3f1c0e9a..., ifname: eth0, pod: httpd}
records:
  description:
    - The node's pod records (C(/run/podnet/pods)), container states read live - what
      kube-proxy and cluster DNS learn from the API server - with each pod's labels.
  returned: always
  type: list
  elements: dict
  sample:
    - {node: node-1, namespace: test001, name: app-3, ip: 10.244.1.3, ready: 1/1,
       status: Running, labels: {app: lab-web},
       containers: [{name: lab-web, workload: http, port: 8080, state: Running}]}
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.k8slab.podnet.plugins.module_utils.hostlocal import read_store
from ansible_collections.k8slab.podnet.plugins.module_utils.pods import (
    RUNTIME_DIR, list_pods, read_record, sandbox_owners)
from ansible_collections.k8slab.podnet.plugins.module_utils.iproute import (
    IprouteError, netns_entries, validate_ifname, validate_netns_name)
from ansible_collections.k8slab.podnet.plugins.module_utils.rtnl import Rtnl, RtnlError


def _v4(link):
    return ['%s/%s' % (a['local'], a['prefixlen'])
            for a in link.get('addr_info', []) if a.get('family') == 'inet']


def main():
    module = AnsibleModule(
        argument_spec=dict(
            netns=dict(type='str'),
            pods=dict(type='list', elements='str'),
            pod_ifname=dict(type='str', default='eth0'),
            network=dict(type='str', default='cbr0'),
            data_dir=dict(type='path', default='/var/lib/cni/networks'),
            node=dict(type='str'),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        if p['netns']:
            validate_netns_name(p['netns'])
        validate_ifname(p['pod_ifname'], 'pod_ifname')
        validate_netns_name(p['network'], 'network')
        for pod in p['pods'] or []:
            validate_netns_name(pod, 'pod')

        interfaces = {}
        by_index = {}
        with Rtnl(p['netns']) as node:  # over rtnetlink: no `ip` process for the node or a pod
            node_links = node.addr_show()
        for link in node_links:
            interfaces[link['ifname']] = dict(addresses=_v4(link), state=link.get('operstate'),
                                              mtu=link.get('mtu'))
            by_index[link.get('ifindex')] = link['ifname']

        names = p['pods'] if p['pods'] is not None else netns_entries()
        existing = set(netns_entries()) if p['pods'] is not None else set(names)
        pods = {}
        for name in names:
            if name not in existing:
                pods[name] = dict(addresses=[], ip=None, state='ABSENT', mtu=None, host_veth=None)
                continue
            with Rtnl(name) as pod:
                links = [l for l in pod.addr_show() if l['ifname'] == p['pod_ifname']]
            if not links:
                pods[name] = dict(addresses=[], ip=None, state='MISSING', mtu=None,
                                  host_veth=None)
                continue
            addrs = _v4(links[0])
            pods[name] = dict(addresses=addrs, ip=addrs[0].split('/')[0] if addrs else None,
                              state=links[0].get('operstate'), mtu=links[0].get('mtu'),
                              host_veth=by_index.get(links[0].get('link_index')))
        ipam = read_store(os.path.join(p['data_dir'], p['network']))
        # The store holds sandbox ids; the node's pod records say which pod each belongs to.
        owners = sandbox_owners()
        for entry in ipam.values():
            if entry['container_id'] in owners:
                entry['pod'] = owners[entry['container_id']]
    except (IprouteError, RtnlError, OSError) as e:
        module.fail_json(msg=str(e))
    module.exit_json(changed=False, interfaces=interfaces, pods=pods, ipam=ipam,
                     records=records(module.params['node']))


def records(node):
    """The node's pod records as kube-proxy and cluster DNS read them from the API: the rows
    of list_pods (live container states, ready n/m) with the pod's labels."""
    rows = list_pods(RUNTIME_DIR, node=node)
    for row in rows:
        row['labels'] = (read_record(RUNTIME_DIR, row['name']) or {}).get('labels') or {}
    return rows


if __name__ == '__main__':
    main()

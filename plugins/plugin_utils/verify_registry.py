# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""The registry of verification check kinds (controller side) and the lab view they derive
their checks from.

A check kind is one unit: a ``Kind`` subclass registered here with ``@register`` (its name,
its tags, the expectation keys it hands to the probe, the generator that derives its checks
from the inventory) plus the class of the same name registered in
plugins/module_utils/probe.py (how it is probed on a node and how the result is judged and
shown). Selection (``verify_kinds``, ``--tags``, ``verify_only``), the probes and the report
follow from the registry. A check is data::

    {name: 'path node-2/client-2 -> node-1/httpd', kind: 'path',
     source: 'node-2' | 'node-2/client-2',       # node, or pod of a node
     node: 'node-2', netns: None | 'client-2',   # derived from source
     to: 'node-1/httpd' | 'node-1' | '192.168.56.11',  # as written
     target: '10.244.1.2',                       # resolved address (None: unresolved, + error)
     ...the expectation in k8slab.podnet.probe's terms: hops, bind_dev, dev, gateway, ...}
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress

KINDS = {}  # name -> Kind instance, in registration order (the report's order)
# The keys every probe gets; each kind adds its own expectation keys.
COMMON_KEYS = ('name', 'kind', 'target')


def register(cls):
    """Class decorator: registers a check kind under ``cls.name``."""
    if cls.name in KINDS:
        raise ValueError('check kind %r is registered twice' % cls.name)
    KINDS[cls.name] = cls()
    return cls


class Kind(object):
    """One check kind, controller side.

    name: the kind's name (also its tag, the JUnit classname verify.<name>, the probe kind);
    tags: further tags that select it; keys: expectation keys handed to the probe module;
    the class docstring's first line is its summary in docs/verification.md;
    checks(lab, opts): the kind's default checks, made with ``lab.check(...)``.
    """

    name = None
    tags = ()
    keys = ()
    addressed = True  # its target is an address (else a device, as for address and mtu)

    def all_tags(self):
        return (self.name,) + tuple(self.tags)

    def checks(self, lab, opts):
        return []


def host(cidr, index=1):
    net = ipaddress.ip_network(str(cidr), strict=False)
    return str(net.network_address + index)


def with_prefix(address, cidr):
    return '%s/%d' % (address, ipaddress.ip_network(str(cidr), strict=False).prefixlen)


class Lab(object):
    """The inventory's view of the lab plus the live host-local stores, for resolving names.

    lab: {nodes: lab_nodes, node_order, pods: lab_pods, public_iface, nat_iface, cni_bridge,
    hostonly_cidr, cni_mtu}; facts: {node: k8slab.podnet.node_info result}. Pods are indexed
    by node and stores by owner once, so deriving checks is linear in the checks made."""

    def __init__(self, lab, facts):
        self.nodes = lab['nodes']
        # node_order: the nodes to verify (the play's, e.g. with --limit), in inventory order.
        self.order = [n for n in (lab.get('node_order') or sorted(self.nodes)) if n in self.nodes]
        self.by_node = dict((n, []) for n in self.order)
        for p in lab.get('pods') or []:
            if p.get('node') in self.by_node:
                self.by_node[p['node']].append(p)
        self.pods = [p for n in self.order for p in self.by_node[n]]
        self.public = lab.get('public_iface', 'eth1')
        self.nat = lab.get('nat_iface', 'eth0')
        self.bridge = lab.get('cni_bridge', 'cni0')
        self.hostonly = lab.get('hostonly_cidr', '192.168.56.0/24')
        self.mtu = int(lab.get('cni_mtu') or 0)
        self.services = lab.get('services') or []
        self.facts = facts or {}
        self._owners = {}

    def pods_on(self, node):
        return self.by_node.get(node, [])

    def gateway(self, node):
        """cni0's address on node: the first address of its pod CIDR (inventories/topology.yml)."""
        return host(self.nodes[node]['pod_cidr'])

    def eth1(self, node):
        return str(self.nodes[node]['eth1_ip'])

    def pod_ip(self, node, pod):
        """The pod's address as the node's live host-local store records it, or None."""
        if node not in self._owners:
            owners = {}
            store = (self.facts.get(node) or {}).get('ipam') or {}
            for ip in sorted(store, key=ipaddress.ip_address, reverse=True):
                # node_info maps the store's sandbox ids to pods; else the container id.
                entry = store[ip]
                owners[entry.get('pod') or entry.get('container_id')] = ip  # lowest wins
            self._owners[node] = owners
        return self._owners[node].get(pod)

    def check(self, name, kind, source, target, resolved=None, **expect):
        """Makes one check (and returns it). target is an address, a node (its eth1
        address) or node/pod (the pod's address in the node's live store); a pod that is not
        in the store makes an unresolved check, reported as failed without probing. '@target'
        in hops is the target."""
        source = str(source)
        check = dict(name=name, kind=kind, source=source, node=source.split('/', 1)[0],
                     netns=source.split('/')[1] if '/' in source else None, to=target)
        address = resolved
        if address is None and target is not None:
            if '/' in str(target):
                node, pod = str(target).split('/', 1)
                address = self.pod_ip(node, pod)
                if address is None:
                    check['error'] = 'pod %s has no address in the host-local store of node %s' \
                        % (pod, node)
            elif target in self.nodes:
                address = self.eth1(target)
            elif KINDS[kind].addressed:
                address = str(target)
        check['target'] = address
        if expect.get('hops'):
            # '@target' stands for the target's address (its name while unresolved).
            expect['hops'] = [(address or str(target)) if h == '@target' else h
                              for h in expect['hops']]
        check.update(expect)
        return check

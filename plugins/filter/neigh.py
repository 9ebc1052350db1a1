# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""How many IPv4 neighbour (ARP) entries the single-host lab needs, to check against the host's
net.ipv4.neigh.default.gc_thresh3 before building: the kernel keeps one neighbour table for
the whole host, and every namespace's entries count against it (docs/graph.md, "Size")."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError


def neigh_entries(nodes, pods=None):
    """``nodes | k8slab.podnet.neigh_entries(lab_pods)``: the lab's neighbour entries once it is
    built and verified, one per (interface, neighbour it talks to on its link).

    nodes: the node names (N of them); pods: the inventory's lab_pods, [{name, node, ...}], P_n
    on node n. Returns {entries, nodes, pods, per: {part: count}}, where:

    - node_eth0 = N: each node's eth0 knows its NAT router (10.0.2.2);
    - node_dns = N: and the router's DNS address (10.0.2.3, the node's resolver), an entry
      of its own;
    - node_eth1 = N*(N-1): each node's eth1 knows every peer's eth1 (the host-gw next hops);
    - host = 2N: the host-only network's host (192.168.56.1, where the nodeport checks are
      made from) and every node's eth1 learn each other;
    - routers = 2N: each NAT router knows its node's eth0 and, on wan0, the outside;
    - outside = N: the outside knows every router's wan0;
    - cni0 = sum P_n: each node's cni0 knows each of its pods;
    - pod_gateway = sum P_n: each pod knows its gateway (cni0's address);
    - same_node = sum 2(P_n - 1): the verification has every pod reach a pod on its own node
      (the first one, or the second for the first), straight over cni0, so the prober and the
      target each learn the other.

    entries = N**2 + 6N + sum over nodes with pods of (4 P_n - 2). The reference lab (3 nodes,
    9 pods: 2, 3 and 4 a node) needs 57, as counted on a built one; 10 nodes x 20 pods 940;
    about 250 pods on 10 to 12 nodes pass 1024, the default gc_thresh3. AnsibleFilterError
    when a pod names a node that is not in nodes.
    """
    nodes = list(nodes or [])
    per_node = dict((n, 0) for n in nodes)
    for pod in pods or []:
        node = pod.get('node') if isinstance(pod, dict) else None
        if node not in per_node:
            raise AnsibleFilterError('neigh_entries: pod %r is on node %r, which is not one of %s'
                                     % (pod.get('name') if isinstance(pod, dict) else pod, node,
                                        nodes))
        per_node[node] += 1
    n = len(nodes)
    counts = list(per_node.values())
    per = dict(node_eth0=n, node_dns=n, node_eth1=n * (n - 1), host=2 * n, routers=2 * n,
               outside=n,
               cni0=sum(counts), pod_gateway=sum(counts),
               same_node=sum(2 * (p - 1) for p in counts if p))
    return dict(entries=sum(per.values()), nodes=n, pods=sum(counts), per=per)


class FilterModule(object):
    def filters(self):
        return {'neigh_entries': neigh_entries}

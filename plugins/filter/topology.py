# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""Filters that turn the lab's inventory data (inventories/topology.yml) into checks and module arguments.

``topology_errors`` is the whole inventory validation in one call on the controller, so a bad
topology fails in milliseconds, before anything is built. The other filters derive what one
node's roles pass to the modules (host-gw peers, cni0 address, pod veth pairs), so the roles
stay one module call per layer.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import ipaddress
import re

from ansible.errors import AnsibleFilterError

from ansible_collections.k8slab.podnet.plugins.module_utils.pods import (
    WORKLOAD_ALIASES, container_errors)

# Kubernetes' DNS-1123 label: what pod and node names are made of. It is also a valid netns
# name, host-local container id and path component, so one rule covers every use.
_LABEL_RE = re.compile(r'^[a-z0-9]([a-z0-9-]*[a-z0-9])?\Z')
LABEL_MAX = 63
# What a lab_pods entry may say (PODS.md): the long form has containers; the shorthand
# `workload` (+ `port`) is one container named after the pod.
POD_KEYS = ('name', 'node', 'namespace', 'labels', 'containers', 'restart_policy', 'workload',
            'port', 'command')
CONTAINER_KEYS = ('name', 'workload', 'port', 'command')
RESTART_POLICIES = ('Always', 'OnFailure', 'Never')


def _network(value):
    return ipaddress.ip_network(str(value), strict=True)


def _check_label(errors, what, name, max_len=LABEL_MAX):
    if not isinstance(name, str) or not _LABEL_RE.match(name):
        errors.append('%s %r is invalid: use lower-case letters, digits and "-", starting and '
                      'ending with a letter or digit' % (what, name))
        return False
    if len(name) > max_len:
        errors.append('%s %r is %d characters long; at most %d are allowed'
                      % (what, name, len(name), max_len))
        return False
    return True


def pod_veth_name(pod):
    """Host end of a pod's veth: 'veth' + 8 hex of a hash of the pod name, like the bridge
    CNI plugin's random names but stable, so a rerun finds the same link."""
    return 'veth' + hashlib.sha256(str(pod).encode('utf-8')).hexdigest()[:8]


def topology_errors(lab_nodes, lab_pods=None, cluster_cidr=None, hostonly_cidr=None,
                    hostonly_host_ip=None, cluster_hosts=None, lab_name=None, lab_name_max=None,
                    node_name_max=None):
    """Every problem of the lab topology as a list of messages (empty when it is sound).

    Each message names the bad value. ``cluster_hosts`` is the inventory group k8s_cluster;
    ``lab_name_max`` and ``node_name_max`` bound the lab and node names (the single-host
    backend derives namespace and interface names from them).
    """
    errors = []

    if lab_name is not None:
        _check_label(errors, 'lab_name', lab_name, int(lab_name_max or LABEL_MAX))

    def network(what, value):
        try:
            return _network(value)
        except (ValueError, TypeError) as e:
            errors.append('%s %r is not a valid network (host bits must be zero): %s'
                          % (what, value, e))
            return None

    cluster = network('cluster_cidr', cluster_cidr)
    hostonly = network('hostonly_cidr', hostonly_cidr)
    if cluster and hostonly and cluster.overlaps(hostonly):
        errors.append('cluster_cidr %s overlaps hostonly_cidr %s' % (cluster, hostonly))

    host_ip = None
    if hostonly_host_ip is not None:
        try:
            host_ip = ipaddress.ip_address(str(hostonly_host_ip))
            if hostonly and host_ip not in hostonly:
                errors.append('hostonly_host_ip %s is outside hostonly_cidr %s'
                              % (host_ip, hostonly))
        except ValueError:
            errors.append('hostonly_host_ip %r is not a valid IP address' % (hostonly_host_ip,))

    if not isinstance(lab_nodes, dict) or not lab_nodes:
        errors.append('lab_nodes must be a non-empty mapping of node name to {eth1_ip, '
                      'pod_cidr}, got %r' % (lab_nodes,))
        lab_nodes = {}

    eth1_seen = {}
    cidrs = {}
    for node in sorted(lab_nodes):
        spec = lab_nodes[node]
        _check_label(errors, 'node name', node, int(node_name_max or LABEL_MAX))
        if not isinstance(spec, dict):
            errors.append('lab_nodes[%r] must be a mapping with eth1_ip and pod_cidr, got %r'
                          % (node, spec))
            continue
        try:
            ip = ipaddress.ip_address(str(spec.get('eth1_ip')))
        except ValueError:
            errors.append('node %s: eth1_ip %r is not a valid IP address'
                          % (node, spec.get('eth1_ip')))
        else:
            if hostonly and (ip not in hostonly or ip in (hostonly.network_address,
                                                          hostonly.broadcast_address)):
                errors.append('node %s: eth1_ip %s is outside hostonly_cidr %s (or is its '
                              'network or broadcast address)' % (node, ip, hostonly))
            if ip == host_ip:
                errors.append('node %s: eth1_ip %s is the host side of the host-only network '
                              '(hostonly_host_ip)' % (node, ip))
            if ip in eth1_seen:
                errors.append('nodes %s and %s have the same eth1_ip %s'
                              % (eth1_seen[ip], node, ip))
            else:
                eth1_seen[ip] = node
        cidr = network('node %s: pod_cidr' % node, spec.get('pod_cidr'))
        if cidr is None:
            continue
        if cluster and (cidr.version != cluster.version or not cidr.subnet_of(cluster)):
            errors.append('node %s: pod_cidr %s is outside cluster_cidr %s'
                          % (node, cidr, cluster_cidr))
        if cidr.num_addresses < 4:
            errors.append('node %s: pod_cidr %s is too small: it needs a gateway and at least '
                          'one pod address (at most /30)' % (node, cidr))
        for other, other_cidr in cidrs.items():
            if cidr.overlaps(other_cidr):
                errors.append('pod_cidr %s of node %s overlaps pod_cidr %s of node %s'
                              % (cidr, node, other_cidr, other))
        cidrs[node] = cidr

    if cluster_hosts is not None:
        hosts = list(cluster_hosts)
        if not hosts:
            errors.append('the inventory group k8s_cluster has no hosts')
        for host in hosts:
            if host not in lab_nodes:
                errors.append('host %s of the inventory group k8s_cluster has no lab_nodes '
                              'entry (eth1_ip, pod_cidr)' % host)
        for node in sorted(lab_nodes):
            if node not in hosts:
                errors.append('lab_nodes entry %s is not a host of the inventory group '
                              'k8s_cluster' % node)

    if lab_pods is None:
        lab_pods = []
    if not isinstance(lab_pods, list):
        errors.append('lab_pods must be a list of {name, node, workload}, got %r' % (lab_pods,))
        lab_pods = []
    per_node = {}
    for pod in lab_pods:
        if not isinstance(pod, dict):
            errors.append('lab_pods entry %r must be a mapping with name, node, workload'
                          % (pod,))
            continue
        name, node = pod.get('name'), pod.get('node')
        if not _check_label(errors, 'pod name', name):
            continue
        unknown = sorted(set(pod) - set(POD_KEYS))
        if unknown:
            errors.append('pod %s: unknown keys %s (a pod has %s)'
                          % (name, ', '.join(map(str, unknown)), ', '.join(POD_KEYS)))
        if 'containers' in pod and ('workload' in pod or 'port' in pod):
            errors.append('pod %s: give either containers or the workload shorthand, not both'
                          % name)
        containers = pod_containers(pod)
        if not isinstance(containers, list):
            errors.append('pod %s: containers must be a list, got %r' % (name, containers))
            containers = None
        for c in containers or []:
            if not isinstance(c, dict):
                errors.append('pod %s: container %r must be a mapping with name, workload'
                              % (name, c))
                continue
            extra = sorted(set(c) - set(CONTAINER_KEYS))
            if extra:
                errors.append('pod %s container %s: unknown keys %s (a container has %s)'
                              % (name, c.get('name'), ', '.join(map(str, extra)),
                                 ', '.join(CONTAINER_KEYS)))
            if c.get('name') is not None:
                _check_label(errors, 'pod %s: container name' % name, c.get('name'))
        if containers is not None:
            errors.extend(container_errors(name, [c for c in containers if isinstance(c, dict)]))
        if pod.get('restart_policy', 'Always') not in RESTART_POLICIES:
            errors.append('pod %s: restart_policy %r is not one of %s'
                          % (name, pod.get('restart_policy'), ', '.join(RESTART_POLICIES)))
        if not isinstance(pod.get('labels', {}), dict):
            errors.append('pod %s: labels must be a mapping, got %r' % (name, pod.get('labels')))
        if pod.get('namespace', 'default') != 'default':
            _check_label(errors, 'pod %s: namespace' % name, pod.get('namespace'))
        if node not in lab_nodes:
            errors.append('pod %s is placed on unknown node %r (known nodes: %s)'
                          % (name, node, ', '.join(sorted(lab_nodes)) or 'none'))
            continue
        names = per_node.setdefault(node, [])
        if name in names:
            errors.append('duplicate pod name %s on node %s' % (name, node))
            continue
        clash = [n for n in names if pod_veth_name(n) == pod_veth_name(name)]
        if clash:
            errors.append('pods %s and %s on node %s hash to the same veth name %s; rename one'
                          % (clash[0], name, node, pod_veth_name(name)))
        names.append(name)

    for node, names in sorted(per_node.items()):
        cidr = cidrs.get(node)
        # Network, gateway and broadcast addresses are never handed to pods.
        if cidr is not None and cidr.num_addresses >= 4 and len(names) > cidr.num_addresses - 3:
            errors.append('node %s has %d pods but pod_cidr %s holds only %d pod addresses'
                          % (node, len(names), cidr, max(cidr.num_addresses - 3, 0)))
    return errors


def hostgw_peers(lab_nodes, node):
    """The host-gw route set of ``node``: every OTHER node's {subnet: pod_cidr, gateway: eth1_ip},
    sorted by subnet (flannel adds one route per peer lease)."""
    if node not in lab_nodes:
        raise AnsibleFilterError('hostgw_peers: node %r has no lab_nodes entry' % (node,))
    peers = [{'subnet': str(spec['pod_cidr']), 'gateway': str(spec['eth1_ip'])}
             for name, spec in lab_nodes.items() if name != node]
    return sorted(peers, key=lambda p: ipaddress.ip_network(p['subnet']))


def cidr_host(cidr, index=1):
    """The index-th address of a network with its prefix: '10.244.1.0/24' -> '10.244.1.1/24'
    (cni0's address, the gateway host-local hands to pods)."""
    try:
        net = _network(cidr)
        return '%s/%d' % (net.network_address + int(index), net.prefixlen)
    except (ValueError, TypeError) as e:
        raise AnsibleFilterError('cidr_host: %r: %s' % (cidr, e))


def pod_containers(pod):
    """A lab_pods entry's containers: its ``containers``, or for the shorthand one container
    named after the pod running ``workload`` (default sleep; legacy ``httpd`` = http on
    ``port``, default 80)."""
    if 'containers' in pod:
        return pod['containers']
    workload = pod.get('workload', 'sleep')
    c = {'name': pod.get('name'), 'workload': WORKLOAD_ALIASES.get(workload, workload)}
    if 'port' in pod or c['workload'] in ('http', 'echo'):
        c['port'] = pod.get('port', 80)
    if 'command' in pod:
        c['command'] = pod['command']
    return [c]


def pod_specs(pods, node=None, keys=None):
    """The long form of lab_pods entries (of ``node`` when given): {name, node, namespace,
    labels, restart_policy, veth, containers: [{name, workload, port?, command?}]}, only the
    ``keys`` given (what k8slab.podnet.pod_sandbox or pod_container takes) when keys is set."""
    specs = []
    for pod in pods or []:
        if node is not None and pod.get('node') != node:
            continue
        specs.append({
            'name': pod['name'], 'node': pod.get('node'),
            'namespace': pod.get('namespace', 'default'), 'labels': pod.get('labels') or {},
            'restart_policy': pod.get('restart_policy', 'Always'),
            'veth': pod_veth_name(pod['name']), 'containers': pod_containers(pod)})
    if keys:
        specs = [dict((k, s[k]) for k in keys) for s in specs]
    return specs


def ipam_containers(sandboxes, ifname='eth0'):
    """k8slab.podnet.cni_ipam ``containers``: the CNI container id of a pod's address is its
    sandbox id (seed 000: the store file holds the pause container's id). Takes
    k8slab.podnet.pod_sandbox ``sandboxes`` ({name, id}) or bare container ids."""
    return [{'container_id': s['id'] if isinstance(s, dict) else s, 'ifname': ifname}
            for s in sandboxes or []]


def cni_attachments(sandboxes, ifname='eth0'):
    """k8slab.podnet.cni_attachment ``attachments`` for pod_sandbox ``sandboxes`` ({name, id,
    netns}): CNI_CONTAINERID is the sandbox id and CNI_NETNS the sandbox's namespace, as
    kubelet hands them to the runtime (seed 000). Bare container ids give a DEL-only entry."""
    return [{'container_id': s['id'], 'netns': s['netns'], 'ifname': ifname}
            if isinstance(s, dict) else {'container_id': s, 'ifname': ifname}
            for s in sandboxes or []]


def pod_veth_pairs(allocations, bridge, cluster_cidr, mtu=None, hairpin=True, sandboxes=None):
    """k8slab.podnet.veth ``pairs`` for pods from k8slab.podnet.cni_ipam ``allocations``: the
    host end on the bridge, ``eth0`` (the allocation's ifname) in the pod namespace, with the
    routes bridge + host-local give a pod. ``sandboxes`` (pod_sandbox's {name, id}) maps a
    container id to its pod; without it the container id is the pod's name."""
    owner = dict((s['id'], s['name']) for s in sandboxes or [])
    pairs = []
    for alloc in allocations or []:
        gateway = str(alloc['gateway']).split('/', maxsplit=1)[0]
        pod = owner.get(alloc['container_id'], alloc['container_id'])
        pair = {
            'name': pod_veth_name(pod),
            'peer': alloc.get('ifname', 'eth0'),
            'peer_netns': pod,
            'master': bridge,
            'hairpin': bool(hairpin),
            'addresses': [alloc['ip']],
            'routes': [{'dst': 'default', 'via': gateway},
                       {'dst': str(cluster_cidr), 'via': gateway}],
        }
        if mtu:
            pair['mtu'] = int(mtu)
        pairs.append(pair)
    return pairs


class FilterModule(object):
    def filters(self):
        return {
            'topology_errors': topology_errors,
            'hostgw_peers': hostgw_peers,
            'cidr_host': cidr_host,
            'pod_veth_name': pod_veth_name,
            'pod_veth_pairs': pod_veth_pairs,
            'ipam_containers': ipam_containers,
            'cni_attachments': cni_attachments,
            'pod_specs': pod_specs,
        }

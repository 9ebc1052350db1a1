# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""The obvious alternatives the benchmark compares the collection with.

Both build the lab's topology -- a host-only switch, every node with eth1 on it, a cni0 bridge
with the node's gateway address, every pod as a namespace whose eth0 is a veth into cni0 (hairpin
on) with the same routes as bridge + host-local make, and flannel host-gw routes to every peer
node -- out of plain network namespaces named `<prefix>-...`, one `ip` command per step:

- `playbook()`: what a user would write without this collection: one task per step
  (netns add, link add, set master, addr add, up, route add), each an
  ansible.builtin.command loop with one module run per command;
- `shell_script()`: the same commands in a plain shell script, the floor.

They do less than the lab: no NAT network, no mount namespaces, no IPAM store, CNI files or
workloads -- so the ratios they give are, if anything, flattering to the baseline.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import shlex

import yaml

# Step kinds in the order they run; within a kind, commands keep their generation order.
STEPS = [
    ('netns add', 'Add the namespaces'),
    ('link add', 'Add bridges and veth pairs'),
    ('set master', 'Attach ports to their bridges'),
    ('hairpin', 'Turn hairpin on for pod ports'),
    ('sysctl', 'Enable IPv4 forwarding on the nodes'),
    ('addr add', 'Add addresses'),
    ('up', 'Set links up'),
    ('route add', 'Add pod routes and host-gw routes'),
]


def namespaces(lab, prefix):
    """{'switch': ns, 'nodes': {node: ns}, 'pods': [(pod, node, ns)]} for a baseline lab."""
    nodes = dict((name, '%s-n%d' % (prefix, i)) for i, name in enumerate(lab['lab_nodes']))
    pods = [(pod['name'], pod['node'], '%s-%s' % (nodes[pod['node']], pod['name']))
            for pod in lab['lab_pods']]
    return {'switch': '%s-sw' % prefix, 'nodes': nodes, 'pods': pods}


def steps(lab, prefix):
    """The ip commands that build `lab` as plain namespaces: a list of (kind, argv)."""
    ns = namespaces(lab, prefix)
    sw = ns['switch']
    prefixlen = ipaddress.ip_network(lab['hostonly_cidr']).prefixlen
    cluster = lab['cluster_cidr']
    out = []

    def ip(kind, netns, *args):
        out.append((kind, ['ip', '-n', netns] + list(args)))

    out.append(('netns add', ['ip', 'netns', 'add', sw]))
    ip('link add', sw, 'link', 'add', 'name', 'br0', 'type', 'bridge')
    ip('up', sw, 'link', 'set', 'dev', 'lo', 'up')
    ip('up', sw, 'link', 'set', 'dev', 'br0', 'up')

    gateways = {}
    for i, (node, data) in enumerate(lab['lab_nodes'].items()):
        nsn = ns['nodes'][node]
        subnet = ipaddress.ip_network(data['pod_cidr'])
        gateways[node] = str(subnet.network_address + 1)
        port = 'n%d' % i
        out.append(('netns add', ['ip', 'netns', 'add', nsn]))
        ip('link add', nsn, 'link', 'add', 'name', 'eth1', 'type', 'veth',
           'peer', 'name', port, 'netns', sw)
        ip('set master', sw, 'link', 'set', 'dev', port, 'master', 'br0')
        ip('link add', nsn, 'link', 'add', 'name', 'cni0', 'type', 'bridge')
        out.append(('sysctl', ['ip', 'netns', 'exec', nsn,
                               'sysctl', '-qw', 'net.ipv4.ip_forward=1']))
        ip('addr add', nsn, 'addr', 'add', '%s/%d' % (data['eth1_ip'], prefixlen), 'dev', 'eth1')
        ip('addr add', nsn, 'addr', 'add', '%s/%d' % (gateways[node], subnet.prefixlen),
           'dev', 'cni0')
        ip('up', sw, 'link', 'set', 'dev', port, 'up')
        for dev in ('lo', 'eth1', 'cni0'):
            ip('up', nsn, 'link', 'set', 'dev', dev, 'up')
        for peer, pdata in lab['lab_nodes'].items():
            if peer != node:
                ip('route add', nsn, 'route', 'add', pdata['pod_cidr'], 'via', pdata['eth1_ip'],
                   'dev', 'eth1')

    # host-local order: the first pod of a node gets .2 (the gateway .1 is skipped).
    next_host = dict((node, 2) for node in lab['lab_nodes'])
    for index, (_pod, node, nsp) in enumerate(ns['pods']):
        nsn = ns['nodes'][node]
        subnet = ipaddress.ip_network(lab['lab_nodes'][node]['pod_cidr'])
        address = '%s/%d' % (subnet.network_address + next_host[node], subnet.prefixlen)
        next_host[node] += 1
        port = 'veth%d' % index
        out.append(('netns add', ['ip', 'netns', 'add', nsp]))
        ip('link add', nsn, 'link', 'add', 'name', port, 'type', 'veth',
           'peer', 'name', 'eth0', 'netns', nsp)
        ip('set master', nsn, 'link', 'set', 'dev', port, 'master', 'cni0')
        ip('hairpin', nsn, 'link', 'set', 'dev', port, 'type', 'bridge_slave', 'hairpin', 'on')
        ip('addr add', nsp, 'addr', 'add', address, 'dev', 'eth0')
        ip('up', nsn, 'link', 'set', 'dev', port, 'up')
        ip('up', nsp, 'link', 'set', 'dev', 'lo', 'up')
        ip('up', nsp, 'link', 'set', 'dev', 'eth0', 'up')
        ip('route add', nsp, 'route', 'add', 'default', 'via', gateways[node])
        ip('route add', nsp, 'route', 'add', cluster, 'via', gateways[node])

    order = dict((kind, n) for n, (kind, _title) in enumerate(STEPS))
    return sorted(out, key=lambda step: order[step[0]])  # sorted() is stable


def playbook(lab, prefix):
    """The command-per-step playbook (YAML text) that builds `lab` on localhost."""
    cmds = steps(lab, prefix)
    tasks = []
    for kind, title in STEPS:
        argvs = [argv for k, argv in cmds if k == kind]
        if argvs:
            tasks.append({
                'name': '%s (ip %s)' % (title, kind),
                'ansible.builtin.command': {'argv': '{{ item }}'},
                'loop': argvs,
                'changed_when': True,
            })
    play = [{
        'name': 'Build the lab topology with one ip command per step',
        'hosts': 'localhost',
        'connection': 'local',
        'gather_facts': False,
        'vars': {'ansible_python_interpreter': '{{ ansible_playbook_python }}'},
        'tasks': tasks,
    }]
    return ('# Generated by scripts/bench.py (bench/baseline.py): the command-per-step baseline.\n'
            + yaml.safe_dump(play, default_flow_style=None, sort_keys=False, width=200))


def shell_script(lab, prefix):
    """The same commands as a plain shell script: the floor."""
    lines = ['#!/bin/sh', '# Generated by scripts/bench.py (bench/baseline.py): the shell floor.',
             'set -e']
    lines.extend(' '.join(shlex.quote(a) for a in argv) for _kind, argv in steps(lab, prefix))
    return '\n'.join(lines) + '\n'


def all_namespaces(lab, prefix):
    """Every namespace a baseline lab makes (for teardown)."""
    ns = namespaces(lab, prefix)
    return [nsp for _pod, _node, nsp in ns['pods']] + list(ns['nodes'].values()) + [ns['switch']]


def probe(lab, prefix):
    """A cross-node ping that proves the baseline works: (source netns, target address).

    From the last pod to the first pod on another node (through cni0, eth1, the switch and a
    host-gw route); None when the topology has no two pods on different nodes.
    """
    ns = namespaces(lab, prefix)
    pods = ns['pods']
    if not pods:
        return None
    last = pods[-1]
    for index, (_pod, node, _nsp) in enumerate(pods):
        if node != last[1]:
            subnet = ipaddress.ip_network(lab['lab_nodes'][node]['pod_cidr'])
            offset = 2 + sum(1 for p in pods[:index] if p[1] == node)
            return last[2], str(subnet.network_address + offset)
    return None

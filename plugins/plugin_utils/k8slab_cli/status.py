# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""k8slab status: the lab's nodes, their addresses, their pods and the pods' IPs, read live."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys

from ansible_collections.k8slab.podnet.plugins.module_utils.hostlocal import read_store
from ansible_collections.k8slab.podnet.plugins.module_utils.netns_lab import (
    NETNS_DIR, running_labs)
from ansible_collections.k8slab.podnet.plugins.module_utils.pods import RUNTIME_DIR, list_pods
from ansible_collections.k8slab.podnet.plugins.plugin_utils.k8slab_cli.lab import (
    Lab, Subcommand, need_root, pick_lab, print_table, run_json)


def status_data(lab):
    """{lab, up, nodes: [{name, netns, up, addresses: {ifname: [cidr]}, pods: [{name, ip,
    store, pid, ready, status}]}]} for a Lab; pid is the workload's (old layout) or the
    sandbox's, ready ('n/m') and status come from the node's pod record (None without)."""
    nodes = []
    for node in lab.nodes():
        entry = {'name': node, 'netns': lab.netns(node), 'up': lab.has_node(node),
                 'addresses': {}, 'pods': []}
        nodes.append(entry)
        if not entry['up']:
            continue
        for link in run_json(['ip', '-j', '-n', lab.netns(node), '-4', 'addr', 'show']):
            if link['ifname'] != 'lo' and link.get('addr_info'):
                entry['addresses'][link['ifname']] = ['%s/%s' % (a['local'], a['prefixlen'])
                                                      for a in link['addr_info']]
        # The pods: the node's own /run/netns, each pod's eth0 read live in one nsenter.
        script = ('for f in %s/*; do [ -e "$f" ] || continue; p=${f##*/}; '
                  'echo "$p $(ip -n "$p" -j -4 addr show dev eth0 2>/dev/null)"; done' % NETNS_DIR)
        out = subprocess.run(lab.enter_mount(node) + ['sh', '-c', script],
                             capture_output=True, text=True, check=False).stdout
        store = ipam_store(lab, node)
        records = dict((r['name'], r) for r in list_pods(lab.node_path(node, RUNTIME_DIR)))
        for line in out.splitlines():
            pod, dummy, addr = line.partition(' ')
            ips = [('%s/%s' % (a['local'], a['prefixlen']))
                   for link in (json.loads(addr) if addr.strip() else [])
                   for a in link.get('addr_info', [])]
            rec = records.get(pod) or {}
            entry['pods'].append({'name': pod, 'ip': ips[0] if ips else None,
                                  'store': store.get(rec.get('sandbox_id') or pod),
                                  'pid': workload_pid(lab, node, pod) or rec.get('sandbox_pid'),
                                  'ready': rec.get('ready'), 'status': rec.get('status')})
    return {'lab': lab.name, 'up': lab.up, 'nodes': nodes}


def ipam_store(lab, node):
    """container id -> 'network:ip' from the node's host-local store (any bytes survive)."""
    found = {}
    top = lab.node_path(node, '/var/lib/cni/networks')
    for network in sorted(os.listdir(top)) if os.path.isdir(top) else []:
        for ip, entry in read_store(os.path.join(top, network)).items():
            found[entry['container_id']] = '%s:%s' % (network, ip)
    return found


def workload_pid(lab, node, pod):
    """The pid of the pod's workload when it runs, else None."""
    for name in ('pid', '%s.pid' % pod):
        try:
            with open(lab.node_path(node, '/run/podnet/%s/%s' % (pod, name))) as f:
                pid = int(f.read().split()[0])
        except (IOError, OSError, ValueError, IndexError):
            continue
        return pid if os.path.exists('/proc/%d' % pid) else None
    return None


def run(args):
    need_root('k8slab status')
    # Without --lab, $K8SLAB_LAB or -i, every lab that is up (one, usually).
    labs = running_labs()
    if args.lab or os.environ.get('K8SLAB_LAB') or args.inventory_given or len(labs) < 2:
        labs = [pick_lab(args)]
    if args.json:
        data = [status_data(Lab(name)) for name in labs]
        print(json.dumps(data[0] if len(data) == 1 else data, indent=2))
        return 0 if all(d['up'] for d in data) else 1
    status = 0
    for i, name in enumerate(labs):
        if i:
            print()
        status = show(Lab(name)) or status
    return status


def show(lab):
    """Print one lab's nodes and pods as tables; 1 when it is not up."""
    data = status_data(lab)
    if not data['up']:
        print('lab %s is not up (`%s` builds it)' % (lab.name, lab.up_command),
              file=sys.stderr)
        return 1
    first = ['eth0', 'eth1', 'cni0']
    ifaces = sorted({i for n in data['nodes'] for i in n['addresses']},
                    key=lambda i: (first.index(i) if i in first else len(first), i))
    rows = [['NODE', 'NETNS'] + [i.upper() for i in ifaces]]
    for n in data['nodes']:
        rows.append([n['name'], n['netns'] if n['up'] else n['netns'] + ' (missing)']
                    + [','.join(n['addresses'].get(i, ['-'])) for i in ifaces])
    print('lab %s' % lab.name)
    print_table(rows)
    rows = [['NODE/POD', 'IP', 'IPAM STORE', 'PAUSE PID', 'READY', 'STATUS']]
    for n in data['nodes']:
        for p in n['pods']:
            rows.append(['%s/%s' % (n['name'], p['name']), p['ip'] or '-', p['store'] or '-',
                         p['pid'] or '-', p['ready'] or '-', p['status'] or '-'])
    print()
    if len(rows) > 1:
        print_table(rows)
    else:
        print('no pods')
    return 0


def arguments(parser):
    parser.add_argument('--json', action='store_true', help='as JSON')


STATUS = Subcommand(
    'status', 'nodes, addresses, pods',
    ['k8slab status [--json]            nodes, their addresses, pods, their IPs and ready n/m',
     '                                  (every lab that is up, unless --lab picks one)'],
    run, arguments)

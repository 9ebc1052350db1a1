# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""Resident memory of a single-host lab's processes, read from /proc (no psutil).

After a build, `lab_processes(lab)` finds every process of the lab and says what it is:

- ``sandbox``: a pod's pause process (its record's ``sandbox.pid``);
- ``container``: a pod's container (``containers[].pid``), with its workload;
- ``shim``: the shell that waits for a container and records its exit (its parent);
- ``node-dns``: the NAT router's dnsmasq, the node's resolver (``dns/<node>/dnsmasq.pid``);
- ``outside-http``: the outside's HTTP server (``outside/http.pid``);
- ``warm-server``: the warm module server (``warm/*.pid``) and its children;
- ``other``: anything else whose network namespace is one of the lab's (its nodes, NAT
  routers, switch, host, outside and pods) or whose mount namespace is one of its nodes'.

Pod records are read from the host's view of each node's private directories,
``/run/k8slab/<lab>/nodes/<node>/run/podnet/pods/<pod>/pod.json`` (docs/pods.md); the nodes
share the host's PID namespace, so the records' pids are the host's.

Memory per process (KiB): ``rss`` = VmRSS of /proc/PID/status (pages mapped, shared ones
counted in full by every process); ``pss`` = Pss of /proc/PID/smaps_rollup (each shared page
divided among the processes that map it, so PSS adds up to what the processes cost together),
None where the kernel has no smaps_rollup (before 4.14) or the process went away between reads.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import json
import os
import statistics
import sys

# The lab's layout, pod records and file helpers are the collection's own (one place for each
# fact): module_utils is plain Python, importable through the checkout's .collections link.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                '.collections'))
# pylint: disable=wrong-import-position
from ansible_collections.k8slab.podnet.plugins.module_utils import netns_lab  # noqa: E402
from ansible_collections.k8slab.podnet.plugins.module_utils import netns_warm  # noqa: E402
from ansible_collections.k8slab.podnet.plugins.module_utils import pods  # noqa: E402
from ansible_collections.k8slab.podnet.plugins.module_utils.files import read_text  # noqa: E402


def kib_field(text, field):
    """The value in KiB of a `Field:   1234 kB` line of /proc/PID/status or smaps_rollup text;
    None when the field is missing."""
    for line in text.splitlines():
        name, _sep, value = line.partition(':')
        if name == field:
            parts = value.split()
            if parts and parts[0].isdigit():
                return int(parts[0])
    return None


def memory(pid, proc='/proc'):
    """{rss, pss} in KiB of a live process (pss None without smaps_rollup), or None when pid
    does not exist (any more) or is a zombie (no memory)."""
    status = read_text('%s/%d/status' % (proc, pid))
    rss = kib_field(status, 'VmRSS') if status else None
    if rss is None:
        return None
    rollup = read_text('%s/%d/smaps_rollup' % (proc, pid))
    return dict(rss=rss, pss=kib_field(rollup, 'Pss') if rollup else None)


def ns_id(path):
    """(st_dev, st_ino) of a namespace file (/proc/PID/ns/net, /run/netns/X, a bind mount of
    one), or None when it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def processes(proc='/proc'):
    """{pid: {ppid, comm, net, mnt}} of every process (net, mnt: ns_id of its namespaces)."""
    table = {}
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        stat = read_text('%s/%s/stat' % (proc, entry))
        if not stat:
            continue
        head, _sep, tail = stat.rpartition(')')
        fields = tail.split()
        table[int(entry)] = dict(ppid=int(fields[1]), comm=head.partition('(')[2],
                                 net=ns_id('%s/%s/ns/net' % (proc, entry)),
                                 mnt=ns_id('%s/%s/ns/mnt' % (proc, entry)))
    return table


def pod_records(lab):
    """[(node, record)] of every pod record of the lab's nodes."""
    records = []
    for path in sorted(glob.glob(netns_lab.node_dir(lab, '*'))):
        node = os.path.basename(path)
        runtime = netns_lab.node_dir(lab, node, pods.RUNTIME_DIR)
        for name in pods.record_names(runtime):
            record = pods.read_record(runtime, name)
            if record is not None:
                records.append((node, record))
    return records


def workload_name(container):
    """The workload a container's memory is grouped by: its record's workload, and for
    `command` the program (`command:dnsmasq` for the cluster DNS)."""
    workload = container.get('workload') or '?'
    if workload == 'command' and container.get('argv'):
        workload += ':' + os.path.basename(container['argv'][0])
    return workload


def lab_processes(lab, table=None):
    """Every process of `lab` (see the module doc) with what it is and its memory:
    [{pid, role, comm, node, pod, container, workload, rss, pss}] (absent keys: None; rss and
    pss in KiB). A process that ends while being read is left out."""
    table = processes() if table is None else table
    base = netns_lab.lab_dir(lab)
    roles = {}

    def claim(pid, role, **what):
        if pid and pid in table and pid not in roles:
            roles[pid] = dict(what, role=role)

    nets = set()
    for node, record in pod_records(lab):
        sandbox = record.get('sandbox') or {}
        pod = dict(node=node, pod=record.get('name'))
        claim(sandbox.get('pid'), 'sandbox', **pod)
        if sandbox.get('pid') in table:
            nets.add(table[sandbox['pid']]['net'])
        for container in record.get('containers') or []:
            pid = container.get('pid')
            claim(pid, 'container', container=container.get('name'),
                  workload=workload_name(container), **pod)
            parent = table[pid]['ppid'] if pid in table else None
            # The shim runs in the pod's network namespace (a container whose shim died has
            # been reparented: its parent is then no shim).
            if parent in table and parent != 1 and table[parent]['net'] == table[pid]['net']:
                claim(parent, 'shim', container=container.get('name'), **pod)
    for node_dir in sorted(glob.glob(os.path.join(base, 'dns', '*'))):
        claim(pods.read_pid(os.path.join(node_dir, 'dnsmasq.pid')), 'node-dns',
              node=os.path.basename(node_dir))
    claim(pods.read_pid(os.path.join(netns_lab.outside_dir(lab), 'http.pid')), 'outside-http')
    servers = set(p for p in (pods.read_pid(f)
                              for f in glob.glob(os.path.join(netns_warm.warm_dir(lab), '*.pid')))
                  if p in table)
    for pid in servers:
        claim(pid, 'warm-server')
    for pid, info in table.items():  # the servers' handlers and workers, if any
        if info['ppid'] in servers:
            claim(pid, 'warm-server')

    record = read_text(netns_lab.record_file(lab))
    try:
        names = json.loads(record).get('namespaces', []) if record else []
    except ValueError:
        names = []
    nets.update(ns_id(os.path.join(netns_lab.NETNS_DIR, n)) for n in names)
    mnts = set(ns_id(p) for p in glob.glob(os.path.join(netns_lab.mount_ns_dir(lab), '*')))
    # The lab's namespaces are never the host's (where this runs): a record whose pause runs in
    # the host's namespace must not make every process on the host the lab's.
    nets -= {None, ns_id('/proc/self/ns/net')}
    mnts -= {None, ns_id('/proc/self/ns/mnt')}
    own = os.getpid()
    for pid, info in table.items():
        if pid != own and (info['net'] in nets or info['mnt'] in mnts):
            claim(pid, 'other')

    rows = []
    for pid in sorted(roles):
        mem = memory(pid)
        if mem is None:
            continue
        row = dict(pid=pid, comm=table[pid]['comm'], node=None, pod=None, container=None,
                   workload=None)
        row.update(roles[pid])
        row.update(mem)
        rows.append(row)
    return rows


def _stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return dict(n=len(values), median=statistics.median(values), max=max(values),
                min=min(values))


def pod_rss(rows):
    """Each pod's RSS in KiB (its sandbox, shims and containers summed), one value per pod of
    the rows of one measurement."""
    pods = {}
    for r in rows:
        if r['pod'] is not None:
            key = (r['node'], r['pod'])
            pods[key] = pods.get(key, 0) + r['rss']
    return list(pods.values())


def summarize(rows):
    """Memory figures of lab_processes rows, in KiB:
    {processes, pods, rss_total, pss_total (None if any pss is missing),
     sandbox: {n, median, max, min} of sandbox RSS (and sandbox_pss: the same of PSS),
     shim: the same of the container shims' RSS,
     per_pod: stats of each pod's RSS (sandbox + shims + containers),
     containers: {workload: stats of RSS}, containers_pss: {workload: stats of PSS},
     roles: {role: {n, rss, pss}} summed}."""
    pods = pod_rss(rows)
    by_role = {}
    for r in rows:
        entry = by_role.setdefault(r['role'], dict(n=0, rss=0, pss=0))
        entry['n'] += 1
        entry['rss'] += r['rss']
        entry['pss'] = None if entry['pss'] is None or r['pss'] is None else entry['pss'] + r['pss']
    workloads = sorted(set(r['workload'] for r in rows if r['role'] == 'container'))
    containers = [r for r in rows if r['role'] == 'container']
    sandboxes = [r for r in rows if r['role'] == 'sandbox']
    pss = [r['pss'] for r in rows]
    return dict(
        processes=len(rows), pods=len(pods),
        rss_total=sum(r['rss'] for r in rows),
        pss_total=None if None in pss else sum(pss),
        sandbox=_stats([r['rss'] for r in sandboxes]),
        sandbox_pss=_stats([r['pss'] for r in sandboxes]),
        shim=_stats([r['rss'] for r in rows if r['role'] == 'shim']),
        per_pod=_stats(pods),
        containers=dict((w, _stats([r['rss'] for r in containers if r['workload'] == w]))
                        for w in workloads),
        containers_pss=dict((w, _stats([r['pss'] for r in containers if r['workload'] == w]))
                            for w in workloads),
        roles=by_role)


def mib(kib):
    """KiB -> a 'x.y MiB' string ('-' for None)."""
    return '-' if kib is None else '%.1f MiB' % (kib / 1024.0)


def pooled(samples):
    """One summary for several measurements of the same lab (a list of lab_processes rows per
    build): summarize() of all their processes together (medians over every sandbox and
    container measured), with `processes`, `pods`, `rss_total` and `pss_total` the medians of
    the measurements' own totals and `samples` their number. None for no samples."""
    samples = [s for s in samples if s]
    if not samples:
        return None
    result = summarize([r for rows in samples for r in rows])
    totals = [summarize(rows) for rows in samples]
    result['per_pod'] = _stats([v for rows in samples for v in pod_rss(rows)])
    for key in ('processes', 'pods', 'rss_total', 'pss_total'):
        values = [t[key] for t in totals]
        result[key] = None if None in values else statistics.median(values)
    for entry in result['roles'].values():  # per measurement, as the totals
        entry['n'] = entry['n'] / len(samples)
        entry['rss'] = entry['rss'] / len(samples)
        entry['pss'] = None if entry['pss'] is None else entry['pss'] / len(samples)
    result['samples'] = len(samples)
    return result

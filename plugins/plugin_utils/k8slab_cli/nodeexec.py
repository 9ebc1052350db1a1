# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""k8slab exec NODE[/POD] [-c CONTAINER] [-- CMD...]: a command in a node, as the netns
connection plugin runs tasks there (the same nsenter options), in one of the node's pods (its
sandbox's network namespace), or in one of a pod's containers (as `kubectl exec -c` / `crictl
exec`: the container's network namespace - the sandbox's - and its own PID and mount
namespaces when it has them). A shell's prompt names where it runs: [LAB NODE/POD/CONTAINER]."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.k8slab.podnet.plugins.module_utils.netns_lab import mount_ns_file
from ansible_collections.k8slab.podnet.plugins.module_utils.pods import RUNTIME_DIR, list_pods
from ansible_collections.k8slab.podnet.plugins.plugin_utils.k8slab_cli.lab import (
    Lab, Subcommand, fail, pick_lab)


def _ns(pid, kind):
    try:
        return os.stat('/proc/%s/ns/%s' % (pid, kind)).st_ino
    except OSError:
        return None


def container_nsenter(lab, node, pod, container):
    """nsenter argv (run inside the node) into a running container's namespaces: its network
    namespace, plus --pid/--mount when the container has its own (not the node's)."""
    rows = [r for r in list_pods(lab.node_path(node, RUNTIME_DIR), node) if r['name'] == pod]
    if not rows:
        fail('node %s has no pod %r' % (node, pod))
    found = [c for c in rows[0]['containers'] if c['name'] == container]
    if not found:
        fail('container %s is not in pod %s (containers: %s)' % (
            container, pod, ', '.join(c['name'] for c in rows[0]['containers']) or 'none'))
    c = found[0]
    if c['state'] != 'Running' or not c['pid']:
        fail('container %s of pod %s is not running (%s%s): see `k8slab logs %s/%s -c %s`' % (
            container, pod, c['state'], ', %s' % c['reason'] if c['reason'] else '', node, pod,
            container))
    argv = ['nsenter', '-t', str(c['pid']), '--net']
    if _ns(c['pid'], 'pid') != _ns('self', 'pid'):
        argv.append('--pid')
    try:
        node_mnt = os.stat(mount_ns_file(lab.name, node)).st_ino
    except OSError:
        node_mnt = None
    if _ns(c['pid'], 'mnt') != node_mnt:
        argv.append('--mount')
    return argv + ['--']


def run(args):
    lab = Lab(pick_lab(args))
    node, dummy, pod = args.target.partition('/')
    if not lab.has_node(node):
        fail('lab %s has no node %r (nodes: %s); `%s` builds the lab'
             % (lab.name, node, ', '.join(lab.nodes()) or 'none', lab.up_command))
    if args.container and not pod:
        fail('-c %s: name the pod as NODE/POD' % args.container)
    where = '/'.join(x for x in (node, pod, args.container) if x)
    shell = os.environ.get('SHELL', '/bin/bash')
    # A shell started for a person: no rc file, so the prompt that names the place stays.
    command = args.command or ([shell, '--norc'] if shell.endswith('bash') else [shell])
    argv = lab.enter(node)
    if args.container:
        argv += container_nsenter(lab, node, pod, args.container)
    elif pod:
        if not lab.has_pod(node, pod):
            fail('node %s has no pod %r' % (node, pod))
        argv += ['ip', 'netns', 'exec', pod]
    env = dict(os.environ, PS1='[%s %s] $ ' % (lab.name, where), K8SLAB_LAB=lab.name,
               K8SLAB_WHERE=where)
    os.execvpe(argv[0], argv + command, env)


def arguments(parser):
    parser.add_argument('target', metavar='NODE[/POD]')
    parser.add_argument('-c', '--container', help="run in this container's namespaces")


EXEC = Subcommand(
    'exec', 'run a command in a node, a pod or a container',
    ['k8slab exec NODE [-- CMD...]      run CMD (default: a shell) in a node',
     'k8slab exec NODE/POD [-- CMD...]  run CMD in a pod of that node',
     'k8slab exec NODE/POD -c CONTAINER [-- CMD...]  run CMD in that container'],
    run, arguments)

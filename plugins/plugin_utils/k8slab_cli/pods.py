# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""k8slab pods [NODE] [-o wide|json]: every node's pods as `kubectl get pods -o wide` and
`crictl pods` show them (node, IP, ready n/m, status, restarts, sandbox id), read from the
nodes' pod records (docs/pods.md) with container states refreshed from the live processes."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import sys

from ansible_collections.k8slab.podnet.plugins.module_utils.pods import (
    RUNTIME_DIR, format_pods, list_pods)
from ansible_collections.k8slab.podnet.plugins.plugin_utils.k8slab_cli.lab import (
    Lab, Subcommand, fail, pick_lab)


def lab_pods(lab, nodes=None):
    """list_pods rows of the lab's nodes (all, or those named), in node order."""
    rows = []
    for node in nodes or lab.nodes():
        rows.extend(list_pods(lab.node_path(node, RUNTIME_DIR), node=node))
    return rows


def run(args):
    lab = Lab(pick_lab(args))
    if not lab.up:
        print('lab %s is not up (`%s` builds it)' % (lab.name, lab.up_command),
              file=sys.stderr)
        return 1
    if args.node and args.node not in lab.nodes():
        fail('lab %s has no node %r (nodes: %s)' % (lab.name, args.node, ', '.join(lab.nodes())))
    rows = lab_pods(lab, [args.node] if args.node else None)
    if args.output == 'json':
        print(json.dumps(rows, indent=2))
    elif rows:
        sys.stdout.write(format_pods(rows, containers=args.output == 'wide'))
    else:
        print('No resources found', file=sys.stderr)
    return 0


def arguments(parser):
    parser.add_argument('node', nargs='?', metavar='NODE', help='only this node')
    parser.add_argument('-o', '--output', choices=('wide', 'json'),
                        help='wide: a line per container (state, pid, reason); json: the rows')


PODS = Subcommand(
    'pods', 'pods with node, IP, ready n/m, status, sandbox id',
    ['k8slab pods [NODE] [-o wide|json]  pods (wide: and their containers), as kubectl/crictl'],
    run, arguments)

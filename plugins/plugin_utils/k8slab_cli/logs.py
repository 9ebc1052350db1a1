# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""k8slab logs NODE/POD [-c CONTAINER] [--tail N]: a container's output (stdout and stderr),
as `kubectl logs` shows it, also after the container exited (its shim kept the log)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import sys

from ansible_collections.k8slab.podnet.plugins.module_utils.pods import (
    RUNTIME_DIR, PodError, container_log)
from ansible_collections.k8slab.podnet.plugins.plugin_utils.k8slab_cli.lab import (
    Lab, Subcommand, fail, pick_lab)


def split_target(lab, target):
    """(node, pod) of NODE/POD, failing with a message naming what is missing."""
    node, dummy, pod = target.partition('/')
    if not pod:
        fail('%r: name a pod as NODE/POD' % target)
    if node not in lab.nodes():
        fail('lab %s has no node %r (nodes: %s); `%s` builds the lab'
             % (lab.name, node, ', '.join(lab.nodes()) or 'none', lab.up_command))
    return node, pod


def run(args):
    lab = Lab(pick_lab(args))
    node, pod = split_target(lab, args.target)
    try:
        text = container_log(lab.node_path(node, RUNTIME_DIR), pod, args.container, args.tail)
    except PodError as e:
        fail('node %s: %s' % (node, e))
    sys.stdout.write(text)
    return 0


def arguments(parser):
    parser.add_argument('target', metavar='NODE/POD')
    parser.add_argument('-c', '--container', help='the container (needed when there are several)')
    parser.add_argument('--tail', type=int, help='only the last N lines')


LOGS = Subcommand(
    'logs', "a container's output",
    ['k8slab logs NODE/POD [-c CONTAINER] [--tail N]  a container\'s output, as kubectl logs'],
    run, arguments)

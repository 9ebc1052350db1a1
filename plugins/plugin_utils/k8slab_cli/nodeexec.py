# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""k8slab exec NODE[/POD] [-- CMD...]: a command in a node, as the netns connection plugin
runs tasks there (the same nsenter options), or in one of the node's pods."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.k8slab.podnet.plugins.plugin_utils.k8slab_cli.lab import (
    Lab, Subcommand, fail, pick_lab)


def run(args):
    lab = Lab(pick_lab(args))
    node, dummy, pod = args.target.partition('/')
    if not lab.has_node(node):
        fail('lab %s has no node %r (nodes: %s); `k8slab up` builds the lab'
             % (lab.name, node, ', '.join(lab.nodes()) or 'none'))
    command = args.command or [os.environ.get('SHELL', '/bin/bash')]
    argv = lab.enter(node)
    if pod:
        if not lab.has_pod(node, pod):
            fail('node %s has no pod %r' % (node, pod))
        argv += ['ip', 'netns', 'exec', pod]
    os.execvp(argv[0], argv + command)


def arguments(parser):
    parser.add_argument('target', metavar='NODE[/POD]')


EXEC = Subcommand(
    'exec', 'run a command in a node or a pod',
    ['k8slab exec NODE [-- CMD...]      run CMD (default: a shell) in a node',
     'k8slab exec NODE/POD [-- CMD...]  run CMD in a pod of that node'],
    run, arguments)

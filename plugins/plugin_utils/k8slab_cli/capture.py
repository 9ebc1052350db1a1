# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""k8slab capture NODE[/POD] IFACE [tcpdump options and filter]: tcpdump -n -l on one
interface inside a node (cni0, eth1, eth0, a pod's veth) or a pod (eth0), entered as `k8slab
exec` enters it, so a person can watch the packets while a drill or a verification runs."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil

from ansible_collections.k8slab.podnet.plugins.plugin_utils.k8slab_cli.lab import (
    Lab, Subcommand, fail, pick_lab)


def capture_argv(lab, target, iface, extra):
    """The argv that runs tcpdump on iface in target ('node' or 'node/pod') of lab: numeric
    (-n: the lab is about addresses, and there is no DNS to ask), line-buffered (-l: the
    output can be piped), then the caller's options and filter (e.g. ['-c', '5', 'icmp'])."""
    node, dummy, pod = target.partition('/')
    if not lab.has_node(node):
        fail('lab %s has no node %r (nodes: %s); `%s` builds the lab'
             % (lab.name, node, ', '.join(lab.nodes()) or 'none', lab.up_command))
    argv = lab.enter(node)
    if pod:
        if not lab.has_pod(node, pod):
            fail('node %s has no pod %r' % (node, pod))
        argv += ['ip', 'netns', 'exec', pod]
    return argv + ['tcpdump', '-n', '-l', '-i', iface] + list(extra)


def run(args):
    if not shutil.which('tcpdump'):
        fail('tcpdump is not installed (apt-get install tcpdump; make deps installs it)')
    argv = capture_argv(Lab(pick_lab(args)), args.target, args.iface, args.extra)
    os.execvp(argv[0], argv)


def arguments(parser):
    parser.add_argument('target', metavar='NODE[/POD]')
    parser.add_argument('iface', metavar='IFACE', help='e.g. cni0, eth1, eth0 (a pod: eth0)')


CAPTURE = Subcommand(
    'capture', 'watch an interface of a node or pod with tcpdump',
    ['k8slab capture NODE[/POD] IFACE   tcpdump -n there (e.g. cni0, eth1) [-- TCPDUMP ARGS]'],
    run, arguments, forwards=True)

# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""k8slab - the single-host lab from the command line (scripts/k8slab is its launcher).

A subcommand is a Subcommand (lab.py) in its own module, listed once in SUBCOMMANDS: its
options, its run function and its lines of the help come from there.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import os
import signal
import sys

from ansible_collections.k8slab.podnet.plugins.plugin_utils.k8slab_cli import (
    capture, drill, graph, heal, logs, nodeexec, playbook, pods, status)
from ansible_collections.k8slab.podnet.plugins.plugin_utils.k8slab_cli.lab import (
    DEFAULT_INVENTORY)

# The command table, in the help's order.
SUBCOMMANDS = (playbook.UP, playbook.DOWN, playbook.VERIFY, status.STATUS, pods.PODS, logs.LOGS,
               nodeexec.EXEC, graph.GRAPH, capture.CAPTURE, drill.DRILL, heal.HEAL)

DESCRIPTION = 'k8slab - the single-host lab from the command line.'
USAGE_EXAMPLES = """
  k8slab exec node-2 -- ip route
  k8slab exec node-2/client-2 -- traceroute -n 10.244.1.2
  k8slab pods -o wide
  k8slab logs node-2/test-pod -c lab-web-2
  k8slab exec node-2/test-pod -c lab-web -- curl -s localhost:8080

Options: --lab NAME (default: $K8SLAB_LAB, else the inventory's lab_name with -i, else the lab
that is up), -i INVENTORY (default inventories/netns). Anything after `up`/`down` that this
tool does not know goes to ansible-playbook (e.g. `k8slab up -v`). Needs root.
"""


def _common(parser, default):
    parser.add_argument('--lab', default=default, help="lab name (the namespaces' prefix)")
    parser.add_argument('-i', '--inventory', default=default,
                        help='inventory (default inventories/netns)')


def parser():
    """The argument parser, made from SUBCOMMANDS."""
    synopsis = '\n'.join('  ' + line for cmd in SUBCOMMANDS for line in cmd.usage)
    top = argparse.ArgumentParser(prog='k8slab', description=DESCRIPTION,
                                  formatter_class=argparse.RawDescriptionHelpFormatter,
                                  epilog=synopsis + '\n' + USAGE_EXAMPLES)
    _common(top, None)
    # The options work after the subcommand too; there they only count when given.
    after = argparse.ArgumentParser(add_help=False)
    _common(after, argparse.SUPPRESS)
    sub = top.add_subparsers(dest='cmd', required=True)
    for cmd in SUBCOMMANDS:
        p = sub.add_parser(cmd.name, parents=[after], help=cmd.summary)
        if cmd.arguments:
            cmd.arguments(p)
    return top


def main(argv=None):
    """Run k8slab with argv (default sys.argv[1:]); returns the exit status. Words after
    `--` are args.command; unknown options are args.extra for a forwarding subcommand (both
    lists are handed to ansible-playbook by up and down)."""
    argv = sys.argv[1:] if argv is None else argv
    command = []
    if '--' in argv:
        i = argv.index('--')
        argv, command = argv[:i], argv[i + 1:]
    top = parser()
    args, extra = top.parse_known_args(argv)
    args.inventory_given = args.inventory is not None
    # Relative to where k8slab runs (Ansible runs there too).
    args.inventory = os.path.abspath(args.inventory or DEFAULT_INVENTORY)
    cmd = dict((c.name, c) for c in SUBCOMMANDS)[args.cmd]
    if extra and not cmd.forwards:
        top.error('unrecognized arguments: %s' % ' '.join(extra))
    args.command = command
    args.extra = extra + command if cmd.forwards else extra
    return cmd.run(args)


def run():
    """The launcher's entry point: main() with `k8slab status --json | head` ending quietly."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    return main()

# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""What every k8slab subcommand shares: the repository, the lab picked on the command line,
the lab as it is live on this host (its layout from module_utils/netns_lab.py) and the
Subcommand record the command table is made of. Standard library only."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import shutil
import subprocess
import sys

from ansible_collections.k8slab.podnet.plugins.module_utils.netns_lab import (
    NETNS_DIR, lab_dir, node_dir, node_netns, node_nsenter_options, mount_ns_file, pinned,
    record_file, running_labs)

# The collection's root (this file is plugins/plugin_utils/k8slab_cli/lab.py in it).
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.realpath(__file__)))))
# The directory holding ansible_collections/k8slab/podnet as this program was imported: the
# checkout's .collections, or where the collection is installed. ansible-playbook gets it in
# ANSIBLE_COLLECTIONS_PATH, so the collection is found wherever it lives.
COLLECTIONS_PATH = os.path.abspath(os.path.join(os.path.dirname(__file__), *['..'] * 6))
DEFAULT_LAB = 'k8slab'
DEFAULT_INVENTORY = os.path.join(ROOT, 'inventories', 'netns')


class Subcommand(object):
    """One k8slab subcommand, an entry of the command table (main.SUBCOMMANDS).

    name: the word on the command line; summary: one line for `k8slab -h`; usage: lines of
    the help's synopsis ('k8slab NAME ...  what it does'); run(args) -> exit status, args
    being argparse's namespace (with lab picking done by pick_lab(args)); arguments(parser):
    adds the subcommand's own options, or None; forwards: unknown arguments go to run as
    args.extra instead of being an error (up and down hand them to ansible-playbook).
    """

    def __init__(self, name, summary, usage, run, arguments=None, forwards=False):
        self.name = name
        self.summary = summary
        self.usage = usage
        self.run = run
        self.arguments = arguments
        self.forwards = forwards


def fail(message):
    """Exit with `k8slab: message` on stderr, status 1."""
    sys.exit('k8slab: %s' % message)


class Lab(object):
    """A lab as it is live on this host: /run/k8slab/<lab>/ and its namespaces."""

    def __init__(self, name):
        self.name = name
        self.dir = lab_dir(name)

    @property
    def up(self):
        return os.path.isfile(record_file(self.name))

    @property
    def up_command(self):
        """The command that builds this lab (str), to paste as printed."""
        return 'k8slab up' if self.name == DEFAULT_LAB else 'k8slab --lab %s up' % self.name

    def nodes(self):
        try:
            with open(record_file(self.name)) as f:
                return json.load(f).get('nodes', [])
        except (IOError, OSError, ValueError):
            return []

    def netns(self, node):
        return node_netns(self.name, node)

    def enter(self, node):
        """nsenter argv that puts a command into the node's namespaces (argv[:2] enters its
        mount namespace only)."""
        return ['nsenter'] + node_nsenter_options(self.name, node) + ['--']

    def enter_mount(self, node):
        """nsenter argv that enters the node's mount namespace only (its own /run/netns)."""
        return self.enter(node)[:2] + ['--']

    def node_path(self, node, path):
        """A node-private path as the host sees it (the node's bind-mount source)."""
        return node_dir(self.name, node, path)

    def has_node(self, node):
        return pinned(mount_ns_file(self.name, node)) is not None

    def has_pod(self, node, pod):
        return subprocess.run(self.enter_mount(node) + ['test', '-e', os.path.join(
            NETNS_DIR, pod)], check=False).returncode == 0


def ansible_env():
    """The environment of the Ansible programs k8slab runs: the collection's ansible.cfg
    (unless $ANSIBLE_CONFIG names another) and this collection first on the collection path."""
    env = dict(os.environ)
    env.setdefault('ANSIBLE_CONFIG', os.path.join(ROOT, 'ansible.cfg'))
    env['ANSIBLE_COLLECTIONS_PATH'] = os.pathsep.join(
        [COLLECTIONS_PATH] + [p for p in env.get('ANSIBLE_COLLECTIONS_PATH', '').split(os.pathsep) if p])
    return env


def need_root(what):
    """Fail unless this process is root: the lab's namespaces and files are root's."""
    if os.geteuid() != 0:
        fail('%s needs root (the lab is network namespaces and files only root can read): '
             'run it with sudo' % what)


def ansible_bin(name):
    """Path of an Ansible program: from $K8SLAB_ANSIBLE_BIN (a directory), else the checkout's
    .venv (make deps), else the PATH (an installed collection)."""
    for where in (os.environ.get('K8SLAB_ANSIBLE_BIN'), os.path.join(ROOT, '.venv', 'bin')):
        if where and os.access(os.path.join(where, name), os.X_OK):
            return os.path.join(where, name)
    found = shutil.which(name)
    if not found:
        fail('%s not found: run `make deps` in the checkout, or put Ansible on the PATH' % name)
    return found


def inventory_lab_name(inventory):
    out = subprocess.run([ansible_bin('ansible-inventory'), '-i', inventory, '--list'],
                         cwd=ROOT, env=ansible_env(), capture_output=True, text=True, check=False)
    if out.returncode != 0:
        fail('cannot read inventory %s:\n%s' % (inventory, out.stderr.strip()))
    data = json.loads(out.stdout)
    for hostvars in data.get('_meta', {}).get('hostvars', {}).values():
        if 'lab_name' in hostvars:
            return hostvars['lab_name']
    return DEFAULT_LAB


def pick_lab(args):
    """The lab's name: --lab, else $K8SLAB_LAB, else the lab_name of -i's inventory, else the
    one lab that is up, else the default."""
    if args.lab:
        return args.lab
    if os.environ.get('K8SLAB_LAB'):
        return os.environ['K8SLAB_LAB']
    if args.inventory_given:
        return inventory_lab_name(args.inventory)
    labs = running_labs()
    if len(labs) == 1:
        return labs[0]
    if DEFAULT_LAB in labs or not labs:
        return DEFAULT_LAB
    return fail('several labs are up (%s); pick one with --lab' % ', '.join(labs))


def run_json(argv):
    """stdout of argv as JSON, or [] when it fails or prints nothing."""
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    if out.returncode != 0 or not out.stdout.strip():
        return []
    return json.loads(out.stdout)


def print_table(rows):
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print('  '.join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())

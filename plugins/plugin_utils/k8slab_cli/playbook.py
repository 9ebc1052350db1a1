# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""k8slab up / down: the lab's playbooks, with the lab's name and any extra arguments."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

from ansible_collections.k8slab.podnet.plugins.plugin_utils.k8slab_cli.lab import (
    ROOT, Subcommand, ansible_bin, ansible_env, fail)


def playbook(args, path):
    """Replace this process with ansible-playbook PATH (relative to the collection's root).
    It runs in the user's directory, so the verification's reports land there."""
    argv = [ansible_bin('ansible-playbook'), '-i', args.inventory, os.path.join(ROOT, path)]
    if args.lab:
        argv += ['-e', json.dumps({'lab_name': args.lab})]
    argv += args.extra
    if not os.path.exists(argv[0]):
        fail('%s is missing; run `make deps` first' % argv[0])
    env = ansible_env()
    # One line per node and layer while the lab builds (plugins/callback/progress.py).
    env.setdefault('ANSIBLE_STDOUT_CALLBACK', 'k8slab.podnet.progress')
    os.execve(argv[0], argv, env)


UP = Subcommand(
    'up', 'build the lab and verify it (site.yml)',
    ['k8slab up                         build the lab (site.yml: nodes, pod network, verification)'],
    lambda args: playbook(args, 'site.yml'), forwards=True)
DOWN = Subcommand(
    'down', 'remove the lab',
    ['k8slab down                       remove it, processes and all'],
    lambda args: playbook(args, os.path.join('playbooks', 'netns_lab_down.yml')), forwards=True)
VERIFY = Subcommand(
    'verify', 'verify the built lab again (playbooks/verify.yml)',
    ['k8slab verify                     every check again; --tags path,http or',
     '                                  -e verify_only=httpd picks some'],
    lambda args: playbook(args, os.path.join('playbooks', 'verify.yml')), forwards=True)

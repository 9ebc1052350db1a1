# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""k8slab heal: re-converge a live lab after a drill (or any drift) with site.yml, which
ends by verifying it: every layer's modules put back what differs from the inventory."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.k8slab.podnet.plugins.plugin_utils.k8slab_cli.lab import (
    Lab, Subcommand, fail, pick_lab)
from ansible_collections.k8slab.podnet.plugins.plugin_utils.k8slab_cli.playbook import playbook


def run(args):
    lab = Lab(pick_lab(args))
    if not lab.up:
        fail('lab %s is not up; `k8slab --lab %s up` builds it' % (lab.name, lab.name))
    args.lab = lab.name
    return playbook(args, 'site.yml')


HEAL = Subcommand(
    'heal', 'repair the live lab (site.yml again) and verify it',
    ['k8slab heal                       re-converge the lab after a drill (site.yml), verify it'],
    run, forwards=True)

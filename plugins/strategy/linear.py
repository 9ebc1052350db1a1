# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: linear
short_description: Ansible's linear strategy, with the collection's controller plugins imported once
version_added: 0.1.0
description:
  - Runs a play exactly as C(ansible.builtin.linear) does (each task on every host before the
    next task starts), and first imports, in the strategy's own process, the collection's
    controller-side plugins that every task's worker would otherwise import again.
  - Ansible forks a worker process per task and host, and a worker imports whatever plugin it
    needs itself; the collection loader compiles a collection's Python source on every import
    (it keeps no bytecode), and a filter lookup imports every filter file of the collection.
    On the reference lab that was about a third of the controller's CPU time (docs/benchmark.md).
    Imported here once, before the workers fork, the modules are inherited by every worker.
  - "The plays of the collection's playbooks use it; any play can: C(strategy: k8slab.podnet.linear)."
author: k8slab.podnet developers (@k8slab)
notes:
  - Nothing else differs from C(ansible.builtin.linear); a plugin that cannot be imported is
    left to the worker that needs it, which reports the error as usual.
'''

from ansible.plugins.loader import connection_loader, filter_loader
from ansible.plugins.strategy.linear import StrategyModule as LinearStrategyModule
from ansible.utils.display import Display

display = Display()

# What a lab task's worker imports: the node connection (with its warm-path helpers) and,
# through any one of the collection's filters, all of its filter files.
PRELOAD = (
    (connection_loader, 'k8slab.podnet.netns'),
    (filter_loader, 'k8slab.podnet.netns_lab_layout'),
)


def preload():
    """Import the PRELOAD plugins into this process (once; later calls find them loaded).
    Returns the names that could not be imported (their tasks will say why)."""
    missing = []
    for loader, name in PRELOAD:
        try:
            found = loader.get(name, class_only=True) if loader is connection_loader \
                else loader.get(name)
        except Exception as e:  # pylint: disable=broad-except
            display.vvv('k8slab.podnet.linear: cannot preload %s: %s' % (name, e))
            found = None
        if found is None:
            missing.append(name)
    return missing


class StrategyModule(LinearStrategyModule):
    """Linear, after preload()."""

    def run(self, iterator, play_context):
        preload()
        return super(StrategyModule, self).run(iterator, play_context)

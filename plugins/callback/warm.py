# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: warm
type: aggregate
short_description: Import the collection's controller plugins once, before Ansible forks its workers
version_added: 0.1.0
description:
  - The controller half of the lab's warm path (the node half is the warm module server of the
    M(k8slab.podnet.netns) connection). It prints nothing and changes no result.
  - Ansible forks a worker process for every task and host, and each worker imports the plugins
    it needs itself; the collection loader compiles a collection's Python source on every
    import (it keeps no bytecode), and looking up any one of the collection's filters imports
    all of its filter files. On the reference lab that was a third of the controller's CPU
    time (docs/benchmark.md).
  - This callback imports the collection's node connection and its filters in Ansible's main
    process when the playbook starts, so every worker forked after it inherits them.
  - The collection's C(ansible.cfg) (C(make lab), C(k8slab), CI) enables it; elsewhere add
    C(k8slab.podnet.warm) to C(callbacks_enabled) in C(ansible.cfg) or to
    E(ANSIBLE_CALLBACKS_ENABLED).
author: k8slab.podnet developers (@k8slab)
requirements:
  - enabled in the configuration (C(callbacks_enabled))
notes:
  - A plugin that cannot be imported here is left to the worker that needs it, which reports
    the error as it would without this callback.
'''

from ansible.plugins.callback import CallbackBase
from ansible.plugins.loader import connection_loader, filter_loader

# What a lab task's worker imports: the node connection (with its warm-path helpers) and,
# through any one of the collection's filters, every filter file of the collection.
PRELOAD = (
    ('connection', 'k8slab.podnet.netns'),
    ('filter', 'k8slab.podnet.netns_lab_layout'),
)


def preload():
    """Import the PRELOAD plugins into this process; later calls find them loaded. Returns the
    names that could not be imported (their tasks will say why)."""
    missing = []
    for kind, name in PRELOAD:
        try:
            if kind == 'connection':
                found = connection_loader.get(name, class_only=True)
            else:
                found = filter_loader.get(name)
        except Exception:  # pylint: disable=broad-except
            found = None
        if found is None:
            missing.append(name)
    return missing


class CallbackModule(CallbackBase):
    """Calls preload() as the playbook starts, in Ansible's main process."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'k8slab.podnet.warm'
    CALLBACK_NEEDS_ENABLED = True

    def v2_playbook_on_start(self, playbook):
        missing = preload()
        if missing:
            self._display.vvv('k8slab.podnet.warm: not preloaded: %s' % ', '.join(missing))

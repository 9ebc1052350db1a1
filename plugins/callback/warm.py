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
  - It also keeps the AnsiballZ payloads of the collection's and ansible-core's modules between
    runs (O(ansiballz_cache)). ansible-core builds a module's payload once per run (~0.15 s of
    controller time per distinct module, while the task's other hosts wait for it) and throws
    it away at the end; a lab build runs some twenty modules once each. The stored payloads are
    linked into the run's own cache before any worker starts, and read by ansible-core as its
    own. They are kept under a fingerprint of their sources (ansible-core's version, path and
    module files, the collection's modules, module_utils and routing, any module_utils
    directory of the playbook, its roles or E(ANSIBLE_MODULE_UTILS), the Python version), so
    an edit to any of them makes a new fingerprint, never a stale payload.
  - The collection's C(ansible.cfg) (C(make lab), C(k8slab), CI) enables it; elsewhere add
    C(k8slab.podnet.warm) to C(callbacks_enabled) in C(ansible.cfg) or to
    E(ANSIBLE_CALLBACKS_ENABLED).
author: k8slab.podnet developers (@k8slab)
requirements:
  - enabled in the configuration (C(callbacks_enabled))
options:
  ansiballz_cache:
    description:
      - Keep the AnsiballZ payloads of this collection's and ansible-core's modules between
        runs, in C(k8slab-ansiballz/) beside Ansible's per-run temporary directories (the
        C(local_tmp) setting, C(~/.ansible/tmp) by default), the four most recently used
        fingerprints.
      - Set to V(false) to build every payload afresh in each run, as ansible-core does.
    type: bool
    default: true
    env:
      - name: K8SLAB_ANSIBALLZ_CACHE
    ini:
      - section: callback_k8slab_warm
        key: ansiballz_cache
notes:
  - The store holds pickles that ansible-core loads; its directories and files are read only
    when they are owned by the user running Ansible and not writable by others, and each file
    only when its content matches the sha256 it was stored with (a damaged file is removed).
  - A playbook stores only the payloads built while it ran (the playbooks of one
    C(ansible-playbook) command share its cache, and a later one's roles may bring
    module_utils); one that includes a role with a C(module_utils/) directory of its own after
    it started stores none.
  - A plugin that cannot be imported here is left to the worker that needs it, which reports
    the error as it would without this callback.
'''

import os

import ansible
from ansible import constants as C
from ansible.plugins.callback import CallbackBase
from ansible.plugins.loader import connection_loader, filter_loader, module_utils_loader
from ansible.release import __version__ as ANSIBLE_VERSION
from ansible_collections.k8slab.podnet.plugins.plugin_utils import ansiballz_cache

ANSIBLE_DIR = os.path.dirname(ansible.__file__)

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
    """As the playbook starts, in Ansible's main process: preload() and seed the run's
    AnsiballZ cache; at its end, store the run's new payloads."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'k8slab.podnet.warm'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super(CallbackModule, self).__init__(*args, **kwargs)
        self._ansiballz_key = None
        self._user_utils = None
        self._had = set()

    @staticmethod
    def _module_utils_dirs():
        """The module_utils directories besides ansible-core's that Ansible searches now (a
        playbook's or role's module_utils/, ANSIBLE_MODULE_UTILS): they shadow its files."""
        return ansiballz_cache.user_module_utils(
            module_utils_loader.print_paths().split(os.pathsep), ANSIBLE_DIR)

    def v2_playbook_on_start(self, playbook):
        missing = preload()
        if missing:
            self._display.vvv('k8slab.podnet.warm: not preloaded: %s' % ', '.join(missing))
        if self.get_option('ansiballz_cache'):
            self._user_utils = self._module_utils_dirs()
            self._ansiballz_key = ansiballz_cache.fingerprint(
                ANSIBLE_DIR, ANSIBLE_VERSION, user_utils=self._user_utils)
            seeded = ansiballz_cache.seed(C.DEFAULT_LOCAL_TMP, self._ansiballz_key)
            # One run may hold several playbooks (each with its start and stats) and one
            # payload cache: what an earlier playbook built is not this fingerprint's to store.
            self._had = ansiballz_cache.run_cache_names(C.DEFAULT_LOCAL_TMP)
            self._display.vvv('k8slab.podnet.warm: %d stored AnsiballZ payloads' % len(seeded))

    def v2_playbook_on_stats(self, stats):
        if not self._ansiballz_key:
            return
        # A role included during the run may have brought module_utils the key does not cover.
        if self._module_utils_dirs() != self._user_utils:
            self._display.vvv('k8slab.podnet.warm: module_utils directories changed during '
                              'the run; no AnsiballZ payload stored')
            return
        stored = ansiballz_cache.store(C.DEFAULT_LOCAL_TMP, self._ansiballz_key, skip=self._had)
        self._display.vvv('k8slab.podnet.warm: stored %d AnsiballZ payloads' % len(stored))

# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""Per-task wall times for scripts/bench.py (not part of the collection).

Enabled by scripts/bench.py through ANSIBLE_CALLBACK_PLUGINS and ANSIBLE_CALLBACKS_ENABLED; it
appends one JSON line per playbook run to the file named by K8SLAB_BENCH_PROFILE: every task
(and the playbook's start-up before the first one) with the seconds until the next began.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = '''
name: bench_profile
type: aggregate
short_description: per-task wall times for scripts/bench.py
description: Appends the wall time of every task to the file named by K8SLAB_BENCH_PROFILE.
options: {}
'''

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    """Times from one task's start to the next one's."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'bench_profile'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self.start = time.time()
        self.current = ('(start-up)', self.start)
        self.tasks = []
        # ansible-core may load a callback enabled from a plain path twice: the first instance
        # of the process does the writing.
        self.owner = 'K8SLAB_BENCH_PROFILE_OWNER' not in os.environ
        os.environ['K8SLAB_BENCH_PROFILE_OWNER'] = '1'

    def _next(self, name):
        now = time.time()
        self.tasks.append([self.current[0], round(now - self.current[1], 3)])
        self.current = (name, now)

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._next(task.get_name())

    def v2_playbook_on_handler_task_start(self, task):
        self._next(task.get_name())

    def v2_playbook_on_stats(self, stats):
        # Called once per playbook file of the command line: write what ran since the last.
        self._next('(start-up)')
        path = os.environ.get('K8SLAB_BENCH_PROFILE')
        now = time.time()
        if path and self.owner:
            with open(path, 'a') as f:
                f.write(json.dumps({'total': round(now - self.start, 3),
                                    'tasks': self.tasks}) + '\n')
        self.start, self.tasks = now, []

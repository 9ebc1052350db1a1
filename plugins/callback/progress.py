# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: progress
type: stdout
short_description: One line per node and task while the lab builds - which layer, on which node
version_added: 0.1.0
description:
  - >-
    Ansible's default output, made concise for watching the lab being built. Each task result
    is one line, C([node-1] cni: Make the CNI bridge ... changed 0.4s) - the node, the layer
    (the role), the task and how long the node took since the task started; skipped tasks,
    included files, argument-spec validations and per-item results are not shown.
  - Plays start with C(== play name). The verification's table (a result with C(table)) and
    the messages of tasks that always show them (C(msg)) are printed as they are (the table
    instead of the message when there is one).
  - Failures, unreachable hosts, retries, diffs and the recap are the default callback's, in
    full, so an error reads exactly as it would without this plugin.
  - C(k8slab up) uses it unless E(ANSIBLE_STDOUT_CALLBACK) says otherwise; elsewhere set
    C(stdout_callback = k8slab.podnet.progress) in C(ansible.cfg) or the environment.
author: k8slab.podnet developers (@k8slab)
extends_documentation_fragment:
  - default_callback
  - result_format_callback
requirements:
  - set as stdout callback in the configuration
'''

import time

from ansible import constants as C
from ansible.plugins.callback.default import CallbackModule as DefaultCallback

# Tasks that only check their own arguments say nothing a person watching needs.
QUIET_ACTIONS = frozenset(['validate_argument_spec', 'ansible.builtin.validate_argument_spec',
                           'include_tasks', 'ansible.builtin.include_tasks',
                           'include_role', 'ansible.builtin.include_role'])


def _parts(result):
    """(task, host name, result dict) of a task result, ansible-core 2.17 to 2.19+."""
    task = getattr(result, 'task', None) or result._task
    host = getattr(result, 'host', None) or result._host
    res = getattr(result, 'result', None)
    return task, host.get_name(), res if res is not None else result._result


class CallbackModule(DefaultCallback):
    """The default callback with one line per node and task instead of banners."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'stdout'
    CALLBACK_NAME = 'k8slab.podnet.progress'

    def __init__(self):
        super(CallbackModule, self).__init__()
        self._started = time.monotonic()

    def v2_playbook_on_play_start(self, play):
        self._play = play
        check = ' [CHECK MODE]' if play.check_mode else ''
        self._display.display('\n== %s%s' % (play.get_name().strip() or 'play', check),
                              color=C.COLOR_HIGHLIGHT)

    def v2_playbook_on_task_start(self, task, is_conditional):
        # No banner: the default callback prints one itself when a result fails.
        self._last_task_name = task.get_name().strip()
        self._started = time.monotonic()

    def v2_playbook_on_handler_task_start(self, task):
        self.v2_playbook_on_task_start(task, False)

    def v2_runner_on_start(self, host, task):
        pass

    def v2_playbook_on_include(self, included_file):
        pass

    def v2_runner_on_skipped(self, result):
        pass

    def v2_runner_item_on_ok(self, result):
        pass

    def v2_runner_item_on_skipped(self, result):
        pass

    def v2_runner_on_ok(self, result):
        task, host, res = _parts(result)
        if task.action in QUIET_ACTIONS:
            return
        status, color = ('changed', C.COLOR_CHANGED) if res.get('changed') else ('ok', C.COLOR_OK)
        layer = task._role.get_name(include_role_fqcn=False) + ': ' if task._role else ''
        self._display.display('[%s] %s%s  %s %.1fs' % (host, layer, task.name or task.action,
                                                       status, time.monotonic() - self._started),
                              color=color)
        if res.get('table'):
            table = res['table']
            self._display.display('\n'.join(table) if isinstance(table, list) else table)
        elif res.get('_ansible_verbose_always') and res.get('msg'):
            self._display.display('    %s' % res['msg'])
        self._handle_warnings(res)

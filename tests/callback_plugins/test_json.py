# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""A minimal JSON stdout callback for the test suite.

ansible-core 2.19 moved its json callback to ansible.posix, which the tests do not install;
this one prints the shape tests/conftest.py reads: plays -> tasks -> hosts -> result, and stats.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = '''
name: test_json
type: stdout
short_description: JSON results for the k8slab.podnet test suite
description: Prints every task result of the run as one JSON document at the end.
'''

import json

from ansible.parsing.ajson import AnsibleJSONEncoder
from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'stdout'
    CALLBACK_NAME = 'test_json'

    def __init__(self, display=None):
        super(CallbackModule, self).__init__(display)
        self.plays = []

    def v2_playbook_on_play_start(self, play):
        self.plays.append({'play': {'name': play.get_name()}, 'tasks': []})

    def _task(self, task):
        tasks = self.plays[-1]['tasks']
        if not tasks or tasks[-1]['_uuid'] != task._uuid:
            tasks.append({'_uuid': task._uuid, 'task': {'name': task.get_name()}, 'hosts': {}})
        return tasks[-1]

    def _record(self, result, **flags):
        entry = dict(result._result)
        entry.update(flags)
        self._task(result._task)['hosts'][result._host.get_name()] = entry

    def v2_runner_on_ok(self, result, **kwargs):
        self._record(result)

    def v2_runner_on_failed(self, result, ignore_errors=False, **kwargs):
        self._record(result, failed=True)

    def v2_runner_on_skipped(self, result, **kwargs):
        self._record(result, skipped=True)

    def v2_runner_on_unreachable(self, result, **kwargs):
        self._record(result, unreachable=True)

    def v2_playbook_on_stats(self, stats):
        summary = dict((h, stats.summarize(h)) for h in sorted(stats.processed.keys()))
        for play in self.plays:
            for task in play['tasks']:
                task.pop('_uuid', None)
        self._display.display(json.dumps({'plays': self.plays, 'stats': summary},
                                         cls=AnsibleJSONEncoder, indent=1, sort_keys=True))

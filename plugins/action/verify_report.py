# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""Action plugin for k8slab.podnet.verify_report: everything happens on the controller, in this
process - merging the nodes' probe results into the checks, writing verify.json and
verify.xml, the table - so the report costs milliseconds instead of three module runs."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.k8slab.podnet.plugins.module_utils.files import write_atomic
from ansible_collections.k8slab.podnet.plugins.plugin_utils import verify


# The default callback (callback_result_format yaml) shows the table indented this much.
RESULT_INDENT = 8


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        _valid, args = self.validate_argument_spec(argument_spec=dict(
            checks=dict(type='list', elements='dict'),
            plan=dict(type='dict', options=dict(var=dict(type='str', required=True))),
            results=dict(type='list', elements='dict', default=[]),
            registered=dict(type='dict', options=dict(
                var=dict(type='str', required=True),
                hosts=dict(type='list', elements='str', required=True))),
            dest=dict(type='path', required=True),
            info=dict(type='dict', default={}),
            table_width=dict(type='int', default=0),
            fail=dict(type='bool', default=True),
        ), mutually_exclusive=[('checks', 'plan')], required_one_of=[('checks', 'plan')])
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp

        try:
            checks = (verify.read_plan(task_vars, args['plan']['var'], lambda p: p['checks'],
                                       self._templar.template)
                      if args['plan'] else args['checks'])
            where = args['registered']
            registered = (verify.registered(task_vars.get('hostvars'), where['var'],
                                            where['hosts']) if where else [])
        except verify.VerifyError as e:
            raise AnsibleActionFail(str(e))
        rows = verify.report(checks, registered + args['results'])
        failed = [r for r in rows if not r['passed']]
        # A relative dest is relative to where ansible-playbook runs (the user's directory).
        dest = os.path.abspath(args['dest'])
        summary = dict(args['info'])
        summary.update(
            generated=datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'),
            checks=len(rows), failed=len(failed), results=rows)
        info = args['info']
        path, junit = verify.report_paths(dest, info.get('lab') or '', info.get('kinds'),
                                          info.get('only') or '')
        # Written in check mode too: the report is output, not managed state.
        try:
            if not os.path.isdir(os.path.dirname(path)):
                os.makedirs(os.path.dirname(path))
            write_atomic(path, json.dumps(summary, indent=2, sort_keys=True) + '\n')
            write_atomic(junit, '<?xml version="1.0" encoding="UTF-8"?>\n' + verify.junit(rows) + '\n')
        except (OSError, IOError) as e:
            raise AnsibleActionFail('cannot write the verification report to %s: %s' % (dest, e))

        result.update(changed=False, report=path, junit=junit, checks=len(rows),
                      failed_checks=[r['name'] for r in failed],
                      table=verify.table(rows, args['table_width'] or
                                         verify.table_width() - RESULT_INDENT).splitlines())
        if failed and args['fail']:
            result['failed'] = True
            result['msg'] = '\n- '.join(
                ['%d of %d checks failed (report: %s):' % (len(failed), len(rows), path)] +
                [r['failure'] for r in failed])
        else:
            result['msg'] = '%d checks: %d passed, %d failed (report: %s)' % (
                len(rows), len(rows) - len(failed), len(failed), path)
        # Like debug: show the table even without -v; as a list of lines, so that every
        # callback and result format prints it readably (not as one escaped string).
        result['_ansible_verbose_always'] = True
        return result

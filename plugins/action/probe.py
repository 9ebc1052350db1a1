# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""Action plugin for k8slab.podnet.probe: runs the module as Ansible's normal action does, and
with the ``plan`` option first reads this node's probes from the plan variable on the
controller. A plan's probes are data already; as a templated ``probes`` argument Ansible would
copy every one of them again for every node (at 10 nodes x 20 pods ~0.2 s of CPU each)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.k8slab.podnet.plugins.plugin_utils import verify


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        self._supports_check_mode = True
        self._supports_async = True
        task_vars = task_vars or {}
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp

        args = dict(self._task.args)
        where = args.pop('plan', None)
        if where is not None:
            args['probes'], where = self._planned(where, args, task_vars)
            if not args['probes']:
                # The plan lists this node with nothing to check (a node without checks).
                result.update(changed=False, results=[], failed_probes=[], duration=0.0,
                              msg='plan %r has no probes for %s' % (where['var'], where['node']))
                return result
        wrap_async = self._task.async_val and not self._connection.has_native_async
        result.update(self._execute_module(module_args=args, task_vars=task_vars,
                                           wrap_async=wrap_async))
        module_args = (result.get('invocation') or {}).get('module_args')
        if where is not None and isinstance(module_args, dict):
            module_args['plan'] = where  # as given, its node resolved (the module saw probes)
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def _planned(self, where, args, task_vars):
        """(probes, where): this node's probes (list of dicts) from the plan that where['var']
        names, and where with its node filled in - where['node'], by default the host the task
        runs for. Raises AnsibleActionFail naming the option and the value before anything
        runs."""
        if not isinstance(where, dict) or 'var' not in where or set(where) - set(('var', 'node')):
            raise AnsibleActionFail('plan must be a dict with var and optionally node, got %r'
                                    % (where,))
        if 'probes' in args:
            raise AnsibleActionFail('parameters are mutually exclusive: probes|plan')
        where = dict(where)
        if where.get('node') is None:
            where['node'] = task_vars.get('inventory_hostname')
        node = where['node']
        if not isinstance(node, str) or not node:
            raise AnsibleActionFail('plan.node must be a node name, got %r' % (node,))

        def pick(plan):
            if node not in plan['probes']:
                raise verify.VerifyError(
                    'plan.node %r: the plan %r has no probes for it (its nodes: %s)'
                    % (node, where['var'], ', '.join(sorted(plan['probes']))))
            return plan['probes'][node]
        try:
            probes = verify.read_plan(task_vars, where['var'], pick, self._templar.template)
        except verify.VerifyError as e:
            raise AnsibleActionFail(str(e))
        if not isinstance(probes, list):
            raise AnsibleActionFail('plan.node %r: the plan %r holds no list of probes for it, '
                                    'got %r' % (node, where['var'], probes))
        return probes, where

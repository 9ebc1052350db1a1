# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""Filters of the verify role: thin wrappers over plugins/plugin_utils/verify.py (the checks,
selection, probes and report) whose kinds are registered in plugins/plugin_utils/verify_kinds.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import functools

from ansible.errors import AnsibleFilterError

from ansible_collections.k8slab.podnet.plugins.plugin_utils import verify as v


def _filter(func):
    """The plugin_utils function, its VerifyError raised as AnsibleFilterError."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except v.VerifyError as e:
            raise AnsibleFilterError(str(e))
        except ValueError as e:  # a bad verify_only pattern, an unparsable address
            raise AnsibleFilterError('%s: %s' % (func.__name__, e))
    return wrapper


verify_checks = _filter(v.checks)
verify_select = _filter(v.select)
verify_probes = _filter(v.probes)
verify_plan = _filter(v.plan)
verify_wanted_kinds = _filter(v.wanted_kinds)
verify_report = _filter(v.report)
verify_table = _filter(v.table)
verify_junit = _filter(v.junit)


class FilterModule(object):
    def filters(self):
        return {
            'verify_checks': verify_checks,
            'verify_select': verify_select,
            'verify_probes': verify_probes,
            'verify_plan': verify_plan,
            'verify_wanted_kinds': verify_wanted_kinds,
            'verify_report': verify_report,
            'verify_table': verify_table,
            'verify_junit': verify_junit,
        }

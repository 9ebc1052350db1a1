# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""Argument shapes checked before ansible-core converts them.

ansible-core turns a list given for a ``type: str`` option into the string "['br1']", and a
string given for a list-of-dicts option fails in its no_log scan with "dictionary
requested, could not parse JSON or key=value", naming neither the option nor the value.
``PodnetModule`` checks the raw arguments' shapes against the argument spec first and fails
with a message that names the option (with its path, e.g. ``pairs[1].routes[0]``) and the
value.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.basic import AnsibleModule, _load_params
from ansible.module_utils.common.validation import check_type_dict

_SCALARS = ('str', 'path', 'int', 'bool', 'float', 'raw', 'bytes', 'bits')


def _is_container(value):
    return isinstance(value, (list, tuple, dict))


def _as_dict(value):
    """A dict element as ansible-core accepts it (a dict, or a JSON / key=value string)."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            return check_type_dict(value)
        except (TypeError, ValueError):
            return None
    return None


def shape_errors(spec, params, where=''):
    """Messages for every raw value whose shape cannot be what ``spec`` asks for: a list or
    dict for a scalar option, a non-list element container where a scalar element is asked,
    anything but dicts for a list of dicts. ``params`` are the raw module arguments."""
    errors = []
    names = {}
    for name, opts in spec.items():
        names[name] = name
        for alias in opts.get('aliases') or []:
            names[alias] = name
    for key, value in (params or {}).items():
        if key not in names or value is None:
            continue
        opts = spec[names[key]]
        typ, elements = opts.get('type', 'str'), opts.get('elements')
        label = where + key
        if typ in _SCALARS and typ != 'raw' and _is_container(value):
            errors.append('%s must be a single value, not a %s: %r'
                          % (label, type(value).__name__, value))
        elif typ == 'list' and elements == 'dict':
            items = [value] if isinstance(value, dict) else value
            if not isinstance(items, list):
                errors.append('%s must be a list of dicts, got %r' % (label, value))
                continue
            for i, item in enumerate(items):
                item_dict = _as_dict(item)
                if item_dict is None:
                    errors.append('%s[%d] must be a dict, got %r' % (label, i, item))
                elif opts.get('options'):
                    errors += shape_errors(opts['options'], item_dict, '%s[%d].' % (label, i))
        elif typ == 'list' and elements in _SCALARS and isinstance(value, list):
            for i, item in enumerate(value):
                if _is_container(item):
                    errors.append('%s[%d] must be a single value, not a %s: %r'
                                  % (label, i, type(item).__name__, item))
        elif typ == 'dict' and opts.get('options') and isinstance(value, dict):
            errors += shape_errors(opts['options'], value, label + '.')
    return errors


class PodnetModule(AnsibleModule):
    """AnsibleModule that first checks the raw arguments' shapes (see shape_errors)."""

    def __init__(self, argument_spec, **kwargs):
        try:
            self._shape_errors = shape_errors(argument_spec, _load_params())
        except Exception:  # pylint: disable=broad-except
            self._shape_errors = []  # unreadable arguments: AnsibleModule reports them
        super(PodnetModule, self).__init__(argument_spec, **kwargs)
        if self._shape_errors:
            self.fail_json(msg='; '.join(self._shape_errors))

    def fail_json(self, msg=None, **kwargs):
        # ansible-core's own argument errors for a wrong shape are vaguer: say ours instead
        if getattr(self, '_shape_errors', None):
            msg = '; '.join(self._shape_errors)
        super(PodnetModule, self).fail_json(msg=msg, **kwargs)

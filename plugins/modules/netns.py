#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: netns
short_description: Named network namespaces, present or absent
version_added: 0.1.0
description:
  - Makes sure the named network namespaces (C(ip netns add)/C(ip netns del)) exist or not.
  - Names are matched exactly, as C(ip -j netns list) prints them, so C(mario) is not taken
    as present because C(mario2) exists.
  - Many names take one call; all changes run in one C(ip -batch) process. If one of them
    fails, the namespaces this run created are deleted again, so nothing is left half-made.
  - Named namespaces are bind mounts under C(/run/netns) of the mount namespace the module
    runs in; in the single-host lab that is the node's private C(/run/netns).
  - A C(/run/netns) entry with no namespace mounted on it (a runtime crashed, a mount was
    lost) is listed by C(ip netns list) but unusable (C(Invalid argument)); the module counts
    it as C(stale), recreates it with O(state=present) and removes it with O(state=absent).
author: k8slab.podnet developers (@k8slab)
options:
  name:
    description:
      - Names of the namespaces. Letters, digits, C(_), C(.) and C(-); never C(/) or C(..).
    type: list
    elements: str
    required: true
    aliases: [names]
  state:
    description:
      - C(present) creates the missing ones, C(absent) deletes the existing ones. Deleting a
        namespace also deletes the virtual links (veth ends) inside it.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - k8slab.podnet.attributes
  - k8slab.podnet.attributes.iproute2
attributes:
  diff_mode:
    description: Shows each requested name as V(present), V(absent) or V(stale), before and after.
notes:
  - Unlike the other modules of this collection it has no C(netns) option on purpose -
    namespace names belong to the mount namespace, not to a network namespace, and
    C(ip -n NETNS netns add NAME) leaves an unusable, unmounted file behind (iproute2 6.1).
  - Replaces C(community.general.ip_netns) with exact name matching and a list form.
seealso:
  - module: k8slab.podnet.veth
  - module: k8slab.podnet.bridge
'''

EXAMPLES = r'''
- name: One namespace per pod, one call
  k8slab.podnet.netns:
    name: [httpd, client, server]

- name: Remove them again
  k8slab.podnet.netns:
    name: [httpd, client, server]
    state: absent
'''

RETURN = r'''
commands:
  description: The iproute2 commands that ran, or in check mode that would run.
  returned: always
  type: list
  elements: str
  sample: ["ip netns add httpd", "ip netns add client"]
created:
  description: Namespaces this run created (or would create in check mode), stale ones included.
  returned: always
  type: list
  elements: str
  sample: [httpd, client]
removed:
  description: Namespaces this run deleted (or would delete in check mode).
  returned: always
  type: list
  elements: str
  sample: []
before:
  description:
    - Each requested name mapped to C(present), C(absent) or C(stale) (an entry with no
      namespace behind it) before the run.
  returned: always
  type: dict
  sample: {httpd: absent, client: present, server: stale}
after:
  description: Each requested name mapped to C(present) or C(absent) after the run.
  returned: always
  type: dict
  sample: {httpd: present, client: present}
'''

from ansible_collections.k8slab.podnet.plugins.module_utils.argspec import PodnetModule
from ansible_collections.k8slab.podnet.plugins.module_utils.iproute import (
    Iproute, IprouteError, netns_missing, validate_netns_name)


def validate(names):
    """Checks every name before anything is read or changed; returns the unique names."""
    if not names:
        raise IprouteError('name must list at least one namespace')
    for name in names:
        validate_netns_name(name)
    unique = []
    for name in names:
        if name not in unique:
            unique.append(name)
    return unique


def plan(ipr, names, state, missing):
    """Plans the changes; returns (before, after, created, removed). ``missing`` is
    iproute.netns_missing of ``names``: a stale entry is deleted first, then made anew."""
    before = dict((n, {None: 'present', 'absent': 'absent'}.get(missing.get(n), 'stale'))
                  for n in names)
    created, removed = [], []
    for name in names:
        if before[name] == 'stale':
            ipr.plan(['netns', 'del', name])
        if state == 'present' and before[name] != 'present':
            ipr.plan(['netns', 'add', name], undo=['netns', 'del', name])
            created.append(name)
        elif state == 'absent' and before[name] != 'absent':
            if before[name] == 'present':
                ipr.plan(['netns', 'del', name])
            removed.append(name)
    after = dict((n, 'present' if state == 'present' else 'absent') for n in names)
    return before, after, created, removed


def main():
    module = PodnetModule(
        argument_spec=dict(
            name=dict(type='list', elements='str', required=True, aliases=['names']),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
        ),
        supports_check_mode=True,
    )
    p = module.params
    ipr = Iproute(module)
    try:
        names = validate(p['name'])
        before, after, created, removed = plan(ipr, names, p['state'], netns_missing(names))
        if ipr.changes and not module.check_mode:
            ipr.apply()
    except IprouteError as e:
        module.fail_json(msg=str(e), commands=ipr.commands())
    result = dict(changed=bool(ipr.changes), commands=ipr.commands(), created=created,
                  removed=removed, before=before, after=after)
    if module._diff:
        result['diff'] = dict(before=before, after=after)
    module.exit_json(**result)


if __name__ == '__main__':
    main()

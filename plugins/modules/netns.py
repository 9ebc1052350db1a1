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
attributes:
  check_mode:
    support: full
    description: Reports what would change and the commands that would run, changing nothing.
  diff_mode:
    support: full
    description: Shows each requested name as present or absent, before and after.
  platform:
    support: full
    platforms: linux
    description: Needs iproute2 with JSON output (C(ip -j)) and root.
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
  description: Namespaces this run created (or would create in check mode).
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
  description: Each requested name mapped to C(present) or C(absent) before the run.
  returned: always
  type: dict
  sample: {httpd: absent, client: present}
after:
  description: Each requested name mapped to C(present) or C(absent) after the run.
  returned: always
  type: dict
  sample: {httpd: present, client: present}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.k8slab.podnet.plugins.module_utils.iproute import (
    Iproute, IprouteError, validate_netns_name)


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


def plan(ipr, names, state, existing):
    """Plans the changes; returns (before, after, created, removed)."""
    before = dict((n, 'present' if n in existing else 'absent') for n in names)
    created, removed = [], []
    for name in names:
        if state == 'present' and name not in existing:
            ipr.plan(['netns', 'add', name], undo=['netns', 'del', name])
            created.append(name)
        elif state == 'absent' and name in existing:
            ipr.plan(['netns', 'del', name])
            removed.append(name)
    after = dict((n, 'present' if state == 'present' else 'absent') for n in names)
    return before, after, created, removed


def main():
    module = AnsibleModule(
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
        existing = set(ipr.netns_list())
        before, after, created, removed = plan(ipr, names, p['state'], existing)
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

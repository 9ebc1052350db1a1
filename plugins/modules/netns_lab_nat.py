#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: netns_lab_nat
short_description: Masquerading routers of the single-host lab (VirtualBox NAT stand-ins)
description:
  - For every router namespace in O(routers) turns IPv4 forwarding on and makes sure the
    C(nat) table's C(POSTROUTING) chain masquerades traffic from O(routers[].source) leaving by
    O(routers[].out_iface) - what VirtualBox's NAT engine does for a VM's C(eth0).
  - Rules are checked with C(iptables -C) and appended only when missing, inside the router's
    namespace; the root namespace's firewall is never touched.
  - Namespaces in O(endpoints) get IPv4 forwarding turned off - a new namespace inherits the
    host's setting, and the lab's switch, host side and outside must never route.
options:
  endpoints:
    description: Namespaces that must not forward IPv4.
    type: list
    elements: str
    default: []
  routers:
    description: The routers.
    type: list
    elements: dict
    required: true
    suboptions:
      netns:
        description: Network namespace of the router.
        type: str
        required: true
      out_iface:
        description: Interface towards the outside.
        type: str
        required: true
      source:
        description:
          - The network behind the router, or an address in it with its prefix length
            (V(10.0.2.15/24) means V(10.0.2.0/24)).
        type: str
        default: 10.0.2.0/24
extends_documentation_fragment:
  - k8slab.podnet.attributes
attributes:
  platform:
    support: full
    platforms: linux
    description: Needs iproute2, procps (C(sysctl)) and iptables, and root.
notes:
  - In check mode a namespace that does not exist yet counts as one the play would create,
    empty (every command for it would run), so a whole play can be checked on a host without
    the lab.
author: k8slab.podnet developers (@k8slab)
'''

EXAMPLES = r'''
- name: NAT for node-1's eth0
  netns_lab_nat:
    routers:
      - {netns: k8slab-node-1-nat, out_iface: wan0}
'''

RETURN = r'''
commands:
  description: Commands that ran (or would run in check mode).
  returned: always
  type: list
  elements: str
'''

import ipaddress
import shlex

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.k8slab.podnet.plugins.module_utils import command
from ansible_collections.k8slab.podnet.plugins.module_utils.iproute import Iproute, IprouteError


def main():
    module = AnsibleModule(
        argument_spec=dict(
            endpoints=dict(type='list', elements='str', default=[]),
            routers=dict(type='list', elements='dict', required=True, options=dict(
                netns=dict(type='str', required=True),
                out_iface=dict(type='str', required=True),
                source=dict(type='str', default='10.0.2.0/24'),
            )),
        ),
        supports_check_mode=True,
    )
    commands = []
    # In check mode a namespace that does not exist yet would be made by the play's earlier
    # tasks, empty: everything it needs counts as a change (`site.yml --check` on a new host).
    try:
        missing = set() if not module.check_mode else (
            set(module.params['endpoints']) | set(r['netns'] for r in module.params['routers'])
        ) - set(Iproute(module).netns_list())
    except IprouteError as e:
        module.fail_json(msg=str(e))

    def run(netns, argv, check=True):
        full = ['ip', 'netns', 'exec', netns] + argv
        rc, out, err = command.run(full)
        if check and rc != 0:
            module.fail_json(msg='%s failed (rc=%d): %s' % (' '.join(full), rc, err.strip()),
                             commands=commands)
        return rc, out

    def change(netns, argv):
        commands.append(' '.join(shlex.quote(a) for a in ['ip', 'netns', 'exec', netns] + argv))
        if not module.check_mode:
            run(netns, argv)

    def forwarding(ns, value):
        out = '' if ns in missing else run(ns, ['sysctl', '-n', 'net.ipv4.ip_forward'])[1]
        if out.strip() != value:
            change(ns, ['sysctl', '-qw', 'net.ipv4.ip_forward=' + value])

    for ns in module.params['endpoints']:
        forwarding(ns, '0')
    for r in module.params['routers']:
        ns = r['netns']
        try:
            source = str(ipaddress.ip_interface(r['source']).network)
        except ValueError as e:
            module.fail_json(msg='source %r of router %s is not a network: %s' % (r['source'], ns, e))
        forwarding(ns, '1')
        rule = ['POSTROUTING', '-s', source, '-o', r['out_iface'], '-j', 'MASQUERADE']
        if ns in missing or run(ns, ['iptables', '-w', '-t', 'nat', '-C'] + rule, check=False)[0] != 0:
            change(ns, ['iptables', '-w', '-t', 'nat', '-A'] + rule)

    result = dict(changed=bool(commands), commands=commands)
    if module._diff:
        result['diff'] = dict(before='', after=''.join(c + '\n' for c in commands))
    module.exit_json(**result)


if __name__ == '__main__':
    main()

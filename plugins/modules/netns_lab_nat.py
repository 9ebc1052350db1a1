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
    description: Needs iptables and root.
notes:
  - In check mode a namespace that does not exist yet counts as one the play would create,
    empty (every command for it would run), so a whole play can be checked on a host without
    the lab.
author: k8slab.podnet developers (@k8slab)
'''

EXAMPLES = r'''
- name: NAT for node-1's eth0
  k8slab.podnet.netns_lab_nat:
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
from ansible_collections.k8slab.podnet.plugins.module_utils.iproute import (
    IprouteError, Sysctls, netns_entries, validate_ifname, validate_netns_name)
from ansible_collections.k8slab.podnet.plugins.module_utils.netns import NetnsError

FORWARDING = '/proc/sys/net/ipv4/ip_forward'


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
    p = module.params
    wanted = []  # (netns, the POSTROUTING rule), each once
    try:
        for n, ns in enumerate(p['endpoints']):
            validate_netns_name(ns, 'endpoints[%d]' % n)
        for n, r in enumerate(p['routers']):
            validate_netns_name(r['netns'], 'routers[%d].netns' % n)
            validate_ifname(r['out_iface'], 'routers[%d].out_iface' % n)
            try:
                source = str(ipaddress.ip_interface(r['source']).network)
            except ValueError as e:
                raise IprouteError('source %r of router %s is not a network: %s'
                                   % (r['source'], r['netns'], e))
            rule = ['POSTROUTING', '-s', source, '-o', r['out_iface'], '-j', 'MASQUERADE']
            if (r['netns'], rule) not in wanted:
                wanted.append((r['netns'], rule))
    except IprouteError as e:
        module.fail_json(msg=str(e))
    routers = sorted(set(ns for ns, _rule in wanted))
    both = sorted(set(routers) & set(p['endpoints']))
    if both:
        module.fail_json(msg='%s: a namespace cannot be a router (forwarding on) and an endpoint '
                         '(forwarding off) at once' % ', '.join(both))
    # In check mode a namespace that does not exist yet would be made by the play's earlier
    # tasks, empty: everything it needs counts as a change (`site.yml --check` on a new host).
    missing = set() if not module.check_mode else (
        set(p['endpoints']) | set(routers)) - set(netns_entries())
    sysctls = Sysctls()  # ip_forward read and written inside each namespace, no process
    rules = []               # (netns, rule) to append

    def iptables(netns, args):
        """(rc, stderr) of iptables -w -t nat ARGS run inside netns (entered, no ip netns exec)."""
        try:
            rc, _out, err = command.run(['iptables', '-w', '-t', 'nat'] + args, netns=netns)
        except NetnsError as e:
            module.fail_json(msg=str(e), commands=commands())
        return rc, err.strip()

    def commands():
        """What runs, in order: the rules, then the sysctls."""
        return [' '.join(shlex.quote(a) for a in [
            'ip', 'netns', 'exec', ns, 'iptables', '-w', '-t', 'nat', '-A'] + rule)
            for ns, rule in rules] + sysctls.commands()

    try:
        for ns, value in ([(e, '0') for e in sorted(set(p['endpoints']))]
                          + [(r, '1') for r in routers]):
            old = None if ns in missing else sysctls.read(ns, [FORWARDING])[FORWARDING]
            if old != value:
                sysctls.plan(ns, FORWARDING, value, old)
    except IprouteError as e:
        module.fail_json(msg=str(e))
    for ns, rule in wanted:
        if ns in missing or iptables(ns, ['-C'] + rule)[0] != 0:
            rules.append((ns, rule))

    if not module.check_mode:
        added = []
        try:
            for ns, rule in rules:
                rc, err = iptables(ns, ['-A'] + rule)
                if rc != 0:
                    raise IprouteError('iptables -t nat -A %s in %s failed (rc=%d): %s'
                                       % (' '.join(rule), ns, rc, err))
                added.append((ns, rule))
            sysctls.apply()
        except IprouteError as e:
            for ns, rule in reversed(added):  # nothing half-made: the rules go again
                iptables(ns, ['-D'] + rule)
            module.fail_json(msg=str(e), commands=commands())
    result = dict(changed=bool(rules or sysctls.planned), commands=commands())
    if module._diff:
        result['diff'] = dict(before='', after=''.join(c + '\n' for c in result['commands']))
    module.exit_json(**result)


if __name__ == '__main__':
    main()

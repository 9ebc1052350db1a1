#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: bridge
short_description: Linux bridges with their addresses, MTU, STP and state
version_added: 0.1.0
description:
  - Makes sure a Linux bridge (C(ip link add type bridge)) exists with exactly the given
    addresses, MTU, STP setting and forward delay, and is up or down; or that it is gone.
  - State is read with C(ip -j -d addr show), one call per namespace; changes run with
    C(ip -batch). When a change fails, the changes already made are undone, so a failed run
    leaves no new bridge or address behind.
  - Options that are not given are not managed (left as they are).
  - Many bridges take one call with O(bridges).
author: k8slab.podnet developers (@k8slab)
options:
  name:
    description:
      - Name of the bridge (at most 15 bytes, no C(/), C(:) or whitespace).
      - Exactly one of O(name) and O(bridges) is required.
    type: str
  addresses:
    description:
      - The exact set of addresses (C(address/prefix), IPv4 or IPv6) of the bridge; others are
        removed (link-local IPv6 addresses, made by the kernel, are left alone).
      - An empty list removes every address. Not given, addresses are not managed.
    type: list
    elements: str
  mtu:
    description:
      - MTU of the bridge (68 to 65535).
      - It is always set with C(ip link set mtu) after the bridge exists, never on
        C(ip link add), because the kernel keeps only an MTU set that way when ports with
        another MTU join the bridge (otherwise the bridge follows its ports' MTU).
    type: int
  up:
    description: Whether the bridge is administratively up.
    type: bool
    default: true
  stp:
    description: Whether the kernel's spanning tree protocol runs on the bridge.
    type: bool
  forward_delay:
    description:
      - Forward delay in whole seconds (C(ip -d link) shows it in centiseconds).
      - 0 to 30; with O(stp) on the kernel requires 2 to 30.
    type: int
  mac:
    description:
      - The bridge's MAC address, set explicitly so that it stays when ports come and go (a
        bridge whose MAC was never set takes the lowest MAC of its ports). The CNI bridge
        plugin pins its bridge's MAC the same way.
    type: str
  accept_ra:
    description:
      - The bridge's C(net.ipv6.conf.<name>.accept_ra) (0 to 2); the CNI bridge plugin sets
        0, it owns the bridge's routes.
    type: int
  broadcast:
    description:
      - Whether each IPv4 address of O(addresses) carries its subnet's broadcast address
        (C(brd)), as the CNI bridge plugin sets it. Needs O(addresses).
    type: bool
  state:
    description: C(present) creates or corrects the bridge, C(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
  bridges:
    description:
      - List form, many bridges in one call. Each element takes the options above (O(name)
        is required); O(netns), O(state) and O(up) not set in an element come from the
        top-level options.
    type: list
    elements: dict
    suboptions:
      name:
        description: See O(name).
        type: str
        required: true
      addresses:
        description: See O(addresses).
        type: list
        elements: str
      mtu:
        description: See O(mtu).
        type: int
      up:
        description: See O(up).
        type: bool
      stp:
        description: See O(stp).
        type: bool
      forward_delay:
        description: See O(forward_delay).
        type: int
      mac:
        description: See O(mac).
        type: str
      accept_ra:
        description: See O(accept_ra).
        type: int
      broadcast:
        description: See O(broadcast).
        type: bool
      state:
        description: See O(state).
        type: str
        choices: [present, absent]
      netns:
        description: See O(netns).
        type: str
extends_documentation_fragment:
  - k8slab.podnet.attributes
  - k8slab.podnet.attributes.iproute2
  - k8slab.podnet.netns
attributes:
  diff_mode:
    description: Shows each bridge's state (addresses, MTU, up, STP, forward delay) before and after.
seealso:
  - module: k8slab.podnet.netns
  - module: k8slab.podnet.veth
'''

EXAMPLES = r'''
- name: The node's pod bridge, gateway of its pods
  k8slab.podnet.bridge:
    name: cni0
    addresses: [10.244.1.1/24]
    mtu: 1500
    stp: false

- name: A switch in its own namespace, no address
  k8slab.podnet.bridge:
    name: br-hostonly
    netns: switch
    addresses: []

- name: Several bridges in one call
  k8slab.podnet.bridge:
    netns: lab
    bridges:
      - {name: br0, addresses: [172.30.0.1/24]}
      - {name: br1, stp: true, forward_delay: 4}
      - {name: br-old, state: absent}
'''

RETURN = r'''
commands:
  description: The iproute2 commands that ran, or in check mode that would run.
  returned: always
  type: list
  elements: str
  sample: ["ip link add name cni0 type bridge stp_state 0", "ip link set dev cni0 mtu 1500",
           "ip addr add 10.244.1.1/24 dev cni0", "ip link set dev cni0 up"]
before:
  description:
    - State of each bridge before the run, keyed by name (C(NETNS/NAME) when O(netns) is set).
    - Each value has C(state), and for a present bridge C(addresses), C(mtu), C(up), C(stp)
      and C(forward_delay) (seconds).
  returned: always
  type: dict
  sample: {cni0: {state: absent}}
after:
  description: State of each bridge after the run (in check mode, the state it would have).
  returned: always
  type: dict
  sample: {cni0: {state: present, addresses: [10.244.1.1/24], mtu: 1500, up: true,
                  stp: false, forward_delay: 15}}
'''

import re

from ansible_collections.k8slab.podnet.plugins.module_utils.argspec import PodnetModule
from ansible_collections.k8slab.podnet.plugins.module_utils.iproute import (
    IprouteError, is_up, link_addresses, link_kind, netns_problem, plan_address_changes,
    validate_ifname, validate_interface_cidr, validate_netns_name)
from ansible_collections.k8slab.podnet.plugins.module_utils.iproute import (
    conf_sysctl, netns_missing, plan_apply_exit, plan_broadcasts)

FIELDS = ('name', 'addresses', 'mtu', 'up', 'stp', 'forward_delay', 'state', 'netns',
          'mac', 'accept_ra', 'broadcast')
# What a new bridge gets from the kernel when an option is not given.
KERNEL_DEFAULTS = dict(addresses=[], mtu=1500, up=False, stp=False, forward_delay=15)


def normalize(params):
    """The list of bridge specs, top-level values filled in for netns/state/up."""
    if params.get('bridges') is not None:
        specs = []
        for element in params['bridges']:
            spec = dict((k, element.get(k)) for k in FIELDS)
            for k in ('netns', 'state', 'up'):
                if spec[k] is None:
                    spec[k] = params.get(k)
            specs.append(spec)
        return specs
    return [dict((k, params.get(k)) for k in FIELDS)]


def validate(specs):
    """Checks every value before anything is read or changed."""
    seen = set()
    for spec in specs:
        validate_ifname(spec['name'], 'bridge name')
        if spec['netns'] is not None:
            validate_netns_name(spec['netns'], 'netns')
        key = (spec['netns'], spec['name'])
        if key in seen:
            raise IprouteError('bridge %r is listed twice%s' % (
                spec['name'], ' in netns %r' % spec['netns'] if spec['netns'] else ''))
        seen.add(key)
        if spec['addresses'] is not None:
            spec['addresses'] = sorted(set(
                str(validate_interface_cidr(a, 'address of bridge %s' % spec['name']))
                for a in spec['addresses']))
        if spec['mtu'] is not None and not 68 <= spec['mtu'] <= 65535:
            raise IprouteError('mtu %r of bridge %s is out of range 68..65535'
                               % (spec['mtu'], spec['name']))
        fd = spec['forward_delay']
        if fd is not None and not 0 <= fd <= 30:
            raise IprouteError('forward_delay %r of bridge %s is out of range 0..30 seconds'
                               % (fd, spec['name']))
        if fd is not None and spec['stp'] and fd < 2:
            raise IprouteError('forward_delay %r of bridge %s: with stp the kernel requires '
                               '2..30 seconds' % (fd, spec['name']))
    return specs


def key_of(spec):
    return '%s/%s' % (spec['netns'], spec['name']) if spec['netns'] else spec['name']


def bridge_state(link):
    if link is None:
        return {'state': 'absent'}
    data = link['linkinfo'].get('info_data', {})
    fd = data.get('forward_delay', 0) / 100.0
    return {'state': 'present', 'addresses': sorted(link_addresses(link)), 'mtu': link['mtu'],
            'up': is_up(link), 'stp': bool(data.get('stp_state')),
            'forward_delay': int(fd) if fd == int(fd) else fd}


def plan_bridge(ipr, spec, link):
    """Plans one bridge's changes; returns (before, after). ``link`` is its current
    ``ip -j -d addr show`` entry or None."""
    name, ns = spec['name'], spec['netns']
    if link is not None and link_kind(link) != 'bridge':
        raise IprouteError('%s %r%s exists but is a %s link, not a bridge' % (
            'link', name, ' in netns %r' % ns if ns else '', link_kind(link) or 'plain'))
    before = bridge_state(link)
    if spec['state'] == 'absent':
        if link is not None:
            ipr.plan(['link', 'del', 'dev', name], netns=ns)
        return before, {'state': 'absent'}

    after = dict(KERNEL_DEFAULTS, **before) if link else dict(KERNEL_DEFAULTS, state='present')
    for k in ('addresses', 'mtu', 'up', 'stp', 'forward_delay'):
        if spec[k] is not None:
            after[k] = spec[k]
    if after['stp'] and after['forward_delay'] < 2:
        if spec['forward_delay'] is not None:
            raise IprouteError('forward_delay %r of bridge %s: STP is on, the kernel requires '
                               '2..30 seconds' % (spec['forward_delay'], name))
        after['forward_delay'] = 2  # what the kernel makes of it when STP starts

    if link is None:
        args = ['link', 'add', 'name', name, 'type', 'bridge']
        # the kernel sets forward_delay before stp_state, as needed
        if spec['forward_delay'] is not None:
            args += ['forward_delay', str(spec['forward_delay'] * 100)]
        if spec['stp'] is not None:
            args += ['stp_state', '1' if spec['stp'] else '0']
        ipr.plan(args, netns=ns, undo=['link', 'del', 'dev', name])
        if spec['mtu'] is not None:
            # set after creation: an MTU given to `link add` is dropped when a port with
            # another MTU joins (the kernel keeps only an MTU set on an existing bridge)
            ipr.plan(['link', 'set', 'dev', name, 'mtu', str(spec['mtu'])], netns=ns)
        if spec['addresses']:
            plan_address_changes(ipr, name, [], spec['addresses'], ns, new_link=True)
        if after['up']:
            ipr.plan(['link', 'set', 'dev', name, 'up'], netns=ns)
        return before, after

    def set_(args, undo):
        ipr.plan(['link', 'set', 'dev', name] + args, netns=ns,
                 undo=['link', 'set', 'dev', name] + undo)

    if after['mtu'] != before['mtu']:
        set_(['mtu', str(after['mtu'])], ['mtu', str(before['mtu'])])
    fd_changes = after['forward_delay'] != before['forward_delay']
    old_fd = str(int(round(before['forward_delay'] * 100)))
    new_fd = str(after['forward_delay'] * 100) if fd_changes else old_fd

    def stp_arg(on):
        return ['type', 'bridge', 'stp_state', '1' if on else '0']

    def fd_arg(centiseconds):
        return ['type', 'bridge', 'forward_delay', centiseconds]

    # The kernel checks forward_delay against 2..30 s only while STP is on: change the
    # delay while STP is off (after switching it off, or before switching it on).
    if after['stp'] != before['stp'] and not after['stp']:
        set_(stp_arg(False), stp_arg(True))
    if fd_changes:
        set_(fd_arg(new_fd), fd_arg(old_fd))
    if after['stp'] != before['stp'] and after['stp']:
        set_(stp_arg(True), stp_arg(False))
    # down before the addresses change, up after: taking a link down drops its IPv6
    # addresses (keep_addr_on_down=0), so addresses are set while the link stays as it ends
    if before['up'] and not after['up']:
        set_(['down'], ['up'])
    if spec['addresses'] is not None:
        plan_address_changes(ipr, name, before['addresses'], spec['addresses'], ns)
    if after['up'] and not before['up']:
        set_(['up'], ['down'])
    return before, after


MAC_RE = re.compile(r'^[0-9a-f]{2}(:[0-9a-f]{2}){5}$')


def validate_cni_parity(specs):
    """Checks mac, accept_ra and broadcast (the CNI bridge plugin's settings)."""
    for spec in specs:
        if spec['mac'] is not None:
            mac = spec['mac'].lower()
            if not MAC_RE.match(mac) or int(mac[:2], 16) & 1:
                raise IprouteError('mac %r of bridge %s is not a unicast MAC address '
                                   '(xx:xx:xx:xx:xx:xx)' % (spec['mac'], spec['name']))
            spec['mac'] = mac
        if spec['accept_ra'] is not None and spec['accept_ra'] not in (0, 1, 2):
            raise IprouteError('accept_ra %r of bridge %s is not 0, 1 or 2'
                               % (spec['accept_ra'], spec['name']))
        if spec['broadcast'] and spec['addresses'] is None:
            raise IprouteError('broadcast of bridge %s needs addresses' % spec['name'])


def plan_cni_parity(ipr, sysctls, spec, link, before, after):
    """Plans mac, broadcast and accept_ra of one present bridge, after plan_bridge."""
    name, ns = spec['name'], spec['netns']
    if spec['mac'] is not None:
        if link is not None:
            before['mac'] = link.get('address')
        after['mac'] = spec['mac']
        if link is None or link.get('address') != spec['mac']:
            ipr.plan(['link', 'set', 'dev', name, 'address', spec['mac']], netns=ns,
                     undo=['link', 'set', 'dev', name, 'address', link['address']]
                     if link else None)
    if spec['broadcast']:
        plan_broadcasts(ipr, name, link, spec['addresses'], ns)
    if spec['accept_ra'] is not None:
        path = conf_sysctl('ipv6', name, 'accept_ra')
        current = sysctls.read(ns, [path])[path] if link is not None else None
        if current is not None:
            before['accept_ra'] = int(current)
        if current != str(spec['accept_ra']):
            sysctls.plan(ns, path, spec['accept_ra'], current)
        after['accept_ra'] = spec['accept_ra']


def run(ipr, specs, sysctls=None):
    specs = validate(specs)
    validate_cni_parity(specs)
    missing = netns_missing(s['netns'] for s in specs)
    for spec in specs:
        if spec['state'] == 'present' and spec['netns'] in missing:
            raise IprouteError(netns_problem(spec['netns'], missing[spec['netns']],
                                             'of bridge %s' % spec['name']))
    links = {}
    for ns in set(s['netns'] for s in specs if s['netns'] not in missing):
        links[ns] = dict((l['ifname'], l) for l in ipr.json_batch(['addr show'], ns, details=True)[0])
    before, after = {}, {}
    # deletions last: a deleted bridge cannot be brought back if a later change fails
    for spec in sorted(specs, key=lambda s: s['state'] == 'absent'):
        # state=absent in a namespace that is gone: the bridge went with it
        current = links.get(spec['netns'], {}).get(spec['name'])
        b, a = plan_bridge(ipr, spec, current)
        if spec['state'] != 'absent' and sysctls is not None:
            plan_cni_parity(ipr, sysctls, spec, current, b, a)
        before[key_of(spec)], after[key_of(spec)] = b, a
    return before, after


def main():
    element = dict(
        name=dict(type='str', required=True),
        addresses=dict(type='list', elements='str'),
        mtu=dict(type='int'),
        up=dict(type='bool'),
        stp=dict(type='bool'),
        forward_delay=dict(type='int'),
        state=dict(type='str', choices=['present', 'absent']),
        netns=dict(type='str'),
        mac=dict(type='str'),
        accept_ra=dict(type='int'),
        broadcast=dict(type='bool'),
    )
    module = PodnetModule(
        argument_spec=dict(
            name=dict(type='str'),
            addresses=dict(type='list', elements='str'),
            mtu=dict(type='int'),
            up=dict(type='bool', default=True),
            stp=dict(type='bool'),
            forward_delay=dict(type='int'),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            netns=dict(type='str'),
            mac=dict(type='str'),
            accept_ra=dict(type='int'),
            broadcast=dict(type='bool'),
            bridges=dict(type='list', elements='dict', options=element),
        ),
        mutually_exclusive=[('name', 'bridges'), ('addresses', 'bridges'), ('mtu', 'bridges'),
                            ('stp', 'bridges'), ('forward_delay', 'bridges')],
        required_one_of=[('name', 'bridges')],
        supports_check_mode=True,
    )
    plan_apply_exit(module, lambda ipr, sysctls: run(ipr, normalize(module.params), sysctls))


if __name__ == '__main__':
    main()

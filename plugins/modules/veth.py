#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: veth
short_description: veth pairs across namespaces, bridge ports, and the addresses and routes of their far end
version_added: 0.1.0
description:
  - Makes sure a veth pair exists with one end, O(name), in O(netns) and the other end,
    O(peer), in O(peer_netns) - the way a CNI plugin wires a pod - and that it looks as
    asked, or that it is gone.
  - O(name) (the host side) can be made a port of the bridge O(master), with hairpin mode.
    O(peer) (the pod side, usually C(eth0)) gets exactly the O(addresses) and at least the
    O(routes) asked for.
  - It corrects drift - a port moved to another master, an end set down, a wrong MTU, a
    missing or different route, a stray address.
  - Everything is checked before anything changes - names, addresses, that namespaces and
    the master bridge exist, that no link of the same names is in the way. State is read
    over rtnetlink, in each namespace (no process); changes run as one C(ip -batch) process
    per namespace. If a change fails, the ones already made are undone (new pairs are
    deleted), so a failed run leaves nothing half-made.
  - A node's pods take one call with O(pairs).
  - Options that are not given are not managed (left as they are).
  - A pair may be listed twice in one O(pairs) list, once from each side, to give both ends
    addresses (see the examples).
author: k8slab.podnet developers (@k8slab)
options:
  name:
    description:
      - Name of the end in O(netns) (at most 15 bytes, no C(/), C(:) or whitespace).
      - Exactly one of O(name) and O(pairs) is required.
    type: str
  peer:
    description:
      - Name of the other end, in O(peer_netns). Required with O(state=present).
      - With O(state=absent) it is optional; when given, the pair is only deleted if O(name)
        really is paired with it.
    type: str
  peer_netns:
    description:
      - Named network namespace of O(peer). Default is O(netns), the namespace of O(name).
      - With O(state=present) it must exist. With O(state=absent), when it is gone, a pair
        of O(name) whose other end no name leads to any more is deleted.
    type: str
  master:
    description:
      - Bridge (in O(netns)) that O(name) is a port of. It must exist and be a bridge.
    type: str
  hairpin:
    description:
      - Hairpin mode of the bridge port O(name) (frames may go back out the port they came
        in on, so a pod can reach itself through a service). Needs O(master).
    type: bool
  mtu:
    description: MTU of both ends (68 to 65535).
    type: int
  addresses:
    description:
      - The exact set of addresses (C(address/prefix)) of O(peer); others are removed
        (link-local IPv6 addresses, made by the kernel, are left alone).
    type: list
    elements: str
  routes:
    description:
      - Routes through O(peer) in O(peer_netns), table main. Missing ones are added, a
        route to the same destination that differs is replaced; other routes are left alone.
      - Two routes to one destination (also spelled differently, as C(default) and
        C(0.0.0.0/0)) in one call are refused, naming both.
    type: list
    elements: dict
    suboptions:
      dst:
        description: Destination network (host bits zero) or C(default).
        type: str
        required: true
      via:
        description: Gateway address; without it the route is a direct route on O(peer).
        type: str
  up:
    description:
      - Whether both ends are administratively up. When true, C(lo) of O(peer_netns) is set
        up too (a fresh namespace has it down).
    type: bool
    default: true
  txqueuelen:
    description:
      - Transmit queue length of both ends (C(ip link set txqueuelen)); the CNI bridge plugin
        creates its veths with 0, the kernel's default is 1000.
    type: int
  accept_ra:
    description:
      - C(net.ipv6.conf.<name>.accept_ra) of O(name) (0 to 2); the CNI bridge plugin sets 0 on
        the host end, it owns the routes of the interface.
    type: int
  peer_arp_notify:
    description:
      - C(net.ipv4.conf.<peer>.arp_notify) of O(peer) in O(peer_netns) (announce the pod's
        address with a gratuitous ARP when the link comes up, as the CNI bridge plugin sets).
    type: bool
  peer_accept_dad:
    description:
      - C(net.ipv6.conf.<peer>.accept_dad) of O(peer) (0 to 2); the CNI bridge plugin sets 0.
    type: int
  broadcast:
    description:
      - Whether each IPv4 address of O(addresses) carries its subnet's broadcast address
        (C(brd)), as the CNI bridge plugin sets it. Needs O(addresses).
    type: bool
  state:
    description:
      - C(present) creates or corrects the pair; C(absent) deletes it (deleting one end
        deletes both).
    type: str
    choices: [present, absent]
    default: present
  pairs:
    description:
      - List form, many pairs in one call (all pods of a node). Each element takes O(name),
        O(peer), O(peer_netns), O(addresses) and O(routes), and may override O(netns),
        O(master), O(hairpin), O(mtu), O(up) and O(state); what an element does not set
        comes from the top-level options.
    type: list
    elements: dict
    suboptions:
      name:
        description: See O(name).
        type: str
        required: true
      peer:
        description: See O(peer).
        type: str
      netns:
        description: See O(netns).
        type: str
      peer_netns:
        description: See O(peer_netns).
        type: str
      master:
        description: See O(master).
        type: str
      hairpin:
        description: See O(hairpin).
        type: bool
      mtu:
        description: See O(mtu).
        type: int
      addresses:
        description: See O(addresses).
        type: list
        elements: str
      routes:
        description: See O(routes).
        type: list
        elements: dict
        suboptions:
          dst:
            description: See O(routes[].dst).
            type: str
            required: true
          via:
            description: See O(routes[].via).
            type: str
      up:
        description: See O(up).
        type: bool
      txqueuelen:
        description: See O(txqueuelen).
        type: int
      accept_ra:
        description: See O(accept_ra).
        type: int
      peer_arp_notify:
        description: See O(peer_arp_notify).
        type: bool
      peer_accept_dad:
        description: See O(peer_accept_dad).
        type: int
      broadcast:
        description: See O(broadcast).
        type: bool
      state:
        description: See O(state).
        type: str
        choices: [present, absent]
extends_documentation_fragment:
  - k8slab.podnet.attributes
  - k8slab.podnet.attributes.iproute2
  - k8slab.podnet.netns
attributes:
  diff_mode:
    description: Shows each pair (ends, master, hairpin, MTU, up, addresses, routes) before and after.
notes:
  - Works when the module itself runs inside another network and mount namespace (for
    example under C(nsenter)); namespace names are looked up as C(ip -n) does, in
    C(/run/netns) of the mount namespace the module runs in.
  - Names that C(ip -batch) cannot read back (a C(#) starts a comment there) are accepted as
    the kernel accepts them; their commands run one C(ip) process each.
seealso:
  - module: k8slab.podnet.netns
  - module: k8slab.podnet.bridge
'''

EXAMPLES = r'''
- name: Wire every pod of this node to cni0, as the bridge CNI plugin does
  k8slab.podnet.veth:
    master: cni0
    hairpin: true
    mtu: 1500
    pairs:
      - name: veth1a2b3c4d
        peer: eth0
        peer_netns: httpd
        addresses: [10.244.1.2/24]
        routes:
          - {dst: default, via: 10.244.1.1}
          - {dst: 10.244.0.0/16, via: 10.244.1.1}
      - name: veth5e6f7a8b
        peer: eth0
        peer_netns: client
        addresses: [10.244.1.3/24]
        routes:
          - {dst: default, via: 10.244.1.1}
          - {dst: 10.244.0.0/16, via: 10.244.1.1}

- name: Two namespaces joined directly, an address on each end (the pair seen from both sides)
  k8slab.podnet.veth:
    pairs:
      - {name: veth-client, netns: client, peer: veth-server, peer_netns: server,
         addresses: [10.0.0.12/24]}
      - {name: veth-server, netns: server, peer: veth-client, peer_netns: client,
         addresses: [10.0.0.11/24]}

- name: Remove a pod's pair
  k8slab.podnet.veth:
    name: veth1a2b3c4d
    state: absent
'''

RETURN = r'''
commands:
  description: The iproute2 commands that ran, or in check mode that would run, in order.
  returned: always
  type: list
  elements: str
  sample:
    - ip link add name veth1a2b3c4d mtu 1500 type veth peer name eth0 netns httpd mtu 1500
    - ip link set dev veth1a2b3c4d master cni0
    - ip link set dev veth1a2b3c4d type bridge_slave hairpin on
    - ip link set dev veth1a2b3c4d up
    - ip -n httpd link set dev lo up
    - ip -n httpd addr add 10.244.1.2/24 dev eth0
    - ip -n httpd link set dev eth0 up
    - ip -n httpd route add default via 10.244.1.1 dev eth0
    - ip -n httpd route add 10.244.0.0/16 via 10.244.1.1 dev eth0
before:
  description:
    - State of each pair before the run, keyed by O(name) (C(NETNS/NAME) when O(netns) is
      set). C(state) is C(absent) or C(present); a present pair also has C(peer),
      C(peer_netns), C(master), C(hairpin), C(mtu), C(peer_mtu), C(up), C(peer_up),
      C(addresses) and C(routes) (of the peer end; routes the kernel makes for addresses
      are left out).
  returned: always
  type: dict
  sample: {veth1a2b3c4d: {state: absent}}
after:
  description: State of each pair after the run (in check mode, the state it would have).
  returned: always
  type: dict
  sample:
    veth1a2b3c4d:
      state: present
      peer: eth0
      peer_netns: httpd
      master: cni0
      hairpin: true
      mtu: 1500
      peer_mtu: 1500
      up: true
      peer_up: true
      addresses: [10.244.1.2/24]
      routes: [{dst: 10.244.0.0/16, via: 10.244.1.1}, {dst: default, via: 10.244.1.1}]
'''

import ipaddress

from ansible_collections.k8slab.podnet.plugins.module_utils.argspec import PodnetModule
from ansible_collections.k8slab.podnet.plugins.module_utils.iproute import (
    IprouteError, is_up, link_addresses, link_kind, plan_address_changes,
    netns_problem, route_dst, validate_address, validate_ifname, validate_interface_cidr,
    validate_netns_name)
from ansible_collections.k8slab.podnet.plugins.module_utils.iproute import (
    conf_sysctl, netns_missing, plan_apply_exit, plan_broadcasts)
from ansible_collections.k8slab.podnet.plugins.module_utils import rtnl

FIELDS = ('name', 'peer', 'netns', 'peer_netns', 'master', 'hairpin', 'mtu', 'addresses',
          'routes', 'up', 'state', 'txqueuelen', 'accept_ra', 'peer_arp_notify',
          'peer_accept_dad', 'broadcast')
INHERITED = ('netns', 'master', 'hairpin', 'mtu', 'up', 'state', 'txqueuelen', 'accept_ra',
             'peer_arp_notify', 'peer_accept_dad', 'broadcast')
DEFAULT_MTU = 1500  # what the kernel gives a new veth end when no MTU is asked for


def where(ns):
    return ' in netns %r' % ns if ns else ''


def normalize(params):
    """The list of pair specs; list elements inherit unset options from the top level."""
    if params.get('pairs') is None:
        specs = [dict((k, params.get(k)) for k in FIELDS)]
    else:
        specs = []
        for element in params['pairs']:
            spec = dict((k, element.get(k)) for k in FIELDS)
            for k in INHERITED:
                if spec[k] is None:
                    spec[k] = params.get(k)
            specs.append(spec)
    for spec in specs:
        if spec['peer_netns'] is None:
            spec['peer_netns'] = spec['netns']
    return specs


def route_words(route):
    """A route as given, for messages: 'default via 10.78.0.1'."""
    return ' '.join(str(route[k]) if k == 'dst' else 'via %s' % route[k]
                    for k in ('dst', 'via') if route.get(k))


def validate(specs):
    """Checks every value of every pair before anything is read or changed."""
    ends = {}
    routes = {}  # (peer_netns, dst) -> ((peer, via), text as given)
    for spec in specs:
        name = validate_ifname(spec['name'], 'interface name')
        if spec['state'] == 'present' and spec['peer'] is None:
            raise IprouteError('veth %r: peer is required with state=present' % name)
        if spec['peer'] is not None:
            validate_ifname(spec['peer'], 'peer name')
        for k in ('netns', 'peer_netns'):
            if spec[k] is not None:
                validate_netns_name(spec[k], k)
        if spec['peer'] == name and spec['peer_netns'] == spec['netns']:
            raise IprouteError('veth %r: both ends have the same name in the same namespace'
                               % name)
        if spec['master'] is not None:
            validate_ifname(spec['master'], 'master')
        elif spec['hairpin'] is not None and spec['state'] == 'present':
            raise IprouteError('veth %r: hairpin needs master (the bridge of the port)' % name)
        if spec['mtu'] is not None and not 68 <= spec['mtu'] <= 65535:
            raise IprouteError('mtu %r of veth %s is out of range 68..65535' % (spec['mtu'], name))
        if spec['addresses'] is not None:
            spec['addresses'] = sorted(set(
                str(validate_interface_cidr(a, 'address of %s' % spec['peer']))
                for a in spec['addresses']))
        if spec['routes'] is not None:
            valid = []
            for raw in spec['routes']:
                route = validate_route(raw, spec['peer'])
                # table main keys a route by destination (and metric): two routes to one
                # destination in one call are one route asked to be two things
                key = (spec['peer_netns'], route['dst'])
                if key in routes and routes[key][0] != (spec['peer'], route['via']):
                    raise IprouteError(
                        'routes %s of %s and %s of %s%s are the same route (destination %s '
                        'in table main): list it once' % (
                            routes[key][1], routes[key][0][0], route_words(raw), spec['peer'],
                            where(spec['peer_netns']), route['dst']))
                routes[key] = ((spec['peer'], route['via']), route_words(raw))
                if route not in valid:
                    valid.append(route)
            spec['routes'] = valid
        # One end, one pair: the same end twice is only allowed as the other side of a
        # pair listed from both sides.
        mine = {(spec['netns'], name): (spec['peer_netns'], spec['peer'])}
        if spec['peer'] is not None:
            mine[(spec['peer_netns'], spec['peer'])] = (spec['netns'], name)
        for end, other in mine.items():
            if end in ends and ends[end] != other:
                raise IprouteError('interface %r%s is listed in two different pairs'
                                   % (end[1], where(end[0])))
            ends[end] = other
    return specs


def validate_route(route, dev):
    if not isinstance(route, dict) or set(route) - set(['dst', 'via']) or not route.get('dst'):
        raise IprouteError('route %r of %s must be a dict with dst and optional via' % (route, dev))
    via = route.get('via')
    family = None
    if via is not None:
        family = validate_address(via, 'gateway of route %s' % route['dst']).version
    dst = route['dst']
    if dst != 'default':
        net = _network(dst, 'destination of route via %s' % via if via else 'route destination')
        if family is not None and net.version != family:
            raise IprouteError('route %s via %s mixes IPv4 and IPv6' % (dst, via))
        family = net.version
    return {'dst': route_dst(dst, family), 'via': str(ipaddress.ip_address(via)) if via else None}


def _network(value, what):
    try:
        return ipaddress.ip_network(str(value), strict=True)
    except ValueError as e:
        raise IprouteError('%s %r is not a valid network (host bits must be zero): %s'
                           % (what, value, e))


def route_text(dst):
    return 'default' if dst in ('0.0.0.0/0', '::/0') else dst


class View(object):
    """The links and routes of every namespace involved, as read and then as planned: each
    planned change is applied to the view, so later pairs of the same call see it."""

    def __init__(self):
        self.links = {}   # (netns, ifname) -> end dict
        self.routes = {}  # netns -> list of {dst, via, dev, metric}

    def read(self, ipr, namespaces, v6_namespaces):
        ids, raw = {}, {}
        for ns in namespaces:
            # Over rtnetlink, in ip -j -d's shape: no `ip` process per namespace (a pod each).
            try:
                addrs, routes, routes6, nslist = rtnl.read(ns, v6=ns in v6_namespaces)
            except rtnl.RtnlError as e:
                raise IprouteError(str(e))
            self.routes[ns] = ([parse_route(r, 4) for r in routes]
                               + [parse_route(r, 6) for r in routes6])
            ids[ns] = dict((n['id'], n['name']) for n in nslist if 'id' in n)
            raw[ns] = dict((link['ifindex'], link) for link in addrs)
            for link in addrs:
                self.links[(ns, link['ifname'])] = end_state(link)
        # Who is paired with whom: same namespace -> "link" holds the peer's name; another
        # namespace -> link_netnsid (as numbered from this namespace) and link_index.
        for ns in namespaces:
            for link in raw[ns].values():
                end = self.links[(ns, link['ifname'])]
                if end['kind'] == 'veth':
                    end['peer'] = self._peer(ns, link, ids, raw)

    @staticmethod
    def _peer(ns, link, ids, raw):
        """(netns, name) of a veth's other end; the name is None when that end is in a
        namespace that has no name or was not read."""
        if 'link_netnsid' not in link:
            return (ns, link.get('link'))
        peer_ns = ids[ns].get(link['link_netnsid'])
        peer = raw.get(peer_ns, {}).get(link.get('link_index')) if peer_ns else None
        if peer is not None and peer.get('link_index') == link['ifindex']:
            return (peer_ns, peer['ifname'])
        return (peer_ns, None)


def end_state(link):
    info = link.get('linkinfo') or {}
    return {'kind': link_kind(link), 'mtu': link['mtu'], 'up': is_up(link),
            'master': link.get('master'),
            'hairpin': bool(info.get('info_slave_kind') == 'bridge'
                            and (info.get('info_slave_data') or {}).get('hairpin')),
            'addresses': sorted(link_addresses(link)), 'peer': None,
            'txqlen': link.get('txqlen', 0), 'addr_info': link.get('addr_info', [])}


def parse_route(r, family):
    return {'dst': route_dst(r['dst'], family), 'via': r.get('gateway'), 'dev': r.get('dev'),
            'metric': r.get('metric'), 'type': r.get('type', 'unicast'),
            'kernel': r.get('protocol') == 'kernel', 'stale': False}


def pair_state(view, spec):
    host = view.links.get((spec['netns'], spec['name']))
    if host is None:
        return {'state': 'absent'}
    peer_ns, peer_name = host['peer'] or (None, None)
    peer = view.links.get((peer_ns, peer_name)) if peer_name else None
    state = {'state': 'present', 'peer': peer_name, 'peer_netns': peer_ns,
             'master': host['master'], 'hairpin': host['hairpin'], 'mtu': host['mtu'],
             'up': host['up']}
    if host['kind'] != 'veth':
        state['kind'] = host['kind']
    if peer is not None:
        state.update(peer_mtu=peer['mtu'], peer_up=peer['up'], addresses=peer['addresses'],
                     routes=sorted(({'dst': route_text(r['dst']), 'via': r['via']}
                                    for r in view.routes.get(peer_ns, [])
                                    if r['dev'] == peer_name and not r['kernel']),
                                   key=lambda r: (r['dst'], r['via'] or '')))
    return state


class Planner(object):
    """Plans the changes of all pairs: link creations first (grouped by namespace), then
    each namespace's configuration in one group, then deletions."""

    def __init__(self, ipr, view):
        self.ipr = ipr
        self.view = view
        self.create = []    # Change lists, applied in this order
        self.config = {}    # netns -> [Change]
        self.delete = []
        self.claimed = {}   # (netns, ifname, attribute) -> value asked by an earlier pair

    def change(self, bucket, args, ns, undo=None):
        self.ipr.plan(args, netns=ns, undo=undo)
        bucket.append(self.ipr.changes.pop())

    def configure(self, ns, args, undo=None):
        self.change(self.config.setdefault(ns, []), args, ns, undo)

    def claim(self, ns, ifname, attribute, value):
        key = (ns, ifname, attribute)
        if key in self.claimed and self.claimed[key] != value:
            raise IprouteError('%s of %r%s is asked to be both %r and %r' % (
                attribute, ifname, where(ns), self.claimed[key], value))
        self.claimed[key] = value

    def ordered(self):
        out = list(self.create)
        namespaces = list(self.config)
        if self.create:  # the namespace that created last goes on in the same ip -batch
            last = self.create[-1].netns
            namespaces.sort(key=lambda ns: ns != last)
        for ns in namespaces:
            out.extend(self.config[ns])
        return out + self.delete

    # ---- one pair ------------------------------------------------------------------
    def absent(self, spec):
        ns, name = spec['netns'], spec['name']
        host = self.view.links.get((ns, name))
        if host is None:
            return
        if host['kind'] != 'veth':
            raise IprouteError('%r%s is a %s link, not a veth: not deleting it'
                               % (name, where(ns), host['kind'] or 'plain'))
        unnamed = (host['peer'] or (None, None))[1] is None
        if (spec['peer'] is not None and host['peer'] != (spec['peer_netns'], spec['peer'])
                and not (spec.get('peer_lost') and unnamed)):
            raise IprouteError('veth %r%s is not paired with %r%s: not deleting it'
                               % (name, where(ns), spec['peer'], where(spec['peer_netns'])))
        self.change(self.delete, ['link', 'del', 'dev', name], ns)
        peer = host['peer']
        del self.view.links[(ns, name)]
        if peer and peer in self.view.links:
            del self.view.links[peer]

    def present(self, spec):
        ns, name, pns, peer = spec['netns'], spec['name'], spec['peer_netns'], spec['peer']
        links = self.view.links
        host = links.get((ns, name))
        if spec['master'] is not None:
            master = links.get((ns, spec['master']))
            if master is None:
                raise IprouteError('master %r of %s does not exist%s'
                                   % (spec['master'], name, where(ns)))
            if master['kind'] != 'bridge':
                raise IprouteError('master %r of %s%s is a %s link, not a bridge'
                                   % (spec['master'], name, where(ns), master['kind'] or 'plain'))
        if host is not None and host['kind'] != 'veth':
            raise IprouteError('%r%s already exists as a %s link, not a veth'
                               % (name, where(ns), host['kind'] or 'plain'))
        if host is not None and host['peer'] != (pns, peer):
            other_ns, other = host['peer'] or (None, None)
            raise IprouteError('veth %r%s already exists, paired with %s, not with %r%s' % (
                name, where(ns), '%r%s' % (other, where(other_ns)) if other
                else 'an end in another namespace', peer, where(pns)))
        if host is None:
            if (pns, peer) in links:
                raise IprouteError('peer name %r already exists%s (as a %s link of another '
                                   'pair or device)' % (peer, where(pns),
                                                        links[(pns, peer)]['kind'] or 'plain'))
            self.plan_create(spec)
        host, far = links[(ns, name)], links[(pns, peer)]
        # changes to a pair made by this run need no undo: deleting the pair undoes them
        new = bool(host.get('new'))
        self.configure_host(spec, host, new)
        self.configure_peer(spec, far, new)

    def plan_create(self, spec):
        ns, name, pns, peer = spec['netns'], spec['name'], spec['peer_netns'], spec['peer']
        mtu = ['mtu', str(spec['mtu'])] if spec['mtu'] else []
        args = ['link', 'add', 'name', name] + mtu + ['type', 'veth', 'peer', 'name', peer]
        if pns != ns:
            args += ['netns', pns]
        self.change(self.create, args + mtu, ns, undo=['link', 'del', 'dev', name])
        for end, other in (((ns, name), (pns, peer)), ((pns, peer), (ns, name))):
            self.view.links[end] = {'kind': 'veth', 'mtu': spec['mtu'] or DEFAULT_MTU,
                                    'up': False, 'master': None, 'hairpin': False,
                                    'addresses': [], 'peer': other, 'new': True}

    def set_link(self, ns, name, args, undo, new):
        self.configure(ns, ['link', 'set', 'dev', name] + args,
                       undo=None if new else ['link', 'set', 'dev', name] + undo)

    def configure_host(self, spec, host, new):
        ns, name = spec['netns'], spec['name']
        if spec['mtu'] is not None:
            self.claim(ns, name, 'mtu', spec['mtu'])
            if host['mtu'] != spec['mtu']:
                self.set_link(ns, name, ['mtu', str(spec['mtu'])], ['mtu', str(host['mtu'])], new)
                host['mtu'] = spec['mtu']
        moved = False
        if spec['master'] is not None:
            self.claim(ns, name, 'master', spec['master'])
            if host['master'] != spec['master']:
                old = ['master', host['master']] if host['master'] else ['nomaster']
                self.set_link(ns, name, ['master', spec['master']], old, new)
                host['master'], moved = spec['master'], True
                host['hairpin'] = False  # a new port starts without hairpin
        if spec['hairpin'] is not None:
            self.claim(ns, name, 'hairpin', spec['hairpin'])
            if host['hairpin'] != spec['hairpin']:
                onoff = ['on', 'off'] if spec['hairpin'] else ['off', 'on']
                self.set_link(ns, name, ['type', 'bridge_slave', 'hairpin', onoff[0]],
                              ['type', 'bridge_slave', 'hairpin', onoff[1]], new or moved)
                host['hairpin'] = spec['hairpin']
        self.claim(ns, name, 'up', spec['up'])
        if host['up'] != spec['up']:
            self.set_link(ns, name, ['up' if spec['up'] else 'down'],
                          ['down' if spec['up'] else 'up'], new)
            host['up'] = spec['up']

    def configure_peer(self, spec, far, new):
        pns, peer = spec['peer_netns'], spec['peer']
        if spec['mtu'] is not None:
            self.claim(pns, peer, 'mtu', spec['mtu'])
            if far['mtu'] != spec['mtu']:
                self.set_link(pns, peer, ['mtu', str(spec['mtu'])], ['mtu', str(far['mtu'])], new)
                far['mtu'] = spec['mtu']
        lo = self.view.links.get((pns, 'lo'))
        if spec['up'] and lo is not None and not lo['up']:
            # the first up of a fresh namespace's lo makes the kernel add 127.0.0.1/8, ::1
            # and their local routes: undoing it takes them away again
            undo = [['link', 'set', 'dev', 'lo', 'down']]
            if not lo['addresses']:
                undo.append(['addr', 'flush', 'dev', 'lo'])
            self.configure(pns, ['link', 'set', 'dev', 'lo', 'up'], undo=undo)
            lo['up'] = True
        self.claim(pns, peer, 'up', spec['up'])
        # down before addresses change, up after: going down drops IPv6 addresses
        if far['up'] and not spec['up']:
            self.set_link(pns, peer, ['down'], ['up'], new)
            far['up'] = False
        flushed = False
        if spec['addresses'] is not None:
            self.claim(pns, peer, 'addresses', spec['addresses'])
            bucket = self.config.setdefault(pns, [])
            start = len(self.ipr.changes)
            flushed = plan_address_changes(self.ipr, peer, far['addresses'], spec['addresses'],
                                           pns, new_link=new)
            bucket.extend(self.ipr.changes[start:])
            del self.ipr.changes[start:]
            far['addresses'] = list(spec['addresses'])
            if flushed:  # the kernel may drop routes through a deleted address
                for r in self.view.routes.get(pns, []):
                    r['stale'] = r['stale'] or r['dev'] == peer
        if spec['up'] and not far['up']:
            self.set_link(pns, peer, ['up'], ['down'], new)
            far['up'] = True
        for route in spec['routes'] or []:
            self.plan_route(pns, peer, route, new)

    def plan_route(self, ns, dev, route, new):
        routes = self.view.routes.setdefault(ns, [])
        same_dst = [r for r in routes if r['dst'] == route['dst'] and r['metric'] is None
                    and r['type'] == 'unicast']
        if any(r['via'] == route['via'] and r['dev'] == dev and not r['stale']
               for r in same_dst):
            return
        via = ['via', route['via']] if route['via'] else []
        args = [route_text(route['dst'])] + via + ['dev', dev]
        if same_dst:
            old = same_dst[0]
            undo = ([route_text(old['dst'])] + (['via', old['via']] if old['via'] else [])
                    + ['dev', old['dev']])
            self.configure(ns, ['route', 'replace'] + args, undo=['route', 'replace'] + undo)
            routes.remove(old)
        else:
            self.configure(ns, ['route', 'add'] + args,
                           undo=None if new else ['route', 'del'] + args)
        routes.append({'dst': route['dst'], 'via': route['via'], 'dev': dev, 'metric': None,
                       'type': 'unicast', 'kernel': False, 'stale': False})


def key_of(spec):
    return '%s/%s' % (spec['netns'], spec['name']) if spec['netns'] else spec['name']


def validate_cni_parity(specs):
    """Checks txqueuelen, accept_ra, peer_accept_dad and broadcast (the CNI bridge plugin's
    settings)."""
    for spec in specs:
        if spec['txqueuelen'] is not None and not 0 <= spec['txqueuelen'] <= 2 ** 31 - 1:
            raise IprouteError('txqueuelen %r of veth %s is negative or too large'
                               % (spec['txqueuelen'], spec['name']))
        for k in ('accept_ra', 'peer_accept_dad'):
            if spec[k] is not None and spec[k] not in (0, 1, 2):
                raise IprouteError('%s %r of veth %s is not 0, 1 or 2' % (k, spec[k], spec['name']))
        if spec['broadcast'] and spec['addresses'] is None and spec['state'] == 'present':
            raise IprouteError('broadcast of veth %s needs addresses' % spec['name'])


def plan_cni_parity(planner, sysctls, spec, before, after):
    """Plans txqueuelen, broadcast and the peer's sysctls of one present pair, after
    Planner.present; adds what it manages to the pair's ``before`` (an existing pair's) and
    ``after`` states."""
    ns, name, pns, peer = spec['netns'], spec['name'], spec['peer_netns'], spec['peer']
    host, far = planner.view.links[(ns, name)], planner.view.links[(pns, peer)]
    new = bool(host.get('new'))
    if spec['txqueuelen'] is not None:
        for end_ns, end_name, end in ((ns, name, host), (pns, peer, far)):
            old = end.get('txqlen', 1000)
            if not new and end is host:
                before['txqueuelen'] = old
            if old != spec['txqueuelen']:
                planner.set_link(end_ns, end_name, ['txqueuelen', str(spec['txqueuelen'])],
                                 ['txqueuelen', str(old)], new)
                end['txqlen'] = spec['txqueuelen']
        after['txqueuelen'] = spec['txqueuelen']
    if spec['broadcast']:
        ipr = planner.ipr
        saved, ipr.changes = ipr.changes, planner.config.setdefault(pns, [])
        try:
            readded = plan_broadcasts(ipr, peer, None if new else far, spec['addresses'], pns)
        finally:
            ipr.changes = saved
        if readded:  # deleting the address flushed the routes through it: put them back
            for r in planner.view.routes.get(pns, []):
                r['stale'] = r['stale'] or r['dev'] == peer
            for route in spec['routes'] or []:
                planner.plan_route(pns, peer, route, new)
    for end_ns, wanted in (
            (ns, [('accept_ra', conf_sysctl('ipv6', name, 'accept_ra'), spec['accept_ra'])]),
            (pns, [('arp_notify', conf_sysctl('ipv4', peer, 'arp_notify'),
                    spec['peer_arp_notify']),
                   ('accept_dad', conf_sysctl('ipv6', peer, 'accept_dad'),
                    spec['peer_accept_dad'])])):
        wanted = [(k, p, int(v)) for k, p, v in wanted if v is not None]
        current = sysctls.read(end_ns, [w[1] for w in wanted]) if wanted and not new else {}
        for key, path, value in wanted:
            if current.get(path) is not None:
                before[key] = int(current[path])
            if current.get(path) != str(value):
                sysctls.plan(end_ns, path, value, current.get(path))
            after[key] = value


def run(ipr, specs, sysctls=None):
    specs = validate(specs)
    validate_cni_parity(specs)
    named = set()
    for spec in specs:
        named.update(ns for ns in (spec['netns'], spec['peer_netns']) if ns)
        if spec['state'] == 'absent' and spec['peer'] is None:
            spec['peer_netns'] = None
    missing = netns_missing(named) if named else {}
    for spec in specs:
        for k in ('netns', 'peer_netns'):
            if spec[k] in missing and spec['state'] == 'present':
                raise IprouteError(netns_problem(spec[k], missing[spec[k]],
                                                 'of veth %s' % spec['name'], option=k))
        # state=absent: a pair whose netns is gone went with it; one whose peer_netns is
        # gone may live on, paired with an end no name leads to (deleted below)
        spec['peer_lost'] = spec['peer_netns'] in missing
    namespaces = []
    for spec in specs:
        for ns in (spec['netns'], spec['peer_netns']):
            if ns in missing:
                continue
            if ns not in namespaces and (ns is not None or spec['netns'] is None):
                namespaces.append(ns)
    v6 = set(s['peer_netns'] for s in specs
             if any(':' in r['dst'] for r in s['routes'] or []))
    view = View()
    view.read(ipr, namespaces, v6)

    before = dict((key_of(s), pair_state(view, s)) for s in specs)
    planner = Planner(ipr, view)
    parity = {}
    for spec in specs:
        if spec['state'] == 'present':
            planner.present(spec)
            if sysctls is not None:
                parity[key_of(spec)] = {}
                plan_cni_parity(planner, sysctls, spec, before[key_of(spec)]
                                if before[key_of(spec)]['state'] == 'present' else {},
                                parity[key_of(spec)])
    for spec in specs:
        if spec['state'] == 'absent':
            planner.absent(spec)
    ipr.changes = planner.ordered()
    after = dict((key_of(s), pair_state(view, s)) for s in specs)
    for key, managed in parity.items():
        after[key].update(managed)
    return before, after


def main():
    route = dict(dst=dict(type='str', required=True), via=dict(type='str'))
    element = dict(
        name=dict(type='str', required=True),
        peer=dict(type='str'),
        netns=dict(type='str'),
        peer_netns=dict(type='str'),
        master=dict(type='str'),
        hairpin=dict(type='bool'),
        mtu=dict(type='int'),
        addresses=dict(type='list', elements='str'),
        routes=dict(type='list', elements='dict', options=route),
        up=dict(type='bool'),
        state=dict(type='str', choices=['present', 'absent']),
        txqueuelen=dict(type='int'),
        accept_ra=dict(type='int'),
        peer_arp_notify=dict(type='bool'),
        peer_accept_dad=dict(type='int'),
        broadcast=dict(type='bool'),
    )
    module = PodnetModule(
        argument_spec=dict(
            name=dict(type='str'),
            peer=dict(type='str'),
            netns=dict(type='str'),
            peer_netns=dict(type='str'),
            master=dict(type='str'),
            hairpin=dict(type='bool'),
            mtu=dict(type='int'),
            addresses=dict(type='list', elements='str'),
            routes=dict(type='list', elements='dict', options=route),
            up=dict(type='bool', default=True),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            txqueuelen=dict(type='int'),
            accept_ra=dict(type='int'),
            peer_arp_notify=dict(type='bool'),
            peer_accept_dad=dict(type='int'),
            broadcast=dict(type='bool'),
            pairs=dict(type='list', elements='dict', options=element),
        ),
        mutually_exclusive=[('name', 'pairs'), ('peer', 'pairs'), ('peer_netns', 'pairs'),
                            ('addresses', 'pairs'), ('routes', 'pairs')],
        required_one_of=[('name', 'pairs')],
        supports_check_mode=True,
    )
    plan_apply_exit(module, lambda ipr, sysctls: run(ipr, normalize(module.params), sysctls))


if __name__ == '__main__':
    main()

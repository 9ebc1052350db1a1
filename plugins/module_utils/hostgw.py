# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""Route diffing for k8slab.podnet.hostgw_route: flannel's host-gw routes, as pure logic.

Everything here works on data (``ip -j route`` entries and address lists), never on the
system, so it is unit-tested without root. The module reads the state, calls ``plan`` and
applies the ``ip`` argument lists it returns.

Ownership: a route is *owned* (may be replaced or purged) when it is in table main, its
destination lies inside the cluster CIDR, it leaves through ``dev``, it is a plain unicast
route and it is not a kernel connected route (those belong to addresses). Nothing else on the
node is ever changed, except a route to a *peer subnet* with the default metric on another
device: the kernel keys routes by (table, destination, metric), so the peer's route replaces
it, exactly as flannel's host-gw backend does.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress

# The VirtualBox NAT pitfall, quoted by both gateway checks that exist because of it.
PITFALL = ('This is the VirtualBox NAT pitfall: every VM\'s NAT eth0 has the same address '
           '10.0.2.15, so nodes that advertise their eth0 address all look alike and routes via '
           'them silently black-hole. Fix: make every node advertise its own host-only address '
           '(eth1, e.g. 192.168.56.11; flannel --iface=eth1) and use that as the gateway.')


class HostgwError(Exception):
    """Bad input; the message is ready for fail_json and names the offending values."""

    def __init__(self, errors):
        self.errors = list(errors)
        super(HostgwError, self).__init__('; '.join(self.errors))


def _network(value):
    """An ``ip -j route`` destination as a network ('default' is 0.0.0.0/0)."""
    if value == 'default':
        return ipaddress.ip_network(u'0.0.0.0/0')
    return ipaddress.ip_network(u'%s' % value, strict=False)


def _inside(net, outer):
    return net.version == outer.version and net.subnet_of(outer)


def normalize(entry):
    """One ``ip -j route`` entry with iproute2's omitted defaults filled in (a route without
    ``protocol`` is proto boot, without ``scope`` is scope global, without ``metric`` is 0)."""
    return {
        'dst': str(_network(entry['dst'])),
        'gateway': entry.get('gateway'),
        'dev': entry.get('dev'),
        'type': entry.get('type', 'unicast'),
        'protocol': entry.get('protocol', 'boot'),
        'scope': entry.get('scope', 'global'),
        'metric': int(entry.get('metric', 0)),
        'onlink': 'onlink' in entry.get('flags', []),
        'multipath': 'nexthops' in entry,
    }


def route_text(r):
    """A route the way ``ip route`` prints it (defaults left out), for diff and messages."""
    words = [] if r['type'] == 'unicast' else [r['type']]
    words.append(r['dst'])
    if r['gateway']:
        words += ['via', r['gateway']]
    if r['dev']:
        words += ['dev', r['dev']]
    if r['protocol'] != 'boot':
        words += ['proto', r['protocol']]
    if r['scope'] != 'global':
        words += ['scope', r['scope']]
    if r['metric']:
        words += ['metric', str(r['metric'])]
    if r['onlink']:
        words.append('onlink')
    if r['multipath']:
        words.append('(multipath)')
    return ' '.join(words)


def route_args(verb, r):
    """``ip`` arguments that add/replace/delete exactly route ``r`` in table main."""
    args = ['route', verb]
    if r['type'] != 'unicast':
        args.append(r['type'])
    args.append(r['dst'])
    if r['gateway']:
        args += ['via', r['gateway']]
    if r['dev']:
        args += ['dev', r['dev']]
    if verb != 'del':
        if r['protocol'] != 'boot':
            args += ['proto', r['protocol']]
        if r['scope'] != 'global':
            args += ['scope', r['scope']]
        if r['onlink']:
            args.append('onlink')
    if r['metric']:
        args += ['metric', str(r['metric'])]
    return args


def wanted_route(subnet, gateway, dev):
    """The route flannel's host-gw adds ({Dst, Gw, LinkIndex} and nothing else): the same as
    ``ip route add SUBNET via GATEWAY dev DEV``: table main, proto boot, scope global, metric 0."""
    return {'dst': subnet, 'gateway': gateway, 'dev': dev, 'type': 'unicast',
            'protocol': 'boot', 'scope': 'global', 'metric': 0, 'onlink': False,
            'multipath': False}


def is_connected(r):
    """The kernel's route for an address's prefix."""
    return r['protocol'] == 'kernel' and r['scope'] == 'link'


def is_owned(r, dev, cluster):
    return (r['dev'] == dev and r['type'] == 'unicast' and not r['multipath']
            and not is_connected(r) and _inside(_network(r['dst']), cluster))


def _brief(r):
    return {'dst': r['dst'], 'gateway': r['gateway'], 'dev': r['dev']}


def validate_peers(peers, state, cluster):
    """Syntax and set checks that need no system state. Returns [(network, gateway_or_None)]."""
    errors, out, seen = [], [], []
    for i, peer in enumerate(peers or []):
        subnet, gateway = peer.get('subnet'), peer.get('gateway')
        try:
            net = ipaddress.ip_network(u'%s' % subnet, strict=True)
        except ValueError as e:
            errors.append('peers[%d]: subnet %r is not a valid network (host bits must be zero): '
                          '%s' % (i, subnet, e))
            continue
        if net.version != 4:
            errors.append('peers[%d]: subnet %s is not IPv4; only IPv4 is supported' % (i, net))
            continue
        if not net.subnet_of(cluster):
            errors.append('peers[%d]: subnet %s is outside cluster_cidr %s' % (i, net, cluster))
            continue
        for other, j in seen:
            if net.overlaps(other):
                word = 'the same subnet' if net == other else 'overlapping subnets'
                errors.append('peers[%d] and peers[%d] have %s: %s and %s (each node has its own '
                              'pod subnet)' % (j, i, word, other, net))
        seen.append((net, i))
        gw = None
        if gateway in (None, ''):
            if state == 'present':
                errors.append('peers[%d]: subnet %s has no gateway' % (i, net))
                continue
        else:
            try:
                gw = ipaddress.ip_address(u'%s' % gateway)
            except ValueError as e:
                errors.append('peers[%d]: gateway %r of subnet %s is not a valid IP address: %s'
                              % (i, gateway, net, e))
                continue
            if gw.version != 4:
                errors.append('peers[%d]: gateway %s of subnet %s is not IPv4' % (i, gw, net))
                continue
        out.append((net, gw))
    if errors:
        raise HostgwError(errors)
    return out


def own_subnets(routes, cluster, node_subnet=None):
    """The node's own pod subnet(s): node_subnet if given, plus every connected route inside
    the cluster CIDR (cni0's 10.244.N.0/24). Returns [(network, where)]."""
    found = []
    if node_subnet is not None:
        found.append((node_subnet, 'node_subnet'))
    for r in routes:
        if is_connected(r) and _inside(_network(r['dst']), cluster):
            found.append((_network(r['dst']), 'connected route on %s' % r['dev']))
    return found


def plan(raw_routes, local_addresses, dev, peers, cluster_cidr, purge=True, state='present',
         node='this node', node_subnet=None):
    """Work out the changes that make the host-gw routes on ``dev`` what ``peers`` asks for.

    raw_routes: ``ip -j -4 route show table main`` entries (all devices).
    local_addresses: [(address, device)] of every address of the node.
    Returns a dict: changes (list of (ip args, undo args or None)), added, replaced, removed,
    before, after (route texts, see cidr_view). Raises HostgwError before anything is planned
    on bad input.
    """
    try:
        cluster = ipaddress.ip_network(u'%s' % cluster_cidr, strict=True)
    except ValueError as e:
        raise HostgwError(['cluster_cidr %r is not a valid network (host bits must be zero): %s'
                           % (cluster_cidr, e)])
    if cluster.version != 4:
        raise HostgwError(['cluster_cidr %s is not IPv4; only IPv4 is supported' % cluster])
    if node_subnet is not None:
        try:
            node_subnet = ipaddress.ip_interface(u'%s' % node_subnet).network
        except ValueError as e:
            raise HostgwError(['node_subnet %r is not a valid network: %s' % (node_subnet, e)])
    desired = validate_peers(peers, state, cluster)
    routes = [normalize(e) for e in raw_routes]

    errors = []
    if state == 'present':
        for net, _gw in desired:
            for own, where in own_subnets(routes, cluster, node_subnet):
                if net.overlaps(own):
                    errors.append('peer subnet %s overlaps the own pod subnet %s of node %s (%s): '
                                  'a node reaches its own pods through its bridge, not through a '
                                  'peer' % (net, own, node, where))
        errors += _gateway_errors(routes, local_addresses, dev, desired, cluster, node)
    if errors:
        raise HostgwError(errors)

    owned = [r for r in routes if is_owned(r, dev, cluster)]
    changes, added, replaced, removed, keep = [], [], [], [], []
    if state == 'present':
        for net, gw in desired:
            want = wanted_route(str(net), str(gw), dev)
            if want in routes:
                keep.append(want)
                continue
            # The route the kernel would replace: same destination, same (default) metric.
            old = [r for r in routes if r['dst'] == want['dst'] and r['metric'] == 0]
            if old:
                changes.append((route_args('replace', want),
                                None if old[0]['multipath'] else route_args('replace', old[0])))
                replaced.append(dict(_brief(want), before=route_text(old[0])))
                keep.append(old[0])
            else:
                changes.append((route_args('add', want), route_args('del', want)))
                added.append(_brief(want))
            keep.append(want)
        stale = [r for r in owned if r not in keep] if purge else []
    else:
        nets = set(str(n) for n, _gw in desired)
        stale = [r for r in owned if not desired or r['dst'] in nets]
    for r in stale:
        changes.append((route_args('del', r), route_args('add', r)))
        removed.append(dict(_brief(r), route=route_text(r)))

    after = _apply(routes, desired, dev, stale, state)
    return {
        'changes': changes,
        'added': added,
        'replaced': replaced,
        'removed': removed,
        'before': cidr_view(routes, cluster),
        'after': cidr_view(after, cluster),
    }


def cidr_view(routes, cluster):
    """Text of the routes inside the cluster CIDR, any device, sorted (for diff/RETURN)."""
    if not isinstance(cluster, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        cluster = ipaddress.ip_network(u'%s' % cluster)
    # accepts raw ``ip -j`` entries and normalized ones (which have the 'multipath' key)
    routes = [r if 'multipath' in r else normalize(r) for r in routes]
    return [route_text(r) for r in sorted(routes, key=sort_key)
            if _inside(_network(r['dst']), cluster)]


def _apply(routes, desired, dev, stale, state):
    """The routing table after the planned changes (for check mode and diff)."""
    after = [r for r in routes if r not in stale]
    if state == 'present':
        for net, gw in desired:
            want = wanted_route(str(net), str(gw), dev)
            after = [r for r in after if not (r['dst'] == want['dst'] and r['metric'] == 0)]
            after.append(want)
    return after


def sort_key(r):
    net = _network(r['dst'])
    return (int(net.network_address), net.prefixlen, r['metric'])


def _gateway_errors(routes, local_addresses, dev, desired, cluster, node):
    errors = []
    by_gateway = {}
    for net, gw in desired:
        by_gateway.setdefault(gw, []).append(net)
    for gw, nets in by_gateway.items():
        if len(nets) > 1:
            errors.append('peer subnets %s share gateway %s: each node must advertise its own '
                          'address. %s' % (' and '.join(str(n) for n in nets), gw, PITFALL))
    local = dict((ipaddress.ip_address(u'%s' % a), d) for a, d in local_addresses)
    # On-link networks of dev: its scope link routes that are not ours (ours may be purged).
    onlink = [_network(r['dst']) for r in routes
              if r['dev'] == dev and r['scope'] == 'link' and r['type'] == 'unicast'
              and not is_owned(r, dev, cluster)]
    for net, gw in desired:
        if gw in local:
            errors.append('gateway %s of peer subnet %s is a local address of node %s (on %s): '
                          'routing peer pods via the node itself black-holes them. %s'
                          % (gw, net, node, local[gw], PITFALL))
        elif any(gw in n and n.prefixlen < 31 and gw in (n.network_address, n.broadcast_address)
                 for n in onlink):
            errors.append('gateway %s of peer subnet %s is the network or broadcast address of '
                          'the network of %s on node %s, not a peer\'s address'
                          % (gw, net, dev, node))
        elif not any(gw in n for n in onlink):
            errors.append('gateway %s of peer subnet %s is not on-link on %s of node %s: no '
                          'connected route on %s covers it (on-link networks of %s: %s). host-gw '
                          'needs all nodes on one L2 segment: the gateway must be the peer\'s '
                          'address on the network of %s' % (gw, net, dev, node, dev, dev,
                                                            ', '.join(str(n) for n in onlink)
                                                            or 'none', dev))
    return errors

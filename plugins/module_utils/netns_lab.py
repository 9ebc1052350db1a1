# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""The single-host lab's layout, described once: its namespace names, its tree under
/run/k8slab/<lab>/, the rules for its names, when a node's UTS namespace is entered, and its
wiring (host-only switch, NAT routers, outside) as plain data.

Used by the module that makes the nodes (netns_lab_nodes), the connection plugin that enters
them (netns), the role that wires the lab (through the filter k8slab.podnet.netns_lab_layout)
and scripts/k8slab. Standard library only, so the command-line tool imports it without Ansible.

Namespaces, all in the host's /run/netns and prefixed with the lab's name:

  <lab>-<node>        a node: eth0 (VirtualBox NAT), eth1 (host-only); its pods are its own
  <lab>-<node>-nat    the node's NAT router, 10.0.2.2 / 10.0.2.3 (VirtualBox's NAT engine)
  <lab>-hostonly      the host-only switch (bridge br0)
  <lab>-host          the host's side of the switch (vboxnet0, 192.168.56.1)
  <lab>-outside       the "internet": bridge br0 with an HTTP server

The lab's tree:

  /run/k8slab/<lab>/lab.json              what was built (nodes, namespaces), for teardown
  /run/k8slab/<lab>/mnt/<node>            the node's mount namespace, pinned by a bind mount
  /run/k8slab/<lab>/uts/<node>            the node's UTS namespace (its host name)
  /run/k8slab/<lab>/nodes/<node>/<path>   the node's private directories, as the host sees them
  /run/k8slab/<lab>/outside/              the outside's HTTP server: www/, http.pid, http.log
  /run/k8slab/<lab>/dns/<node>/           the node's NAT router's dnsmasq: dnsmasq.conf, .pid, .log
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib
import fcntl
import ipaddress
import os
import re

STATE_DIR = '/run/k8slab'
NETNS_DIR = '/run/netns'
# Directories the labs had to create on the host; removed with the last lab.
HOST_DIRS_FILE = os.path.join(STATE_DIR, 'host-dirs.json')

# Name rules. A node names its ports on the host-only and outside switches, and an interface
# name has at most 15 bytes (IFNAMSIZ - 1). Longer lab names make `ip netns list` unreadable.
LAB_NAME_MAX = 16
NODE_NAME_MAX = 15
LAB_NAME_RE = re.compile(r'[a-z0-9]([a-z0-9-]*[a-z0-9])?\Z')
NODE_NAME_RE = re.compile(r'[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?\Z')
# The host's port on the host-only switch; a node of that name would collide with it.
HOST_PORT = 'vboxnet0'
RESERVED_NODE_NAMES = (HOST_PORT,)

# The wiring's inputs, as the inventory names them (inventories/netns/group_vars), with the
# values VirtualBox uses; outside_cidr, outside_ip and router_offset are the role's
# netns_lab_outside_cidr, netns_lab_outside_ip and netns_lab_router_offset.
WIRING_DEFAULTS = dict(
    hostonly_cidr='192.168.56.0/24',
    hostonly_host_ip='192.168.56.1',
    public_iface='eth1',
    nat_iface='eth0',
    nat_ip='10.0.2.15/24',
    nat_gateway='10.0.2.2',
    nat_dns='10.0.2.3',
    outside_cidr='203.0.113.0/24',
    outside_ip='203.0.113.1',
    router_offset=10,
)
SWITCH = 'br0'          # the bridge of <lab>-hostonly and of <lab>-outside
NAT_LAN = 'lan0'        # a NAT router's bridge; its port to the node's eth0 is lan0-node
# A node's eth1, as VirtualBox's host-only adapter gives it: kept, so a changed MTU (the
# eth1-mtu-mismatch drill, docs/drills.md) is put back by the next build.
HOSTONLY_MTU = 1500
NAT_PORT = 'lan0-node'
NAT_WAN = 'wan0'        # a NAT router's uplink, a port of the outside's br0
OUTSIDE_HTTP_PORT = 80


class LayoutError(ValueError):
    """A name or an address the layout cannot use; the message names it."""


# ---- names ---------------------------------------------------------------------------------
def lab_name_error(lab):
    """Why lab (str) cannot name a lab, or None when it can."""
    if not isinstance(lab, str) or not LAB_NAME_RE.match(lab) or len(lab) > LAB_NAME_MAX:
        return ('lab name %r is invalid: at most %d lower-case letters, digits and "-", starting '
                'and ending with a letter or digit (it prefixes every namespace of the lab)'
                % (lab, LAB_NAME_MAX))
    return None


def node_name_error(node):
    """Why node (str) cannot name a node of the lab, or None when it can."""
    if (not isinstance(node, str) or not NODE_NAME_RE.match(node) or len(node) > NODE_NAME_MAX
            or node in RESERVED_NODE_NAMES):
        return ('node name %r is invalid: 1 to %d letters, digits, "_", "." or "-", starting and '
                'ending with a letter or digit, not %s (it names the node\'s switch ports)'
                % (node, NODE_NAME_MAX, ' or '.join(RESERVED_NODE_NAMES)))
    return None


def check_names(lab, nodes):
    """Raise LayoutError for the first invalid name of lab (str) and nodes (list of str)."""
    for error in [lab_name_error(lab)] + [node_name_error(n) for n in nodes]:
        if error:
            raise LayoutError(error)


def node_netns(lab, node):
    return '%s-%s' % (lab, node)


def nat_netns(lab, node):
    return '%s-%s-nat' % (lab, node)


def hostonly_netns(lab):
    return '%s-hostonly' % lab


def host_netns(lab):
    return '%s-host' % lab


def outside_netns(lab):
    return '%s-outside' % lab


def lab_namespaces(lab, nodes):
    """Every network namespace of the lab, in the order they are made: host, switch, outside,
    the nodes, their NAT routers."""
    return ([host_netns(lab), hostonly_netns(lab), outside_netns(lab)]
            + [node_netns(lab, n) for n in nodes] + [nat_netns(lab, n) for n in nodes])


# ---- the tree under /run/k8slab/<lab>/ -------------------------------------------------------
def lab_dir(lab):
    return os.path.join(STATE_DIR, lab)


@contextlib.contextmanager
def host_lock():
    """An exclusive flock(2) on the directory above STATE_DIR (/run), held while a lab's
    host-side state is made or removed (labs share /run/k8slab and its host-dirs.json: the last
    lab's teardown removes them); netns_lab_nodes holds it for its run, the netns connection
    while it makes a lab's directory. The lock is a file descriptor, not a file, so the host
    keeps nothing of it. Blocks until other labs' module runs let go. Raises OSError."""
    fd = os.open(os.path.dirname(STATE_DIR), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def record_file(lab):
    """The lab's record (JSON: lab, nodes, namespaces); its presence means the lab is up."""
    return os.path.join(STATE_DIR, lab, 'lab.json')


def mount_ns_dir(lab):
    return os.path.join(STATE_DIR, lab, 'mnt')


def mount_ns_file(lab, node):
    return os.path.join(STATE_DIR, lab, 'mnt', node)


def uts_ns_dir(lab):
    return os.path.join(STATE_DIR, lab, 'uts')


def uts_ns_file(lab, node):
    return os.path.join(STATE_DIR, lab, 'uts', node)


def node_dir(lab, node, path=''):
    """Where the host keeps a node-private path (absolute, as the node sees it): the source of
    the node's bind mount. Without path, the node's directory."""
    return os.path.join(STATE_DIR, lab, 'nodes', node) + path


def outside_dir(lab):
    return os.path.join(STATE_DIR, lab, 'outside')


def dns_dir(lab, node):
    """The directory of the dnsmasq of node's NAT router: dnsmasq.conf, .pid, .log."""
    return os.path.join(STATE_DIR, lab, 'dns', node)


def running_labs():
    """Names of the labs that are up on this host (those with a record), sorted."""
    try:
        return sorted(e for e in os.listdir(STATE_DIR) if os.path.isfile(record_file(e)))
    except OSError:
        return []


# ---- entering a node ----------------------------------------------------------------------
def pinned(path):
    """The inode of the namespace pinned (bind-mounted) at path, or None for a plain file
    or nothing. Namespace files all live on the nsfs device."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino if st.st_dev == os.stat('/proc/self/ns/net').st_dev else None


def enters_uts(uts_ns):
    """Whether a node's UTS namespace file is entered: only when a namespace is pinned there.
    A plain file (the placeholder a killed build leaves before `unshare --uts` binds it) is
    not, since nsenter would fail on it."""
    return pinned(uts_ns) is not None


def nsenter_options(mount_ns, net_ns, uts_ns=None):
    """nsenter(1) options that put a command into a node: its mount namespace, its UTS
    namespace when pinned (enters_uts), its network namespace; all three are file paths.
    The mount namespace comes first, so argv[:2] of nsenter + these enters that one alone."""
    options = ['--mount=%s' % mount_ns]
    if uts_ns and enters_uts(uts_ns):
        options.append('--uts=%s' % uts_ns)
    return options + ['--net=%s' % net_ns]


def node_nsenter_options(lab, node):
    """nsenter_options for a node at its standard paths."""
    return nsenter_options(mount_ns_file(lab, node), os.path.join(NETNS_DIR, node_netns(lab, node)),
                           uts_ns_file(lab, node))


# ---- wiring -------------------------------------------------------------------------------
def _parse(parse, value, what, kind):
    try:
        return parse(value)
    except ValueError:
        pass
    raise LayoutError('%s %r is not %s' % (what, value, kind))


def _interface(address, prefix, what):
    """An IPv4 address (str) with the prefix length of its network, as ip_interface."""
    return _parse(ipaddress.IPv4Interface, '%s/%s' % (address, prefix), what,
                  'an IPv4 address')


def _network(cidr, what):
    return _parse(lambda v: ipaddress.IPv4Network(v, strict=False), cidr, what,
                  'an IPv4 network (address/prefix length)')


def layout(lab, nodes, node_ips=None, **options):
    """The whole lab as plain data (JSON-able), from its name, its nodes and, for the wiring,
    each node's host-only (eth1) address.

    lab: str; nodes: list of node names; node_ips: dict node -> IPv4 address without prefix
    (lab_nodes[node].eth1_ip), or None for the names and paths only (enough for teardown).
    options: WIRING_DEFAULTS' keys (unknown ones raise LayoutError); None means the default.

    Returns a dict: lab, dir, record, nodes (list of dicts: name, netns, nat_netns, mount_ns,
    uts_ns, dir), namespaces (lab_namespaces), endpoints (namespaces that must not forward)
    and, with node_ips, the wiring in the shapes of the bridge, veth, netns_lab_nat,
    netns_lab_http and netns_lab_dns modules' options: bridges, pairs, routers, outside
    (netns, address, port, root, pidfile), dns (address, servers: netns, conf, pidfile).
    Raises LayoutError for an invalid name, a lab to wire without nodes, a missing node
    address or an address that does not parse. The wiring follows VirtualBox: a host-only
    network, and per node a NAT network of its own where the node is 10.0.2.15 behind
    10.0.2.2.
    """
    check_names(lab, nodes)
    if node_ips is not None and not nodes:
        raise LayoutError('a lab to build needs nodes, and none were given')
    unknown = sorted(set(options) - set(WIRING_DEFAULTS))
    if unknown:
        raise LayoutError('unknown layout options: %s' % ', '.join(unknown))
    data = dict(
        lab=lab, dir=lab_dir(lab), record=record_file(lab),
        nodes=[dict(name=n, netns=node_netns(lab, n), nat_netns=nat_netns(lab, n),
                    mount_ns=mount_ns_file(lab, n), uts_ns=uts_ns_file(lab, n),
                    dir=node_dir(lab, n)) for n in nodes],
        namespaces=lab_namespaces(lab, nodes),
        endpoints=[host_netns(lab), hostonly_netns(lab), outside_netns(lab)],
    )
    if node_ips is not None:
        opts = dict(WIRING_DEFAULTS)
        opts.update((k, v) for k, v in options.items() if v is not None)
        data.update(wiring(lab, nodes, node_ips, opts))
    return data


def wiring(lab, nodes, node_ips, opts):
    """bridges, pairs, routers, outside and dns of layout() (which documents them); opts has every
    WIRING_DEFAULTS key. NAT pairs come first, so a node's eth0 gets a lower interface index
    than eth1, as on a VM."""
    missing = [n for n in nodes if not node_ips.get(n)]
    if missing:
        raise LayoutError('nodes %s have no host-only address (eth1_ip in lab_nodes)'
                          % ', '.join(missing))
    hostonly = _network(opts['hostonly_cidr'], 'hostonly_cidr')
    nat = _parse(ipaddress.IPv4Interface, opts['nat_ip'], 'nat_ip',
                 'an IPv4 address with its prefix length')
    outside = _network(opts['outside_cidr'], 'netns_lab_outside_cidr')
    outside_ip = _interface(opts['outside_ip'], outside.prefixlen, 'netns_lab_outside_ip')
    gateway = _interface(opts['nat_gateway'], nat.network.prefixlen, 'nat_gateway')
    dns = _interface(opts['nat_dns'], nat.network.prefixlen, 'nat_dns')
    host = _interface(opts['hostonly_host_ip'], hostonly.prefixlen, 'hostonly_host_ip')
    switch_ns, outside_ns = hostonly_netns(lab), outside_netns(lab)

    bridges = [dict(name=SWITCH, netns=switch_ns, addresses=[]),
               dict(name=SWITCH, netns=outside_ns, addresses=[str(outside_ip)])]
    bridges += [dict(name=NAT_LAN, netns=nat_netns(lab, n), addresses=[str(gateway), str(dns)])
                for n in nodes]
    pairs = [dict(name=NAT_PORT, netns=nat_netns(lab, n), master=NAT_LAN,
                  peer=opts['nat_iface'], peer_netns=node_netns(lab, n), addresses=[str(nat)],
                  routes=[dict(dst='default', via=str(gateway.ip))]) for n in nodes]
    pairs.append(dict(name=HOST_PORT, netns=switch_ns, master=SWITCH, peer=HOST_PORT,
                      peer_netns=host_netns(lab), addresses=[str(host)]))
    pairs += [dict(name=n, netns=switch_ns, master=SWITCH, peer=opts['public_iface'],
                   peer_netns=node_netns(lab, n), mtu=HOSTONLY_MTU,
                   addresses=[str(_interface(node_ips[n], hostonly.prefixlen,
                                             'eth1_ip of %s' % n))]) for n in nodes]
    routers = []
    for i, n in enumerate(nodes):
        wan = outside.network_address + int(opts['router_offset']) + i
        if wan not in outside or wan in (outside.broadcast_address, outside_ip.ip):
            raise LayoutError('netns_lab_outside_cidr %s has no address for the NAT router of '
                              'node %s (netns_lab_router_offset %s + %d)'
                              % (outside, n, opts['router_offset'], i))
        pairs.append(dict(name=n, netns=outside_ns, master=SWITCH, peer=NAT_WAN,
                          peer_netns=nat_netns(lab, n),
                          addresses=['%s/%d' % (wan, outside.prefixlen)],
                          routes=[dict(dst='default', via=str(outside_ip.ip))]))
        routers.append(dict(netns=nat_netns(lab, n), out_iface=NAT_WAN, source=str(nat)))
    return dict(
        bridges=bridges, pairs=pairs, routers=routers,
        outside=dict(netns=outside_ns, address=str(outside_ip.ip), port=OUTSIDE_HTTP_PORT,
                     root=os.path.join(outside_dir(lab), 'www'),
                     pidfile=os.path.join(outside_dir(lab), 'http.pid')),
        dns=dict(address=str(dns.ip),
                 servers=[dict(netns=nat_netns(lab, n),
                               conf=os.path.join(dns_dir(lab, n), 'dnsmasq.conf'),
                               pidfile=os.path.join(dns_dir(lab, n), 'dnsmasq.pid'))
                          for n in nodes]),
    )

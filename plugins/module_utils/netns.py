# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""A thread of a module in a named network namespace for a moment, by setns(2).

What ``ip netns exec NAME`` gives a new process (the namespace's sockets, routes and
/proc/sys/net), without the process: network namespaces are per thread, so the calling
thread enters /run/netns/NAME and comes back to its own afterwards. /proc/sys/net answers for
the namespace of the thread that opens a file there (sysctl(2) semantics); /sys is left as it
is (ip netns exec remounts it, these users read none of it). Standard library only: os.setns
where Python has it (3.12+), else libc's setns through ctypes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import ipaddress
import os
import socket
import struct

NETNS_DIR = '/run/netns'
CLONE_NEWNET = 0x40000000

_libc = None


class NetnsError(Exception):
    """A namespace that cannot be opened or entered; the message names it."""


def libc_call(name, *args):
    """Calls libc's function name (a system call wrapper taking ints, bytes or None) through
    ctypes; returns its int result. Raises OSError with its errno when it returns -1."""
    global _libc  # pylint: disable=global-statement
    import ctypes  # pylint: disable=import-outside-toplevel
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    ret = getattr(_libc, name)(*args)
    if ret == -1:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ret


def setns(fd, nstype=CLONE_NEWNET):
    """The calling thread joins the namespace open at fd (int) of type nstype (CLONE_NEW*, 0
    for any). Raises OSError with the errno of setns(2)."""
    if hasattr(os, 'setns'):
        os.setns(fd, nstype)  # pylint: disable=no-member
    else:
        libc_call('setns', fd, nstype)


def own_netns():
    """The calling thread's way back home: an O_CLOEXEC descriptor (int) of its own network
    namespace, /proc/thread-self/ns/net, to pass to setns after it has moved (InNetns, or
    nschild.netns_add, which unshares); the caller closes it. Raises OSError."""
    return os.open('/proc/thread-self/ns/net', os.O_RDONLY | os.O_CLOEXEC)


class InNetns(object):
    """Context manager: the calling thread enters /run/netns/NAME (or, name an absolute path,
    the namespace file there: /proc/PID/ns/net) and comes back after, also when the body
    raises; a process it starts meanwhile starts in that namespace. name None or '' stays
    where it is. Raises NetnsError naming the namespace when it cannot be opened or entered
    (nothing changed then)."""

    def __init__(self, name):
        self.name = name
        self.home = None

    def __enter__(self):
        if not self.name:
            return self
        path = os.path.join(NETNS_DIR, self.name)  # an absolute name is kept as it is
        try:
            target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise NetnsError('network namespace %s: %s' % (self.name, e.strerror))
        self.home = own_netns()
        try:
            setns(target)
        except OSError as e:
            os.close(self.home)
            self.home = None
            raise NetnsError('cannot enter network namespace %s: %s' % (self.name, e.strerror))
        finally:
            os.close(target)
        return self

    def __exit__(self, *exc):
        if self.home is not None:
            try:
                setns(self.home)  # a thread must never stay in a borrowed namespace
            finally:
                os.close(self.home)
                self.home = None


# netdevice(7) requests: an interface's (primary) IPv4 address and its netmask, its flags
SIOCGIFADDR = 0x8915
SIOCGIFNETMASK = 0x891b
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
IFNAMSIZ = 16


def ifreq_ioctl(sock, request, ifname, union=b''):
    """A netdevice(7) request (SIOC*) about interface ifname (str, 1 to 15 bytes) on sock (a
    socket: it answers for the network namespace it was made in). struct ifreq is the name in
    IFNAMSIZ bytes with its NUL, then a 24-byte union, here union (bytes, zero-padded).
    Returns the answer's union (24 bytes). Raises OSError: EINVAL for a name that would be
    cut short to another one or a union over 24 bytes, ENODEV when there is no such
    interface, else the ioctl's errno."""
    raw = ifname.encode('utf-8')
    if not 0 < len(raw) < IFNAMSIZ:
        raise OSError(errno.EINVAL, 'interface name %r is not 1 to 15 bytes' % ifname)
    if len(union) > 24:
        raise OSError(errno.EINVAL, 'an ifreq union holds 24 bytes, not %d' % len(union))
    return fcntl.ioctl(sock.fileno(), request, struct.pack('16s24s', raw, union))[IFNAMSIZ:]


def interface_ipv4(netns, ifname):
    """The IPv4 address of interface ifname (str) in network namespace netns (a /run/netns
    name, a namespace file path, or None for the caller's), as 'A.B.C.D/PREFIXLEN' - its
    primary address, the first that ``ip -4 addr show`` lists - or None when it has none.
    Read in-process by SIOCGIFADDR and SIOCGIFNETMASK (ifreq_ioctl) on a socket made inside
    the namespace. Raises NetnsError for a namespace that cannot be entered, OSError for other
    errors (ENODEV: no such interface)."""
    with InNetns(netns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        try:
            # The union holds a struct sockaddr_in: family, port, then the address.
            address = ifreq_ioctl(sock, SIOCGIFADDR, ifname)[4:8]
            mask = ifreq_ioctl(sock, SIOCGIFNETMASK, ifname)[4:8]
        except OSError as e:
            if e.errno == errno.EADDRNOTAVAIL:
                return None
            raise
    finally:
        sock.close()
    prefixlen = bin(struct.unpack('!I', mask)[0]).count('1')
    return '%s/%d' % (ipaddress.IPv4Address(address), prefixlen)


def set_loopback_up():
    """Sets lo up in the calling thread's network namespace, as a runtime's loopback plugin
    does (SIOCGIFFLAGS, then SIOCSIFFLAGS with IFF_UP; the union's first field is the short
    flags). Raises OSError."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        flags = struct.unpack_from('h', ifreq_ioctl(sock, SIOCGIFFLAGS, 'lo'))[0]
        ifreq_ioctl(sock, SIOCSIFFLAGS, 'lo', struct.pack('h', flags | IFF_UP))
    finally:
        sock.close()


def link_exists(ifname):
    """Whether the calling thread's network namespace has an interface named ifname (str):
    if_nametoindex(3), which asks the kernel on a socket of that namespace."""
    try:
        socket.if_nametoindex(ifname)
    except OSError:
        return False
    return True

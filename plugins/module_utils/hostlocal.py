# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""The CNI host-local IPAM store and allocator, byte-compatible with host-local 1.1.1.

Store layout (``<data_dir>/<network>/``), shared with the real plugin:

- one file per allocated IP, named by the IP, holding ``<container id>\\r\\n<ifname>`` with no
  trailing newline, created with O_CREAT|O_EXCL;
- ``last_reserved_ip.0``: the bare last reserved IP (no newline), the round-robin cursor;
- ``lock``: an empty file; ``flock(LOCK_EX)`` on it guards every read-modify-write.

Everything is planned in memory first, under the lock, against a snapshot of the store: a
request that cannot be met fails before a single byte is written, check mode is the plan
without the writes, and the diff is the plan's changed files. Pure Python, no Ansible.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import ipaddress
import os
import re
from contextlib import contextmanager

from ansible_collections.k8slab.podnet.plugins.module_utils import iproute

LAST_IP_PREFIX = 'last_reserved_ip.'
RANGE_ID = '0'  # one range set per network config, as flannel's cbr0 has
LAST_IP_FILE = LAST_IP_PREFIX + RANGE_ID
LOCK_FILE = 'lock'
LINE_BREAK = '\r\n'

# CNI's ValidateContainerID / ValidateNetworkName: Go's `$` is end of text, hence \Z here.
_CNI_NAME_RE = re.compile(r'[a-zA-Z0-9][a-zA-Z0-9_.\-]*\Z')
# Go's unicode.IsSpace set, which strings.TrimSpace strips when host-local compares contents.
_GO_SPACE = u'\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007' \
            u'\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000'


class HostLocalError(Exception):
    """A failure with a message ready for fail_json."""


# ---- input validation (mirrors what host-local and libcni refuse) -------------------------

def validate_container_id(value):
    if not isinstance(value, str) or not value:
        raise HostLocalError('container_id must be a non-empty string, got %r' % (value,))
    if not _CNI_NAME_RE.match(value):
        raise HostLocalError("container_id %r has invalid characters: it must match "
                             "^[a-zA-Z0-9][a-zA-Z0-9_.\\-]*$" % (value,))
    return value


def validate_network_name(value):
    if not isinstance(value, str) or not value:
        raise HostLocalError('network must be a non-empty string, got %r' % (value,))
    if not _CNI_NAME_RE.match(value):
        raise HostLocalError("network %r has invalid characters: it must match "
                             "^[a-zA-Z0-9][a-zA-Z0-9_.\\-]*$" % (value,))
    return value


def validate_ifname(value):
    """CNI's ValidateInterfaceName (the kernel's rules): iproute's one interface-name check."""
    try:
        return iproute.validate_ifname(value, 'ifname')
    except iproute.IprouteError as e:
        raise HostLocalError(str(e))


def _address(value, what):
    try:
        addr = ipaddress.ip_address(str(value))
    except ValueError:
        raise HostLocalError('%s %r is not a valid IP address' % (what, value))
    return _canonical(addr)


def _canonical(addr):
    """IPv4-mapped IPv6 is IPv4 to host-local (canonicalizeIP)."""
    if addr.version == 6 and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def parse_ip(text):
    """Go's net.ParseIP: strict, no whitespace, no zone; None when it would return nil."""
    if not text or '%' in text or text.strip() != text:
        return None
    try:
        return _canonical(ipaddress.ip_address(text))
    except ValueError:
        return None


class Range(object):
    """One host-local range: subnet, inclusive start and end, gateway (skipped)."""

    def __init__(self, subnet, range_start=None, range_end=None, gateway=None):
        text = str(subnet)
        try:
            if '/' not in text:
                raise ValueError('no prefix length')
            iface = ipaddress.ip_interface(text)
        except ValueError:
            raise HostLocalError('subnet %r is not a valid network address/prefix' % (subnet,))
        net = iface.network
        if iface.ip != net.network_address:
            raise HostLocalError('subnet %r has host bits set: for a prefix length of %d the '
                                 'network address is %s'
                                 % (subnet, net.prefixlen, net.network_address))
        if net.prefixlen > net.max_prefixlen - 2:
            raise HostLocalError('subnet %r is too small to allocate from (at most /%d)'
                                 % (subnet, net.max_prefixlen - 2))
        self.subnet = net
        cls = type(net.network_address)
        first = cls(int(net.network_address) + 1)
        last = net.broadcast_address if net.version == 6 else cls(int(net.broadcast_address) - 1)

        self.gateway = first if gateway is None else self._inside(gateway, 'gateway')
        self.start = first if range_start is None else self._inside(range_start, 'range_start')
        self.end = last if range_end is None else self._inside(range_end, 'range_end')
        if self.end < self.start:
            raise HostLocalError('range_end %s is before range_start %s' % (self.end, self.start))

    def _inside(self, value, what):
        """An address of the subnet that a host may hold: not the network address (IPv6: the
        subnet-router anycast address) nor the IPv4 broadcast address. host-local 1.1.1
        accepts both in a range and hands them out; neighbours cannot reach them."""
        addr = _address(value, what)
        if addr.version != self.subnet.version or addr not in self.subnet:
            raise HostLocalError('%s %s is not in subnet %s' % (what, addr, self.subnet))
        if addr == self.subnet.network_address:
            raise HostLocalError('%s %s is the network address of subnet %s, not a host '
                                 'address' % (what, addr, self.subnet))
        if addr.version == 4 and addr == self.subnet.broadcast_address:
            raise HostLocalError('%s %s is the broadcast address of subnet %s, not a host '
                                 'address' % (what, addr, self.subnet))
        return addr

    def __str__(self):
        return '%s-%s' % (self.start, self.end)

    def contains(self, addr):
        return (addr is not None and addr.version == self.subnet.version
                and self.start <= addr <= self.end)

    def interface(self, addr):
        return '%s/%d' % (addr, self.subnet.prefixlen)

    def check_requested(self, value):
        """The requested address; one outside the range is returned too (host-local fails
        on it only after moving its cursor, see StoreView.refuse_outside)."""
        addr = _address(value, 'ip')
        if addr == self.gateway:
            raise HostLocalError("requested ip %s is the subnet's gateway" % addr)
        return addr

    def candidates(self, last_reserved):
        """Round robin: from last_reserved + 1 (or range start when the cursor is missing or
        outside the range), wrapping at the range end, once round, skipping the gateway."""
        start, end = int(self.start), int(self.end)
        size = end - start + 1
        if self.contains(last_reserved):
            first = start if int(last_reserved) == end else int(last_reserved) + 1
        else:
            first = start
        cls = type(self.start)
        for k in range(size):
            n = first + k
            if n > end:
                n -= size
            if n != int(self.gateway):
                yield cls(n)


def validate_requests(containers, state, rng=None):
    """Normalise [{container_id, ifname, ip}], refusing anything host-local would refuse."""
    out = []
    seen = set()
    for item in containers:
        cid = validate_container_id(item.get('container_id'))
        ifname = validate_ifname('eth0' if item.get('ifname') is None else item['ifname'])
        key = (cid, ifname)
        if key in seen:
            raise HostLocalError('container_id %r with ifname %r is listed twice' % key)
        seen.add(key)
        ip = item.get('ip')
        if state == 'present' and ip not in (None, ''):
            ip = rng.check_requested(ip)
        else:
            ip = None
        out.append({'container_id': cid, 'ifname': ifname, 'ip': ip})
    return out


# ---- the store ----------------------------------------------------------------------------

def _trim(data):
    """strings.TrimSpace(string(data)) as host-local applies it to every file it reads."""
    return data.decode('utf-8', 'surrogateescape').strip(_GO_SPACE)


class StoreView(object):
    """The store's files (relative path -> bytes) read under the lock, and planned changes."""

    def __init__(self, files=None, names=None):
        self.original = dict(files or {})
        self.files = dict(self.original)
        # Top-level entries of any type: O_EXCL fails on each of them, so none can be reserved.
        self.names = set(names if names is not None else self.original)

    @classmethod
    def read(cls, netdir):
        files, names = {}, set()
        if not os.path.isdir(netdir):
            return cls()
        for root, dirs, fnames in os.walk(netdir):
            dirs.sort()
            rel_root = os.path.relpath(root, netdir)
            if rel_root == '.':
                names.update(dirs)
                names.update(fnames)
            for fname in sorted(fnames):
                path = os.path.join(root, fname)
                rel = fname if rel_root == '.' else os.path.join(rel_root, fname)
                try:
                    if not os.path.isfile(path):  # never open a FIFO or socket
                        continue
                    with open(path, 'rb') as f:
                        files[rel] = f.read()
                except (IOError, OSError):
                    continue  # host-local skips what it cannot read
        return cls(files, names)

    # -- queries, as host-local's disk backend answers them
    def held_by(self, container_id, ifname):
        """IPs (from file names) held by container+ifname; old id-only files count too."""
        new, old = container_id + LINE_BREAK + ifname, container_id
        out = []
        for rel in sorted(self.files):
            content = _trim(self.files[rel])
            if content == new or content == old:
                addr = parse_ip(os.path.basename(rel))
                if addr is not None:
                    out.append(addr)
        return out

    def last_reserved(self):
        data = self.files.get(LAST_IP_FILE)
        if data is None:
            return None
        try:
            return parse_ip(data.decode('ascii'))
        except UnicodeDecodeError:
            return None

    def refuse_outside(self, rng, container_id, ifname, requested):
        """A requested IP outside the range, as host-local 1.1.1's ADD meets it: no range
        claims it, so the range set allocates the next free address for the container,
        then the leftover request releases it again. Only ``last_reserved_ip.0`` moves (a
        later allocation on a shared store must be the same from either allocator).
        Plans that move and raises HostLocalError with host-local's message; a container
        that already holds an address fails first, moving nothing (host-local's duplicate
        allocation check)."""
        held = [a for a in self.held_by(container_id, ifname) if rng.contains(a)]
        if held:
            raise HostLocalError('container %s ifname %s already holds %s, not the requested '
                                 'ip %s; release it first' % (container_id, ifname, held[0],
                                                              requested))
        for addr in rng.candidates(self.last_reserved()):
            if str(addr) not in self.names:
                self.files[LAST_IP_FILE] = str(addr).encode('ascii')
                self.names.add(LAST_IP_FILE)
                return ('requested ip %s is not in range set %s: failed to allocate all '
                        'requested IPs: %s' % (requested, rng, requested))
        raise HostLocalError('container %s ifname %s: no IP addresses available in range set: '
                             '%s' % (container_id, ifname, rng))

    # -- operations
    def allocate(self, rng, container_id, ifname, requested=None):
        """Returns (ip, changed)."""
        held = [a for a in self.held_by(container_id, ifname) if rng.contains(a)]
        if held:
            if requested is not None and requested != held[0]:
                raise HostLocalError('container %s ifname %s already holds %s, not the '
                                     'requested ip %s; release it first'
                                     % (container_id, ifname, held[0], requested))
            return held[0], False
        if requested is not None:
            if str(requested) in self.names:
                raise HostLocalError('requested ip %s is not available in range set %s: it is '
                                     'already allocated' % (requested, rng))
            self._reserve(requested, container_id, ifname)
            return requested, True
        for addr in rng.candidates(self.last_reserved()):
            if str(addr) not in self.names:
                self._reserve(addr, container_id, ifname)
                return addr, True
        raise HostLocalError('container %s ifname %s: no IP addresses available in range set: '
                             '%s' % (container_id, ifname, rng))

    def _reserve(self, addr, container_id, ifname):
        self.files[str(addr)] = (container_id.strip() + LINE_BREAK + ifname).encode('utf-8')
        self.names.add(str(addr))
        self.files[LAST_IP_FILE] = str(addr).encode('ascii')
        self.names.add(LAST_IP_FILE)

    def release(self, container_id, ifname):
        """Remove the exact id+ifname files, or if there are none the id-only ones (as
        host-local's ReleaseByID). Returns the released IPs."""
        for match in (container_id + LINE_BREAK + ifname, container_id):
            hits = [rel for rel in sorted(self.files) if _trim(self.files[rel]) == match]
            if hits:
                break
        for rel in hits:
            del self.files[rel]
            self.names.discard(rel)
        return [str(a) for a in (parse_ip(os.path.basename(r)) for r in hits) if a is not None]

    def changes(self):
        """[(relative path, before bytes or None, after bytes or None)] in apply order:
        removals, then new IP files, then the last_reserved_ip rewrite."""
        paths = set(self.original) | set(self.files)
        changed = [p for p in paths if self.original.get(p) != self.files.get(p)]

        def order(p):
            if p not in self.files:
                return (0, p)
            return (2 if p.startswith(LAST_IP_PREFIX) else 1, p)
        return [(p, self.original.get(p), self.files.get(p)) for p in sorted(changed, key=order)]


def read_store(netdir):
    """The allocations of a store, {ip: {'container_id': str, 'ifname': str}}, as
    host-local's disk backend sees them: top-level files named by an IP hold
    ``<id>\r\n<ifname>`` (whitespace trimmed); ``lock``, ``last_reserved_ip.N`` and any
    other name are skipped. The one reader of the store for node_info and k8slab status:
    any bytes are survived (undecodable ones become U+FFFD), a missing store is empty, an
    unreadable file is skipped."""
    out = {}
    for rel, data in StoreView.read(netdir).files.items():
        addr = None if os.sep in rel else parse_ip(rel)
        if addr is None:
            continue
        container_id, _sep, ifname = data.decode('utf-8', 'replace').partition(LINE_BREAK)
        out[str(addr)] = {'container_id': container_id.strip(_GO_SPACE),
                          'ifname': ifname.strip(_GO_SPACE)}
    return out


@contextmanager
def store_lock(netdir, create=True):
    """flock(LOCK_EX) on <netdir>/lock for the whole block (host-local uses go-filemutex:
    open O_RDONLY|O_CREAT, mode 0750, flock). Without create, a missing lock file means
    nobody has ever used the store, and the block runs unlocked."""
    path = os.path.join(netdir, LOCK_FILE)
    flags = os.O_RDONLY | getattr(os, 'O_CLOEXEC', 0) | (os.O_CREAT if create else 0)
    try:
        fd = os.open(path, flags, 0o750)
    except OSError as e:
        if not create and e.errno == errno.ENOENT:
            yield
            return
        raise HostLocalError('cannot open lock file %s: %s' % (path, e.strerror))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the only descriptor drops the flock


def _write(path, data, flags):
    fd = os.open(path, flags | getattr(os, 'O_CLOEXEC', 0), 0o644)
    try:
        os.write(fd, data)
    except OSError:
        os.close(fd)
        os.unlink(path)
        raise
    os.close(fd)


def apply_changes(netdir, changes):
    """Write the planned changes; on an I/O error undo the ones already made and raise."""
    done = []
    try:
        for rel, before, after in changes:
            path = os.path.join(netdir, rel)
            if after is None:
                os.unlink(path)
            elif before is None and not rel.startswith(LAST_IP_PREFIX):
                _write(path, after, os.O_RDWR | os.O_CREAT | os.O_EXCL)
            else:
                _write(path, after, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            done.append((path, before))
    except OSError as e:
        for path, before in reversed(done):
            try:
                if before is None:
                    os.unlink(path)
                else:
                    _write(path, before, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            except OSError:
                pass
        raise HostLocalError('cannot write the store %s: %s: %s'
                             % (netdir, e.filename or netdir, e.strerror))


def _check_writable(data_dir, netdir):
    """Fail before creating anything when the store cannot be made or written."""
    probe = netdir
    while not os.path.lexists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise HostLocalError('data_dir %s is not writable: %s is not a directory'
                             % (data_dir, probe))
    if not os.access(probe, os.W_OK | os.X_OK):
        raise HostLocalError('data_dir %s is not writable: no write access to %s'
                             % (data_dir, probe))


def _makedirs(path):
    """os.makedirs(path, 0755) that removes what it made when it fails; returns made dirs."""
    missing = []
    probe = path
    while not os.path.isdir(probe):
        missing.append(probe)
        probe = os.path.dirname(probe)
    made = []
    try:
        for d in reversed(missing):
            try:
                os.mkdir(d, 0o755)
            except OSError as e:
                # another allocator (module or plugin) made it first: fine, as in MkdirAll
                if e.errno == errno.EEXIST and os.path.isdir(d):
                    continue
                raise
            made.append(d)
    except OSError as e:
        for d in reversed(made):
            os.rmdir(d)
        raise HostLocalError('cannot create the store directory %s: %s' % (path, e.strerror))
    return made


def _plan(view, rng, requests, state):
    allocations, released = [], []
    for req in requests:
        if state == 'present':
            addr = view.allocate(rng, req['container_id'], req['ifname'], req['ip'])[0]
            allocations.append({'container_id': req['container_id'], 'ifname': req['ifname'],
                                'ip': rng.interface(addr), 'gateway': str(rng.gateway)})
        else:
            ips = view.release(req['container_id'], req['ifname'])
            released.append({'container_id': req['container_id'], 'ifname': req['ifname'],
                             'ips': ips})
    return allocations, released


def _outside(rng, requests, state):
    """The first request for an address outside the range, or None."""
    for req in requests:
        if state == 'present' and req['ip'] is not None and not rng.contains(req['ip']):
            return req
    return None


def _held(view, requests, rng):
    """{'container_id/ifname': [addresses held]} (in the range when there is one)."""
    return dict(('%s/%s' % (r['container_id'], r['ifname']),
                 [str(a) for a in view.held_by(r['container_id'], r['ifname'])
                  if rng is None or rng.contains(a)]) for r in requests)


def ensure(data_dir, network, rng, requests, state='present', check_mode=False):
    """Allocate (present) or release (absent) for every request under one lock.

    ``requests`` come from validate_requests. Returns a dict with changed, store,
    allocations, released, before and after ({'container_id/ifname': [ip, ...]}) and
    changes ([(relpath, before, after)]). Raises HostLocalError, leaving the store as it
    was - except for a requested ip outside the range, which moves last_reserved_ip.0 as
    host-local does (see StoreView.refuse_outside) and writes nothing else."""
    validate_network_name(network)
    if not os.path.isabs(data_dir):
        raise HostLocalError('data_dir %r must be an absolute path' % (data_dir,))
    netdir = os.path.join(data_dir, network)
    if os.path.lexists(netdir) and not os.path.isdir(netdir):
        raise HostLocalError('store %s exists and is not a directory' % netdir)
    exists = os.path.isdir(netdir)
    if state == 'present' or exists:
        _check_writable(data_dir, netdir)

    outside = _outside(rng, requests, state)
    if not exists:
        # An absent store is empty: plan against it first so that a request that cannot be
        # met (or needs no change) creates no directory at all.
        view = StoreView()
        if outside is not None:  # fails before anything is made if it cannot move the cursor
            view.refuse_outside(rng, outside['container_id'], outside['ifname'], outside['ip'])
        else:
            before = _held(view, requests, rng)
            allocations, released = _plan(view, rng, requests, state)
            changes = view.changes()
            if check_mode or not changes:
                return _result(netdir, allocations, released, changes, before,
                               _held(view, requests, rng))
        if not check_mode:
            _makedirs(netdir)

    with store_lock(netdir, create=not check_mode):
        view = StoreView.read(netdir) if exists or not check_mode else StoreView()
        if outside is not None:
            msg = view.refuse_outside(rng, outside['container_id'], outside['ifname'],
                                      outside['ip'])
            if not check_mode:
                apply_changes(netdir, view.changes())
            raise HostLocalError(msg)
        before = _held(view, requests, rng)
        allocations, released = _plan(view, rng, requests, state)
        changes = view.changes()
        if changes and not check_mode:
            apply_changes(netdir, changes)
    return _result(netdir, allocations, released, changes, before, _held(view, requests, rng))


def _result(netdir, allocations, released, changes, before, after):
    return {'changed': bool(changes), 'store': netdir, 'allocations': allocations,
            'released': released, 'changes': changes, 'before': before, 'after': after}


def render_diff(netdir, changes):
    """One Ansible diff entry per changed store file; CR shown as \\r so it is visible."""
    def text(data):
        if data is None:
            return ''
        return data.decode('utf-8', 'replace').replace('\r', '\\r')
    out = []
    for rel, before, after in changes:
        path = os.path.join(netdir, rel)
        out.append({'before_header': path + (' (absent)' if before is None else ''),
                    'after_header': path + (' (absent)' if after is None else ''),
                    'before': text(before), 'after': text(after)})
    return out

# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""iproute2 access shared by the k8slab.podnet modules.

State is always read as JSON (``ip -j``/``bridge -j``); changes are planned as a list of
``Change`` objects first and applied afterwards, so check mode and ``--diff`` report exactly
the commands that a real run executes. Changes are applied with ``ip -batch`` (one process
per namespace), and when a change fails the ones already made are undone in reverse order,
so a failed module run leaves nothing half-made.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import json
import os
import re

from ansible_collections.k8slab.podnet.plugins.module_utils import command
from ansible_collections.k8slab.podnet.plugins.module_utils.netns import InNetns, NetnsError

IFNAME_MAX = 15  # IFNAMSIZ - 1
# fullmatch, never `$`: `$` also matches before a final newline ("lab\n" would pass)
_NETNS_RE = re.compile(r'[A-Za-z0-9_.][A-Za-z0-9_.\-]*')
# Where iproute2 keeps named namespaces (NETNS_RUN_DIR), as seen from this mount namespace.
NETNS_RUN_DIR = '/var/run/netns'


class IprouteError(Exception):
    """A failure with a message that is ready for fail_json."""


def validate_ifname(name, what='interface name'):
    """Raise IprouteError unless ``name`` is a valid Linux interface name (the kernel's
    dev_valid_name: 1..15 bytes, not '.' or '..', no '/', ':' or whitespace). The one
    interface-name check of the collection (hostlocal's ifname uses it too)."""
    if not isinstance(name, str) or not name:
        raise IprouteError('%s must be a non-empty string, got %r' % (what, name))
    if len(name.encode('utf-8')) > IFNAME_MAX:
        raise IprouteError('%s %r is %d bytes long; Linux allows at most %d'
                           % (what, name, len(name.encode('utf-8')), IFNAME_MAX))
    if name in ('.', '..') or re.search(r'[/:\s]', name):
        raise IprouteError("%s %r is invalid: it must not be '.' or '..' nor contain '/', ':' "
                           'or whitespace' % (what, name))
    return name


def validate_netns_name(name, what='namespace name'):
    """Raise IprouteError unless ``name`` is usable as a file name under /run/netns."""
    if not isinstance(name, str) or not name:
        raise IprouteError('%s must be a non-empty string, got %r' % (what, name))
    if name == '.' or '/' in name or '..' in name or not _NETNS_RE.fullmatch(name) or len(name) > 255:
        raise IprouteError("%s %r is invalid: use letters, digits, '_', '.' and '-' only, "
                           "with no '/' or '..' and not '.'" % (what, name))
    return name


def validate_interface_cidr(value, what='address'):
    """An interface address with prefix, e.g. 10.244.1.1/24 (host bits allowed)."""
    try:
        if '/' not in str(value):
            raise ValueError('no prefix length')
        return ipaddress.ip_interface(str(value))
    except ValueError as e:
        raise IprouteError('%s %r is not a valid address/prefix: %s' % (what, value, e))


def validate_network(value, what='subnet'):
    """A network whose host bits are zero, e.g. 10.244.1.0/24 -> ipaddress.ip_network.
    Raises IprouteError naming `what` and the value."""
    try:
        return ipaddress.ip_network(str(value), strict=True)
    except ValueError as e:
        raise IprouteError('%s %r is not a valid network (host bits must be zero): %s'
                           % (what, value, e))


def validate_address(value, what='address'):
    """An IP address, e.g. 10.244.1.1 (ipaddress refuses surrounding whitespace)."""
    try:
        return ipaddress.ip_address(str(value))
    except ValueError as e:
        raise IprouteError('%s %r is not a valid IP address: %s' % (what, value, e))


def split_json_stream(text, count, what='ip -batch'):
    """``ip -j -batch`` prints one JSON document per command, back to back: split them."""
    if isinstance(text, bytes):
        text = text.decode('utf-8', 'replace')
    decoder = json.JSONDecoder()
    docs, pos = [], 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            break
        try:
            doc, pos = decoder.raw_decode(text, pos)
        except ValueError as e:
            raise IprouteError('%s printed output that is not JSON: %s' % (what, e))
        docs.append(doc)
    if len(docs) != count:
        raise IprouteError('%s printed %d JSON documents, expected %d' % (what, len(docs), count))
    return docs


def is_up(link):
    """Administratively up (the UP flag), whatever the carrier."""
    return 'UP' in (link or {}).get('flags', [])


def link_kind(link):
    return ((link or {}).get('linkinfo') or {}).get('info_kind')


def link_addresses(link):
    """'addr/prefix' strings of a link from ``ip -j addr show`` (link-scope ones left out:
    the kernel makes those itself, e.g. IPv6 fe80::/64)."""
    return ['%s/%s' % (a['local'], a['prefixlen']) for a in (link or {}).get('addr_info', [])
            if a.get('family') in ('inet', 'inet6') and a.get('scope') != 'link']


def plan_addresses(current, wanted):
    """Exact address set: returns (delete, add, readd). ``readd`` are wanted addresses that
    already exist but share an IPv4 subnet with one being deleted: deleting a primary IPv4
    address also deletes its secondaries, so those must be put back (``addr replace``)."""
    cur = [ipaddress.ip_interface(a) for a in current]
    want = [ipaddress.ip_interface(a) for a in wanted]
    delete = [a for a in cur if a not in want]
    add = [a for a in want if a not in cur]
    nets = set(a.network for a in delete if a.version == 4)
    readd = [a for a in want if a in cur and a.version == 4 and a.network in nets]
    return [str(a) for a in delete], [str(a) for a in add], [str(a) for a in readd]


def plan_address_changes(ipr, dev, current, wanted, netns=None, new_link=False):
    """Plans the ``ip addr`` commands that make ``dev``'s addresses exactly ``wanted``;
    returns True when any address is deleted (routes through it may be gone too).
    Undo commands restore the old set; on a link created by this run none are needed."""
    delete, add, readd = plan_addresses(current, wanted)
    for a in delete:
        ipr.plan(['addr', 'del', a, 'dev', dev], netns=netns,
                 undo=None if new_link else ['addr', 'add', a, 'dev', dev])
    for a in add:
        ipr.plan(['addr', 'add', a, 'dev', dev], netns=netns,
                 undo=None if new_link else ['addr', 'del', a, 'dev', dev])
    for a in readd:
        ipr.plan(['addr', 'replace', a, 'dev', dev], netns=netns)
    return bool(delete)


def route_dst(dst, family=None):
    """A route destination as a network string; 'default' becomes 0.0.0.0/0 or ::/0."""
    if dst == 'default':
        return '::/0' if family == 6 else '0.0.0.0/0'
    return str(ipaddress.ip_network(dst, strict=False))


class Change(object):
    """One ``ip`` command (without the leading ``ip``), the namespace it runs in, and the
    command, or list of commands, that undoes it (None when it cannot or need not be
    undone); ``undo`` is kept as a list of argument lists."""

    def __init__(self, args, netns=None, undo=None, undo_netns=None):
        self.args = list(args)
        self.netns = netns
        if undo and not isinstance(undo[0], (list, tuple)):
            undo = [undo]
        self.undo = [list(u) for u in undo] if undo else None
        self.undo_netns = undo_netns if undo_netns is not None else netns

    def argv(self):
        return _argv('ip', self.netns, self.args)

    def text(self):
        """The command as a person would type it in a shell (for RETURN and diff)."""
        return ' '.join(_quote(a) for a in self.argv())

    def __repr__(self):
        return 'Change(%s)' % self.text()


def _argv(tool, netns, args):
    argv = [tool]
    if netns:
        argv += ['-n', netns]
    return argv + list(args)


_SHELL_SAFE = re.compile(r'[\w@%+=:,./\-]+')


def _quote(arg):
    return arg if _SHELL_SAFE.fullmatch(arg) else "'%s'" % arg.replace("'", "'\\''")


def batch_word(arg):
    """``arg`` as ``ip -batch`` reads it back as one word, or None when it cannot be written.

    iproute2's batch reader (getcmdline/makeargs) cuts every line at the first '#' (a
    comment, even inside quotes), splits words at blanks, and takes a word that starts with
    a quote up to the next same quote, with no escapes. The kernel accepts '#' and quotes in
    interface names, so such a word is either quoted with the other quote or, for '#' (or
    both quotes at the start), not batchable: the caller then runs that command on its own."""
    if not arg or '#' in arg or '\n' in arg or '\\' in arg:
        return None
    if not re.search(r'[ \t\r]', arg) and arg[0] not in '\'"':
        return arg
    for q in ('"', "'"):
        if q not in arg:
            return q + arg + q
    return None


def netns_path(name):
    return os.path.join(NETNS_RUN_DIR, name)


def netns_is_pinned(name):
    """True when /var/run/netns/NAME really is a network namespace (a bind mount of an nsfs
    inode), False when it is absent or a leftover file with nothing mounted on it (a runtime
    crashed, a mount was lost): ``ip netns list`` shows both alike, but ``ip -n NAME`` fails
    on the latter with "Invalid argument". Every nsfs inode shares one device number, that
    of /proc/self/ns/net."""
    try:
        return os.stat(netns_path(name)).st_dev == os.stat('/proc/self/ns/net').st_dev
    except OSError:
        return False


def netns_entries():
    """The entries of /var/run/netns (str), in directory order, as ``ip netns list`` reads
    and prints them (no ``ip`` process); leftover entries that are no namespace are listed
    too (see netns_is_pinned); [] when the directory does not exist."""
    try:
        return os.listdir(NETNS_RUN_DIR)
    except OSError:
        return []


def netns_missing(names):
    """Of ``names`` (None skipped), those that are not usable namespaces, each checked once:
    {name: 'absent'} or {name: 'not a namespace'} (a leftover /var/run/netns entry). A module
    with state=absent treats both as gone; netns_problem words either for fail_json."""
    listed, out = None, {}
    for name in names:
        if name is None or name in out:
            continue
        if listed is None:
            listed = set(netns_entries())
        if name not in listed:
            out[name] = 'absent'
        elif not netns_is_pinned(name):
            out[name] = 'not a namespace'
    return out


def netns_problem(name, why, what='', option='netns'):
    """The message for a namespace that netns_missing reported (``why``)."""
    if why == 'absent':
        return '%s %r%s does not exist' % (option, name, what and ' ' + what)
    return ('%s %r%s is not a network namespace: %s is a leftover entry with nothing mounted '
            'on it (k8slab.podnet.netns recreates it)' % (option, name, what and ' ' + what,
                                                          netns_path(name)))


class Iproute(object):
    """Run iproute2 for a module: JSON reads, planned changes, batch apply with undo."""

    def __init__(self, module):
        self.module = module
        self.ip = module.get_bin_path('ip', required=True)
        self.changes = []

    # ---- reading -----------------------------------------------------------------
    def run(self, argv, data=None, check=True):
        rc, out, err = command.run(argv, data=data)
        if check and rc != 0:
            raise IprouteError('%s failed (rc=%d): %s' % (' '.join(argv), rc, (err or out).strip()))
        return rc, out, err

    def json(self, args, netns=None):
        """``ip -j [-n NETNS] ARGS`` parsed; a missing device gives [] instead of an error."""
        argv = [self.ip, '-j'] + (['-n', netns] if netns else []) + list(args)
        rc, out, err = self.run(argv, check=False)
        if rc != 0:
            if 'does not exist' in err or 'Cannot find device' in err:
                return []
            raise IprouteError('%s failed (rc=%d): %s' % (' '.join(argv), rc, (err or out).strip()))
        out = out.strip()
        return json.loads(out) if out else []

    def json_batch(self, commands, netns=None, details=False):
        """Several read-only commands (e.g. ``['addr show', 'route show table main']``) in ONE
        ``ip -j -batch`` process; returns one parsed JSON result per command, in order."""
        argv = ([self.ip, '-j'] + (['-d'] if details else []) + (['-n', netns] if netns else [])
                + ['-batch', '-'])
        rc, out, err = self.run(argv, data='\n'.join(commands) + '\n')
        return split_json_stream(out, len(commands), ' '.join(argv))

    def link(self, name, netns=None):
        found = self.json(['-d', 'link', 'show', 'dev', name], netns=netns)
        return found[0] if found else None

    def routes(self, netns=None, family='4', table='main', dev=None):
        args = ['-%s' % family, 'route', 'show', 'table', table]
        if dev:
            args += ['dev', dev]
        return self.json(args, netns=netns)

    # ---- planning and applying ---------------------------------------------------
    def plan(self, args, netns=None, undo=None, undo_netns=None):
        change = Change(args, netns=netns, undo=undo, undo_netns=undo_netns)
        self.changes.append(change)
        return change

    def commands(self):
        return [c.text() for c in self.changes]

    def apply(self):
        """Run the planned changes in order, grouping consecutive changes of one namespace
        into one ``ip -batch`` process. On failure undo what succeeded and raise."""
        done = []
        groups = []
        for change in self.changes:
            if groups and groups[-1][0] == change.netns:
                groups[-1][1].append(change)
            else:
                groups.append((change.netns, [change]))
        for netns, group in groups:
            ok = self._run_group(netns, group)
            done.extend(group[:ok])
            if ok < len(group):
                failed = group[ok]
                error = self._last_error
                self.undo(done)
                raise IprouteError('%s failed: %s%s' % (
                    failed.text(), error, ' (the %d change(s) made before it were undone)'
                    % len(done) if done else ''))
        return [c.text() for c in done]

    def _run_group(self, netns, group):
        """Returns how many changes of the group succeeded. A group whose words cannot all
        be written for ``ip -batch`` runs one ``ip`` per change: same result either way."""
        self._last_error = ''
        lines = [[batch_word(a) for a in c.args] for c in group]
        if len(group) == 1 or any(None in words for words in lines):
            for n, change in enumerate(group):
                rc, out, err = self.run([self.ip] + change.argv()[1:], check=False)
                if rc != 0:
                    self._last_error = (err or out).strip()
                    return n
            return len(group)
        argv = [self.ip] + (['-n', netns] if netns else []) + ['-batch', '-']
        script = '\n'.join(' '.join(words) for words in lines) + '\n'
        rc, out, err = self.run(argv, data=script, check=False)
        if rc == 0:
            return len(group)
        m = re.search(r'Command failed -:(\d+)', err or '')
        failed_line = int(m.group(1)) if m else 1
        self._last_error = (err or out).replace('Command failed -:%d' % failed_line, '').strip()
        return failed_line - 1

    def undo(self, done):
        """Best-effort rollback of applied changes, newest first."""
        for change in reversed(done):
            for undo in change.undo or []:
                self.run(_argv(self.ip, change.undo_netns, undo), check=False)


def fail(module, error, **kwargs):
    """fail_json with the message of an IprouteError (or any exception)."""
    module.fail_json(msg=str(error), **kwargs)


def plan_apply_exit(module, plan):
    """A module run of links and their sysctls (bridge, veth): ``plan(ipr, sysctls)`` plans
    on a new Iproute and Sysctls and returns (before, after); unless in check mode the ``ip``
    changes are applied, then the sysctls - a sysctl that cannot be written undoes the ``ip``
    changes. Exits with changed, commands (what ran, or would run in check mode), before,
    after and, with --diff, the diff; an IprouteError fails naming the commands."""
    ipr = Iproute(module)
    sysctls = Sysctls()
    try:
        before, after = plan(ipr, sysctls)
        if ipr.changes and not module.check_mode:
            ipr.apply()
        if sysctls.planned and not module.check_mode:
            try:
                sysctls.apply()
            except IprouteError:
                ipr.undo(ipr.changes)
                raise
    except IprouteError as e:
        module.fail_json(msg=str(e), commands=ipr.commands() + sysctls.commands())
    commands = ipr.commands() + sysctls.commands()
    result = dict(changed=bool(commands), commands=commands, before=before, after=after)
    if module._diff:
        result['diff'] = dict(before=before, after=after)
    module.exit_json(**result)


# ---- parity with the CNI bridge plugin: broadcast addresses and interface sysctls ----------
def plan_broadcasts(ipr, dev, link, wanted, netns=None):
    """Gives each IPv4 address of wanted the broadcast address of its subnet (``brd``), as the
    CNI bridge plugin 1.1.1 sets it on the pod's and the bridge's addresses. Call after
    plan_address_changes: a planned ``addr add`` gets ``broadcast BRD``; an existing address
    without it is deleted and added again (the kernel does not change the broadcast of an
    existing address). ``link`` is its ``ip -j addr show`` entry (None for a new link).
    Returns True when an existing address was re-added (routes through it may be gone)."""
    have = dict(('%s/%s' % (a['local'], a['prefixlen']), a.get('broadcast'))
                for a in (link or {}).get('addr_info', []) if a.get('family') == 'inet')
    readded = False
    for a in wanted or []:
        iface = ipaddress.ip_interface(a)
        if iface.version != 4 or iface.network.prefixlen >= 31:
            continue
        brd = str(iface.network.broadcast_address)
        adds = [c for c in ipr.changes if c.netns == netns and c.args[:3] == ['addr', 'add', a]
                and c.args[3:] == ['dev', dev]]
        if adds:
            adds[-1].args += ['broadcast', brd]
        elif str(iface) in have and have[str(iface)] != brd:
            ipr.plan(['addr', 'del', a, 'dev', dev], netns=netns,
                     undo=['addr', 'add', a, 'dev', dev])
            ipr.plan(['addr', 'add', a, 'dev', dev, 'broadcast', brd], netns=netns,
                     undo=['addr', 'del', a, 'dev', dev])
            readded = True
    return readded


def conf_sysctl(family, ifname, key):
    """Path of an interface sysctl, e.g. ('ipv6', 'cni0', 'accept_ra') ->
    /proc/sys/net/ipv6/conf/cni0/accept_ra (a path, since interface names may hold dots)."""
    return '/proc/sys/net/%s/conf/%s/%s' % (family, ifname, key)


class Sysctls(object):
    """Sysctls (/proc/sys files) read and written in a named namespace or, netns None, in the
    module's own. A named namespace is entered by this thread for the read or write (InNetns:
    what ``ip netns exec NETNS`` does, without a process per file). Writes are planned, then
    applied after the ip changes; a failed write undoes the writes before it and raises
    IprouteError."""

    def __init__(self):
        self.planned = []   # (netns, path, value, old value or None)

    def read(self, netns, paths):
        """{path: value as str, or None when the file does not exist}. Raises IprouteError
        when netns cannot be entered."""
        out = dict((p, None) for p in paths)
        if not paths:
            return out
        try:
            with InNetns(netns):
                for p in paths:
                    try:
                        with open(p) as f:
                            out[p] = f.read().strip()
                    except (IOError, OSError):
                        pass
        except NetnsError as e:
            raise IprouteError(str(e))
        return out

    def plan(self, netns, path, value, old=None):
        self.planned.append((netns, path, str(value), old))

    def commands(self):
        return ['%ssysctl -w %s=%s' % ('ip netns exec %s ' % ns if ns else '',
                                       p[len('/proc/sys/'):].replace('/', '.'), v)
                for ns, p, v, _old in self.planned]

    def _write(self, netns, path, value):
        """None, or the error (str) of writing value to path in netns."""
        try:
            with InNetns(netns):
                with open(path, 'w') as f:
                    f.write(value)
            return None
        except (IOError, OSError, NetnsError) as e:
            return str(e)

    def apply(self):
        done = []
        for ns, path, value, old in self.planned:
            error = self._write(ns, path, value)
            if error:
                for dns, dpath, _value, dold in reversed(done):
                    if dold is not None:
                        self._write(dns, dpath, dold)
                raise IprouteError('cannot set %s to %s%s: %s' % (
                    path, value, ' in netns %r' % ns if ns else '', error))
            done.append((ns, path, value, old))

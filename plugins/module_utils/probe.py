# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""Network probes for the k8slab.podnet.probe module, without text scraping.

Every probe runs in its own thread, which may first enter a named network namespace with
setns(2) (network namespaces are per thread, so probes of different pods run side by side in
one process). The probes talk to the kernel directly:

- ``path``: the UDP method of traceroute(8) (and tracepath): one datagram per TTL, on a socket
  with IP_RECVERR, so the ICMP "time exceeded"/"unreachable" answers arrive on the socket's
  error queue as ``struct sock_extended_err`` with the offender's address. One probe per hop,
  short waits, no output to parse.
- ``reach``/``unreach``: ICMP echo on a raw socket, replies matched by identifier.
- ``http``: an HTTP GET with http.client.
- ``route``: ``ip -j route get``; ``address``: ``ip -j addr show``; ``mtu``: ``ip -j link show``.

Each kind is one class (validate, observe, judge) registered by name in ``PROBES``; the
controller side of the same kind is in plugins/plugin_utils/verify_kinds.py. Judging is pure
(``evaluate``), so it is unit-tested without a network.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import errno
import json
import os
import random
import select
import socket
import struct
import subprocess
import threading
import time

from ansible_collections.k8slab.podnet.plugins.module_utils import command
from ansible_collections.k8slab.podnet.plugins.module_utils import pods as podrt
from ansible_collections.k8slab.podnet.plugins.module_utils.iproute import (
    IprouteError, validate_ifname, validate_netns_name)
from ansible_collections.k8slab.podnet.plugins.module_utils.netns import InNetns, NetnsError

SOL_IP = 0
IP_RECVERR = getattr(socket, 'IP_RECVERR', 11)
SO_BINDTODEVICE = getattr(socket, 'SO_BINDTODEVICE', 25)
MSG_ERRQUEUE = getattr(socket, 'MSG_ERRQUEUE', 0x2000)
SO_EE_ORIGIN_LOCAL = 1
SO_EE_ORIGIN_ICMP = 2
ICMP_ECHOREPLY = 0
ICMP_DEST_UNREACH = 3
ICMP_ECHO = 8
ICMP_TIME_EXCEEDED = 11
TRACE_PORT = 33434  # traceroute's base port, so firewalls and captures recognise the probes

# traceroute(8)'s annotations for ICMP destination-unreachable codes
UNREACH_FLAGS = {0: '!N', 1: '!H', 2: '!P', 3: '', 4: '!F', 5: '!S', 9: '!X', 10: '!X',
                 13: '!X', 14: '!V', 15: '!C'}


# ---- pure helpers (unit-tested) -------------------------------------------------------------

def parse_extended_err(data):
    """Decodes a ``struct sock_extended_err`` followed by the offender's ``sockaddr_in``
    (the IP_RECVERR control message) into a dict."""
    if len(data) < 16:
        raise ValueError('sock_extended_err too short: %d bytes' % len(data))
    ee_errno, origin, icmp_type, code, _pad, info, _data = struct.unpack('=IBBBBII', data[:16])
    offender = None
    if len(data) >= 24:
        family = struct.unpack('=H', data[16:18])[0]
        if family == socket.AF_INET:
            offender = socket.inet_ntoa(data[20:24])
    return dict(errno=ee_errno, origin=origin, type=icmp_type, code=code, info=info,
                offender=offender)


def classify_hop(err, target):
    """One traceroute hop from a decoded error: (address or '*', flag, final).

    final is True when the trace is over: the target answered (port unreachable) or a
    router said the destination cannot be reached (traceroute's !N, !H, ...)."""
    if err is None:
        return '*', '', False
    addr = err['offender'] or '*'
    if err['origin'] == SO_EE_ORIGIN_ICMP:
        if err['type'] == ICMP_TIME_EXCEEDED:
            return addr, '', False
        if err['type'] == ICMP_DEST_UNREACH:
            if err['code'] == 3 and addr == target:
                return addr, '', True
            return addr, UNREACH_FLAGS.get(err['code'], '!%d' % err['code']), True
        return addr, '!T%d' % err['type'], True
    # A local error (e.g. EMSGSIZE): no router answered.
    return addr, '!E%d' % err['errno'], True


def icmp_checksum(data):
    if len(data) % 2:
        data += b'\0'
    total = sum(struct.unpack('!%dH' % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xffff)
    total += total >> 16
    return ~total & 0xffff


def echo_request(ident, seq, payload=b'k8slab.podnet probe'):
    header = struct.pack('!BBHHH', ICMP_ECHO, 0, 0, ident, seq)
    csum = icmp_checksum(header + payload)
    return struct.pack('!BBHHH', ICMP_ECHO, 0, csum, ident, seq) + payload


def parse_icmp_reply(packet, ident, seq):
    """Classifies a packet read from a raw ICMP socket (it starts with the IP header).

    Returns ('reply', source), ('error', 'Destination host unreachable from X', ...) when an
    ICMP error quotes our echo request, or None when the packet is not about our probe."""
    if len(packet) < 20:
        return None
    ihl = (packet[0] & 0x0f) * 4
    source = socket.inet_ntoa(packet[12:16])
    icmp = packet[ihl:]
    if len(icmp) < 8:
        return None
    icmp_type, code = icmp[0], icmp[1]
    if icmp_type == ICMP_ECHOREPLY:
        r_ident, r_seq = struct.unpack('!HH', icmp[4:8])
        if (r_ident, r_seq) == (ident, seq):
            return ('reply', source)
        return None
    if icmp_type in (ICMP_DEST_UNREACH, ICMP_TIME_EXCEEDED):
        inner = icmp[8:]
        if len(inner) < 20:
            return None
        inner_ihl = (inner[0] & 0x0f) * 4
        quoted = inner[inner_ihl:inner_ihl + 8]
        if len(quoted) == 8 and quoted[0] == ICMP_ECHO and \
                struct.unpack('!HH', quoted[4:8]) == (ident, seq):
            what = 'time to live exceeded' if icmp_type == ICMP_TIME_EXCEEDED else \
                'destination unreachable (code %d)' % code
            return ('error', '%s from %s' % (what, source))
    return None


def select_route(routes):
    """The interesting part of ``ip -j route get`` output."""
    if not routes:
        return {}
    r = routes[0]
    return dict(dev=r.get('dev'), gateway=r.get('gateway'), prefsrc=r.get('prefsrc'),
                type=r.get('type', 'unicast'))


class ProbeError(Exception):
    pass


# ---- the probes ----------------------------------------------------------------------------

def _bind(sock, dev):
    if dev:
        sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, dev.encode('utf-8'))


def trace_hop(target, ttl, wait, dev=None):
    """Sends one UDP probe with this TTL; returns the decoded error or None (no answer)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        _bind(sock, dev)
        sock.setsockopt(SOL_IP, IP_RECVERR, 1)
        sock.setsockopt(SOL_IP, socket.IP_TTL, ttl)
        try:
            sock.connect((target, TRACE_PORT + ttl))
            sock.send(b'k8slab.podnet trace')
        except OSError as e:
            # No route at all: the kernel refuses before anything leaves.
            return dict(errno=e.errno, origin=SO_EE_ORIGIN_LOCAL, type=0, code=0, info=0,
                        offender=None, message=e.strerror)
        deadline = time.monotonic() + wait
        poller = select.poll()
        poller.register(sock, select.POLLERR)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if not poller.poll(left * 1000):
                return None
            try:
                _data, ancdata, _flags, _addr = sock.recvmsg(512, 512, MSG_ERRQUEUE)
            except OSError as e:
                if e.errno in (errno.EAGAIN, errno.EINTR):
                    continue
                raise
            for level, ctype, cdata in ancdata:
                if level == SOL_IP and ctype == IP_RECVERR:
                    return parse_extended_err(cdata)
    finally:
        sock.close()


# The kernel answers with ICMP errors (time exceeded, port unreachable) at most about once per
# net.ipv4.icmp_ratelimit (1000 ms by default) per destination, after a burst of 6
# (XRLIM_BURST_FACTOR in net/ipv4/icmp.c, the inet_peer token bucket). Many traces from one
# source through one hop exceed that; so they are paced, and a silent hop is asked again.
ICMP_RATELIMIT = 1.0  # seconds
ICMP_BURST = 5        # one below the kernel's 6: a retry elsewhere may have used a token


class HopPacer(object):
    """Token buckets, one per (source namespace, bound device, responding hop), mirroring the
    kernel's ICMP rate limit on the responder, so probes that share a hop take turns instead
    of being answered with silence.

    A silent hop is asked once more, a full interval later, by one trace at a time (the
    others wait for that answer). Still silent then, it is most likely not rate-limited (the
    kernel gives a token back every interval) but filtering or not forwarding: it counts as
    dead for DEAD_FOR intervals - probes through it take no turn and are not asked again -
    and then is asked again by the next trace it silences. An answer makes it live at once.
    (Before, every trace through a drill's dead hop waited for a turn of its own: 31 s for
    one check.) Thread-safe; ``take`` blocks until its turn."""

    DEAD_FOR = 2  # intervals

    def __init__(self, interval=ICMP_RATELIMIT, burst=ICMP_BURST):
        self.interval = interval
        self.burst = burst
        self.cond = threading.Condition()
        self.buckets = {}   # key -> (tokens, time of last update); tokens < 0: turns reserved
        self.dead = {}      # key -> until when (monotonic seconds) the hop counts as dead
        self.asking = {}    # key -> when a trace began to ask the silent hop again
        self.heard = {}     # key -> when the hop last answered

    def _tokens(self, key, now):
        tokens, last = self.buckets.get(key, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - last) / self.interval)

    def _is_dead(self, key, now):
        return self.dead.get(key, 0.0) > now

    def take(self, key):
        """Waits until the hop of ``key`` may answer once more, then uses that turn; at once
        for a dead hop (its silence spent none of the kernel's tokens; ``answered`` counts
        the turn if it answers after all)."""
        with self.cond:
            now = time.monotonic()
            if self._is_dead(key, now):
                return
            tokens = self._tokens(key, now) - 1
            self.buckets[key] = (tokens, now)
        if tokens < 0:  # the turn is reserved; wait for it outside the lock
            time.sleep(-tokens * self.interval)

    def ask_again(self, key):
        """The hop did not answer: True when the caller is to ask it once more (after
        ``take``, which then waits a full interval: someone else may have used its token),
        then report with ``asked_again``; False when the hop is dead. While another trace is
        asking it again, waits for that answer first."""
        with self.cond:
            now = time.monotonic()
            if not self._is_dead(key, now):
                self.buckets[key] = (min(self._tokens(key, now), 0.0), now)
            while key in self.asking:
                self.cond.wait()
            if self._is_dead(key, time.monotonic()):
                return False
            self.asking[key] = time.monotonic()
            return True

    def asked_again(self, key, answered):
        """The outcome of ask_again's question: True (the hop lives), False (silent: dead
        unless another trace heard it meanwhile) or None (the probe failed: no verdict)."""
        with self.cond:
            began = self.asking.pop(key, None)
            now = time.monotonic()
            if answered:
                self.heard[key] = now
                self.dead.pop(key, None)
            elif answered is False and self.heard.get(key, -1.0) < began:
                self.dead[key] = now + self.DEAD_FOR * self.interval
            self.cond.notify_all()

    def answered(self, key):
        """The hop answered a first probe: live (a healed route), paced as usual; a turn it
        answered while counted dead is counted now."""
        with self.cond:
            now = time.monotonic()
            self.heard[key] = now
            if self.dead.pop(key, None) is not None:
                self.buckets[key] = (self._tokens(key, now) - 1, now)


def trace(target, max_hops, wait, dev=None, expected=None, pacer=None, source=None):
    """The hops towards target, one probe per TTL, until it answers or a router refuses.

    expected: the hops expected (the pacer's keys: who should answer at each TTL, the target
    beyond them); pacer: a HopPacer shared by concurrent traces; source: what identifies the
    sending end for the pacer (the probe's namespace). A silent hop is asked once more when
    the pacer says so (HopPacer.ask_again); a hop still silent is '*' with ``silent`` True,
    and ends the trace when an answer was expected at its TTL: the check fails there whatever
    follows, and on a dead path every later hop would wait out its probes too (a drill's
    broken path took 14-18 s per trace)."""
    hops = []
    expected = list(expected or [])
    for ttl in range(1, max_hops + 1):
        key = (source, dev, expected[ttl - 1] if ttl <= len(expected) else target)
        if pacer is not None:
            pacer.take(key)
        err = trace_hop(target, ttl, wait, dev)
        if pacer is not None and err is not None:
            pacer.answered(key)
        elif pacer is not None and pacer.ask_again(key):
            outcome = None
            try:
                pacer.take(key)
                err = trace_hop(target, ttl, wait, dev)
                outcome = err is not None
            finally:
                pacer.asked_again(key, outcome)
        if err is not None and err['origin'] == SO_EE_ORIGIN_LOCAL and err.get('message'):
            hops.append(dict(address='*', flag='!%s' % err['message'].replace(' ', '_'),
                             reached=False))
            break
        address, flag, final = classify_hop(err, target)
        hops.append(dict(address=address, flag=flag, reached=final and not flag,
                         silent=err is None))
        if final or (err is None and ttl <= len(expected)):
            break
    return hops


def ping(target, wait, dev=None):
    """One ICMP echo, answers awaited for wait seconds; returns (reply source or None, error
    text or None). An answer queued by the deadline counts, however late this thread runs:
    the socket is read once more at the deadline (a "no reply" must mean the kernel had none)."""
    ident = random.randint(1, 0xffff)
    seq = random.randint(1, 0xffff)
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    try:
        _bind(sock, dev)
        try:
            sock.sendto(echo_request(ident, seq), (target, 0))
        except OSError as e:
            return None, e.strerror
        deadline = time.monotonic() + wait
        error = None
        while True:
            left = max(0.0, deadline - time.monotonic())
            ready, _w, _x = select.select([sock], [], [], left)
            if not ready:
                return None, error
            found = parse_icmp_reply(sock.recv(2048), ident, seq)
            if found and found[0] == 'reply':
                return found[1], None
            if found:
                error = found[1]
    finally:
        sock.close()


def http_get(target, port, path, wait):
    # Imported here: only http probes need it.
    from ansible.module_utils.six.moves import http_client
    conn = http_client.HTTPConnection(target, port, timeout=max(wait, 1.0))
    try:
        conn.request('GET', path, headers={'User-Agent': 'k8slab.podnet-probe'})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, body.decode('utf-8', 'replace')
    finally:
        conn.close()


class Reads(object):
    """Reads of the live state shared by the probes of one run_probes call: ``ip -j`` output
    per (namespace, arguments) and the DNS probes' start-up baseline per namespace. A probe's
    first attempt takes what another probe of the run already read (twenty pods' mtu checks
    list their node's links once, not twenty times); a retry reads afresh, since the state
    may have been settling. Thread-safe: a read in progress is waited for, not repeated."""

    def __init__(self):
        self.lock = threading.Lock()
        self.entries = {}  # key -> [done Event, value, exception]
        self.local = threading.local()  # .fresh: this thread's probe is retrying

    def get(self, key, read):
        """read() once per key and run (a copy of its value), or afresh for a retry."""
        if getattr(self.local, 'fresh', False):
            return read()
        with self.lock:
            entry = self.entries.get(key)
            mine = entry is None
            if mine:
                entry = self.entries[key] = [threading.Event(), None, None]
        if mine:
            try:
                entry[1] = read()
            except Exception as e:  # pylint: disable=broad-except
                entry[2] = e
            finally:
                entry[0].set()
        entry[0].wait()
        if entry[2] is not None:
            raise entry[2]
        return copy.deepcopy(entry[1])


READS = Reads()  # replaced by every run_probes call


def link_addresses(ip_bin, netns, dev):
    """``ip -j addr show dev DEV`` in netns: [the link, with its mtu, link_index and every
    address in addr_info] - one read for a pod's address, mtu and store checks (``-4`` would
    leave out a link without an IPv4 address)."""
    return ip_json(ip_bin, netns, ['addr', 'show', 'dev', dev])


def ipv4_addresses(links):
    """The IPv4 addr_info entries of ``ip -j addr`` links (list of dict)."""
    return [a for link in links for a in link.get('addr_info') or [] if a.get('family') == 'inet']


def ip_json(ip_bin, netns, args):
    """``ip -j [-n NETNS] ARGS`` parsed, through this run's READS."""
    return READS.get(('ip', netns, tuple(args)), lambda: _ip_json(ip_bin, netns, args))


def _ip_json(ip_bin, netns, args):
    argv = [ip_bin, '-j'] + (['-n', netns] if netns else []) + list(args)
    rc, out, err = command.run(argv)
    if rc != 0:
        raise ProbeError('ip %s: %s' % (' '.join(args), err.strip()))
    out = out.strip()
    return json.loads(out) if out else []


# ---- the kinds: one class per kind, registered by name -------------------------------------

class ProbeInputError(Exception):
    """Bad probe input (the module fails with it before anything runs)."""


PROBES = {}


def register(cls):
    """Class decorator: makes a Kind subclass the module-side half of its check kind.

    The controller side (plugins/plugin_utils/verify_kinds.py) registers the same name; a
    kind is complete with both halves."""
    PROBES[cls.name] = cls()
    return cls


def _ipv4(value, what):
    try:
        socket.inet_pton(socket.AF_INET, value)
    except (OSError, ValueError, TypeError):
        raise ProbeInputError('%s %r is not an IPv4 address' % (what, value))


def _ifname(value, what):
    try:
        validate_ifname(value, what)
    except IprouteError as e:  # the one interface-name rule, reported as probe input
        raise ProbeInputError(str(e))


def _netns_name(value, what):
    try:
        validate_netns_name(value, what)
    except IprouteError as e:
        raise ProbeInputError(str(e))


class Kind(object):
    """One probe kind, module side: check its input, observe once, judge the observation.

    ``observe`` returns a dict (its error is ``error``, ``fatal`` when the probe could not
    even be set up); ``judge`` returns (passed, expected text, observed text, reason)."""

    name = None
    needs_target = True  # probes an address: target is required and IPv4
    alone = False        # runs in a wave of its own, before the others (see run_probes)
    silent = False       # passes when nothing answers: listens for silence_wait (run_probe)

    def validate(self, p, what):
        pass

    def expected(self, p):
        return self.name

    def observe(self, p, wait, ip_bin):
        raise NotImplementedError

    def judge(self, p, observed):
        raise NotImplementedError

    def result_fields(self, p, observed):
        """Extra fields of the result record."""
        return {}


def _mismatch(expected, text):
    return 'expected %s, observed %s' % (expected, text)


PACER = None  # the HopPacer of the running run_probes call (path probes share it)


@register
class Path(Kind):
    """The hops towards target, the UDP method of traceroute(8), paced per responding hop."""
    name = 'path'
    alone = True  # ICMP errors are rate-limited per responding hop: no pings in between

    def validate(self, p, what):
        if not p.get('hops'):
            raise ProbeInputError('%s: hops (the expected path) is required for kind path' % what)
        for hop in p['hops']:
            _ipv4(hop, '%s: hop' % what)
        p['max_hops'] = p.get('max_hops') or len(p['hops']) + 1
        if not 1 <= p['max_hops'] <= 64:
            raise ProbeInputError('%s: max_hops %r must be between 1 and 64' % (what, p['max_hops']))

    def expected(self, p):
        return ' '.join(p.get('hops') or [])

    def observe(self, p, wait, ip_bin):
        with InNetns(p.get('netns')):
            return dict(hops=trace(p['target'], p.get('max_hops') or len(p['hops']) + 1, wait,
                                   p.get('bind_dev'), p.get('hops'), PACER,
                                   p.get('netns')))

    def judge(self, p, observed):
        expected = list(p.get('hops') or [])
        hops = observed.get('hops') or []
        text = ' '.join(h['address'] + (' ' + h['flag'] if h.get('flag') else '') for h in hops)
        err = observed.get('error')
        if err:
            return False, ' '.join(expected), text or err, err
        got = [h['address'] for h in hops]
        reached = bool(hops) and hops[-1].get('reached', False)
        if got == expected and (reached or not expected):
            return True, ' '.join(expected), text, ''
        for n, want in enumerate(expected):
            have = got[n] if n < len(got) else 'nothing'
            if have != want:
                reason = 'hop %d: expected %s, observed %s' % (n + 1, want, have)
                if n < len(hops) and hops[n].get('silent'):
                    reason += ' (no answer from hop %d: rate-limited or filtered?)' % (n + 1)
                return False, ' '.join(expected), text, reason
        if len(got) > len(expected):
            return False, ' '.join(expected), text, \
                'hop %d: expected none, observed %s' % (len(expected) + 1, got[len(expected)])
        return False, ' '.join(expected), text, 'target %s did not answer' % p['target']

    def result_fields(self, p, observed):
        return dict(hops=[h['address'] for h in observed.get('hops') or []])


@register
class Reach(Kind):
    """One ICMP echo; an echo reply from anyone passes."""
    name = 'reach'
    want_reply = True

    def expected(self, p):
        return 'reply' if self.want_reply else 'no reply'

    def observe(self, p, wait, ip_bin):
        with InNetns(p.get('netns')):
            reply, error = ping(p['target'], wait, p.get('bind_dev'))
        return dict(reply=reply, error=None if reply else error)

    def judge(self, p, observed):
        reply = observed.get('reply')
        text = 'reply from %s' % reply if reply else (observed.get('error') or 'no reply')
        expected = self.expected(p)
        passed = bool(reply) == self.want_reply
        return passed, expected, text, '' if passed else _mismatch(expected, text)


@register
class Unreach(Reach):
    """One ICMP echo that must go unanswered (an unrunnable probe proves nothing: fails)."""
    name = 'unreach'
    want_reply = False
    silent = True


@register
class Http(Kind):
    """An HTTP GET: the status and, optionally, a text in the body."""
    name = 'http'

    def validate(self, p, what):
        if not 1 <= (p.get('port') or 80) <= 65535:
            raise ProbeInputError('%s: port %r is not a TCP port' % (what, p['port']))

    def expected(self, p):
        body = p.get('body')
        return 'HTTP %s' % p.get('status', 200) + (' containing %r' % body if body else '')

    def observe(self, p, wait, ip_bin):
        with InNetns(p.get('netns')):
            status, body = http_get(p['target'], p.get('port') or 80, p.get('url_path') or '/',
                                    wait)
        return dict(status=status, length=len(body), body=body[:4096])

    def judge(self, p, observed):
        expected = self.expected(p)
        if observed.get('error'):
            return False, expected, observed['error'], observed['error']
        text = 'HTTP %s, %d bytes' % (observed['status'], observed['length'])
        body = p.get('body')
        passed = observed['status'] == p.get('status', 200) and \
            (not body or body in observed['body'])
        return passed, expected, text, '' if passed else _mismatch(expected, text)

    def result_fields(self, p, observed):
        return dict(body=observed['body'][:200]) if 'body' in observed else {}


@register
class Route(Kind):
    """``ip -j route get``: the device and gateway, never a forbidden device."""
    name = 'route'

    def validate(self, p, what):
        if p.get('gateway'):
            _ipv4(p['gateway'], '%s: gateway' % what)

    def expected(self, p):
        expected = 'dev %s' % p['dev'] if p.get('dev') else 'any dev'
        if p.get('gateway') is not None:
            expected += ' via %s' % p['gateway'] if p['gateway'] else ' (connected)'
        if p.get('forbid_dev'):
            expected += ', never ' + ','.join(p['forbid_dev'])
        return expected

    def observe(self, p, wait, ip_bin):
        return dict(route=select_route(ip_json(ip_bin, p.get('netns'),
                                               ['route', 'get', p['target']])))

    def judge(self, p, observed):
        expected = self.expected(p)
        if observed.get('error'):
            return False, expected, observed['error'], observed['error']
        route = observed.get('route') or {}
        text = 'dev %s' % route.get('dev') + (' via %s' % route['gateway'] if route.get('gateway')
                                              else ' (connected)')
        reasons = []
        if p.get('dev') and route.get('dev') != p['dev']:
            reasons.append('leaves via %s, not %s' % (route.get('dev'), p['dev']))
        if p.get('gateway') is not None and (route.get('gateway') or '') != p['gateway']:
            reasons.append('gateway %s, not %s' % (route.get('gateway') or 'none',
                                                   p['gateway'] or 'none'))
        if route.get('dev') in (p.get('forbid_dev') or []):
            reasons.append('uses forbidden dev %s' % route.get('dev'))
        return not reasons, expected, text, '; '.join(reasons)


@register
class Address(Kind):
    """``ip -j addr show dev DEV`` holds the IPv4 address (with prefix)."""
    name = 'address'
    needs_target = False

    def validate(self, p, what):
        if not p.get('dev') or not p.get('address'):
            raise ProbeInputError('%s: kind address needs dev and address' % what)

    def expected(self, p):
        return '%s on %s' % (p.get('address'), p.get('dev'))

    def observe(self, p, wait, ip_bin):
        return dict(addresses=['%s/%s' % (a['local'], a['prefixlen']) for a in
                               ipv4_addresses(link_addresses(ip_bin, p.get('netns'), p['dev']))])

    def judge(self, p, observed):
        expected = self.expected(p)
        if observed.get('error'):
            return False, expected, observed['error'], observed['error']
        have = observed.get('addresses') or []
        text = ', '.join(have) or 'no address'
        passed = p['address'] in have
        return passed, expected, text, '' if passed else _mismatch(expected, text)


@register
class Mtu(Kind):
    """``ip -j addr show dev DEV`` has MTU ``mtu``; in a pod (a probe netns other than the
    module's) the veth's node end must have it too, found by the pod end's ``link_index``."""
    name = 'mtu'
    needs_target = False

    def validate(self, p, what):
        if not p.get('dev') or not p.get('mtu'):
            raise ProbeInputError('%s: kind mtu needs dev and mtu' % what)
        if not 68 <= p['mtu'] <= 65535:
            raise ProbeInputError('%s: mtu %r must be between 68 and 65535' % (what, p['mtu']))

    def expected(self, p):
        return 'mtu %s' % p.get('mtu')

    def observe(self, p, wait, ip_bin):
        link = link_addresses(ip_bin, p.get('netns'), p['dev'])[0]
        mtus = [(p['dev'], link.get('mtu'))]
        home = p.get('home_netns')
        if p.get('netns') and p['netns'] != home:
            peer = [l for l in ip_json(ip_bin, home, ['link', 'show'])
                    if l.get('ifindex') == link.get('link_index') and
                    l.get('link_index') == link.get('ifindex')]
            mtus.append((peer[0]['ifname'], peer[0].get('mtu')) if peer
                        else ('veth peer of %s' % p['dev'], None))
        return dict(mtus=mtus)

    def judge(self, p, observed):
        expected = self.expected(p)
        if observed.get('error'):
            return False, expected, observed['error'], observed['error']
        mtus = observed.get('mtus') or []
        text = ', '.join('%s %s' % (dev, 'missing' if mtu is None else mtu) for dev, mtu in mtus)
        wrong = ['%s has %s' % (dev, 'no link' if mtu is None else 'mtu %s' % mtu)
                 for dev, mtu in mtus if mtu != p['mtu']]
        return not wrong, expected, text, '; '.join(wrong)


# ---- Services, DNS and the way out (issue 13) -------------------------------------------------

FAIR_SHARE_ALPHA = 1e-4  # chance that a healthy endpoint is failed for too small a share
# Requests without an answer before a service probe gives up: one fails the check, and each
# waits out a whole `wait`.
SERVICE_MAX_ERRORS = 1
DNS_LATE = 0.5           # seconds a lookup is awaited past its max_seconds
DNS_BASELINE_MAX = 10.0  # seconds starting nsenter and getent may take (an emulated VM)
RUNTIME_DIR = '/run/podnet'  # the node's pod records (module_utils/pods.py)


def fair_share_min(requests, endpoints, alpha=FAIR_SHARE_ALPHA):
    """The fewest answers an endpoint must give out of ``requests`` (int) spread at random
    over ``endpoints`` (int >= 1) equally likely ones, as kube-proxy's statistic rules spread
    them: the smallest k with P(X >= k) >= 1 - alpha for X ~ Binomial(requests, 1/endpoints).
    Tolerance: a healthy endpoint fails with probability <= alpha (1e-4; 60 requests over 3
    endpoints expect 20 each and need 7), while an endpoint that never answers, or one whose
    rule swallows the others' share, fails every time."""
    p = 1.0 / endpoints
    cdf = 0.0
    for k in range(requests + 1):
        pmf = _comb(requests, k) * p ** k * (1 - p) ** (requests - k)
        if cdf + pmf > alpha:
            return k
        cdf += pmf
    return requests


def _comb(n, k):
    out = 1
    for i in range(min(k, n - k)):
        out = out * (n - i) // (i + 1)
    return out


def spread_text(counts, requests):
    return ', '.join('%s %d' % (name, counts[name]) for name in sorted(counts)) + \
        ' of %d' % requests


@register
class Service(Kind):
    """``requests`` HTTP GETs of ``url_path`` to a Service address (ClusterIP:port), each a new
    connection; every answer names the endpoint pod (``HELLO <pod>``). Passes when each of
    ``endpoints`` answered at least its fair share (``fair_share_min``) and nobody else did;
    with no endpoints, when the connection is refused at once (kube-proxy's REJECT)."""
    name = 'service'

    def validate(self, p, what):
        if not 1 <= (p.get('port') or 80) <= 65535:
            raise ProbeInputError('%s: port %r is not a TCP port' % (what, p['port']))
        if not 1 <= (p.get('requests') or 60) <= 1000:
            raise ProbeInputError('%s: requests %r must be between 1 and 1000'
                                  % (what, p['requests']))
        if not isinstance(p.get('endpoints') or [], list):
            raise ProbeInputError('%s: endpoints %r must be a list of pod names'
                                  % (what, p['endpoints']))

    def expected(self, p):
        eps = p.get('endpoints') or []
        if not eps:
            return 'no endpoints: refused'
        n = p.get('requests') or 60
        return 'each of %s >= %d of %d' % (', '.join(eps), fair_share_min(n, len(eps)), n)

    def observe(self, p, wait, ip_bin):
        counts, errors, refused, sent = {}, [], False, 0
        n = 1 if not p.get('endpoints') else p.get('requests') or 60
        with InNetns(p.get('netns')):
            for _i in range(n):
                sent += 1
                try:
                    status, body = http_get(p['target'], p.get('port') or 80,
                                            p.get('url_path') or '/hello', wait)
                except (OSError, IOError) as e:
                    refused = refused or e.errno == errno.ECONNREFUSED
                    errors.append(getattr(e, 'strerror', None) or str(e))
                except Exception as e:  # http.client's own errors
                    errors.append('%s: %s' % (type(e).__name__, e))
                else:
                    words = body.split()
                    who = words[1] if status == 200 and len(words) == 2 and \
                        words[0] == 'HELLO' else 'HTTP %s %r' % (status, body[:40])
                    counts[who] = counts.get(who, 0) + 1
                if len(errors) >= SERVICE_MAX_ERRORS:
                    break
        return dict(counts=counts, errors=errors, refused=refused, requests=sent)

    def judge(self, p, observed):
        expected = self.expected(p)
        eps = p.get('endpoints') or []
        counts = observed.get('counts') or {}
        errors = observed.get('errors') or []
        if observed.get('error'):
            return False, expected, observed['error'], observed['error']
        if not eps:
            text = 'refused' if observed.get('refused') else (
                spread_text(counts, observed['requests']) if counts else '; '.join(errors))
            passed = bool(observed.get('refused'))
            return passed, expected, 'no endpoints: ' + text if passed else text, \
                '' if passed else 'expected a refusal (no endpoints), observed %s' % text
        text = spread_text(counts, observed['requests']) if counts else 'no answer'
        need = fair_share_min(observed['requests'], len(eps))
        reasons = []
        if errors:
            text += '; %d without answer (%s)' % (len(errors), errors[-1])
            reasons.append('%d of the requests got no answer: %s' % (len(errors), errors[-1]))
        reasons += ['%s answered %d, fewer than %d' % (e, counts.get(e, 0), need)
                    for e in eps if counts.get(e, 0) < need and not errors]
        reasons += ['%s answered, not an endpoint' % w for w in sorted(counts) if w not in eps]
        return not reasons, expected, text, '; '.join(reasons)

    def result_fields(self, p, observed):
        return dict(spread=observed.get('counts') or {})


@register
class Nodeport(Service):
    """A Service's NodePort on a node's address, probed like ``service`` from the host side
    of the host-only network."""
    name = 'nodeport'


@register
class Outside(Http):
    """A pod's HTTP GET to the outside: it answers only when the pod's node masqueraded the
    request to its eth0 address (the NAT beyond masquerades nothing else)."""
    name = 'outside'


def _pod_pid(pod, runtime_dir=RUNTIME_DIR):
    """The pid of a running container of ``pod`` (its record in the node's runtime dir), to
    enter its network and mount namespaces (where the pod's resolv.conf is /etc's)."""
    try:
        with open(os.path.join(runtime_dir, 'pods', pod, 'pod.json')) as f:
            rec = json.load(f)
    except (IOError, OSError, ValueError):
        raise ProbeError('pod %s has no record in %s' % (pod, runtime_dir))
    for c in rec.get('containers') or []:
        if c.get('pid') and os.path.exists('/proc/%d' % c['pid']):
            return c['pid']
    raise ProbeError('pod %s has no running container' % pod)


@register
class Dns(Kind):
    """A name lookup through the C library as a program in the pod (or on the node) makes
    it: ``getent ahostsv4 NAME``, or ``getent hosts ADDRESS`` for a reverse lookup, inside a
    container of the pod (its own /etc/resolv.conf). Passes when ``answer`` is among the
    answers ('' : any outcome) within ``max_seconds`` (seconds, less what the same programs take
    for a numeric address: starting them is not the resolver's delay)."""
    name = 'dns'
    needs_target = False

    def validate(self, p, what):
        if not p.get('qname'):
            raise ProbeInputError('%s: kind dns needs qname' % what)
        if not 0 < (p.get('max_seconds') or 1.0) <= 30:
            raise ProbeInputError('%s: max_seconds %r must be more than 0 and at most 30'
                                  % (what, p['max_seconds']))

    def expected(self, p):
        return '%s within %gs' % (p.get('answer') or 'an answer or none',
                                  p.get('max_seconds') or 1.0)

    def observe(self, p, wait, ip_bin):
        qname = p['qname']
        try:
            socket.inet_pton(socket.AF_INET, qname)
            argv = ['getent', 'hosts', qname]
        except (OSError, ValueError):
            argv = ['getent', 'ahostsv4', qname]
        enter = []
        if p.get('netns') and p['netns'] != p.get('home_netns'):
            enter = ['nsenter', '-t', str(_pod_pid(p['netns'])), '-n', '-m']
        # Past max_seconds the check has failed: wait only DNS_LATE more, to tell a late
        # answer (reported with its time) from none, not out the resolver's own timeouts.
        limit = (p.get('max_seconds') or 1.0) + DNS_LATE
        # What starting nsenter and getent costs on this machine (a numeric address: no lookup
        # at all): a slow machine (a software-emulated VM) must not pass for a slow resolver.
        baseline = READS.get(('dns-baseline', p.get('netns')),
                             lambda: _baseline(enter, DNS_BASELINE_MAX))
        start = time.monotonic()
        proc = subprocess.Popen(enter + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, _err = proc.communicate(timeout=limit + baseline)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return dict(answers=[], seconds=round(time.monotonic() - start - baseline, 3),
                        rc=None, baseline=round(baseline, 3))
        seconds = round(max(0.0, time.monotonic() - start - baseline), 3)
        answers = []
        for line in out.decode('utf-8', 'replace').splitlines():
            f = line.split()
            if not f:
                continue
            for a in (f[1:] if argv[-2] == 'hosts' else f[:1]):
                if a not in answers:
                    answers.append(a)
        return dict(answers=answers, seconds=seconds, rc=proc.returncode, baseline=round(baseline, 3))

    def judge(self, p, observed):
        expected = self.expected(p)
        if observed.get('error'):
            return False, expected, observed['error'], observed['error']
        answers = observed.get('answers') or []
        seconds = observed.get('seconds')
        found = ', '.join(answers) or (
            'no answer' if observed.get('rc') is not None else 'timed out')
        text = '%s in %.2fs' % (found, seconds)
        reasons = []
        if p.get('answer') and p['answer'] not in answers:
            reasons.append('%s did not resolve to %s' % (p['qname'], p['answer']))
        if seconds > (p.get('max_seconds') or 1.0):
            reasons.append('took %.2fs, more than %gs (a resolver that cannot be reached?)'
                           % (seconds, p.get('max_seconds') or 1.0))
        return not reasons, expected, text, '; '.join(reasons)


def _pod_record(p):
    """The pod's record in the node's runtime dir (docs/pods.md), or ProbeError."""
    rec = podrt.read_record(p.get('runtime_dir') or podrt.RUNTIME_DIR, p['pod'])
    if rec is None:
        raise ProbeError('pod %s has no record in %s' % (
            p['pod'], podrt.pods_dir(p.get('runtime_dir') or podrt.RUNTIME_DIR)))
    return rec


def _net_inode(pid_or_path):
    path = '/proc/%d/ns/net' % pid_or_path if isinstance(pid_or_path, int) else pid_or_path
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


@register
class PodNetns(Kind):
    """A container's process is in its sandbox's network namespace: the ``ns/net`` inode of
    the container's pid equals the pause process's and ``/run/netns/<pod>``'s."""
    name = 'pod_netns'
    needs_target = False

    def validate(self, p, what):
        for key in ('pod', 'container'):
            if not p.get(key) or '/' in p[key]:
                raise ProbeInputError('%s: kind pod_netns needs pod and container (names), got '
                                      '%s %r' % (what, key, p.get(key)))

    def expected(self, p):
        return '%s in the sandbox netns' % p.get('container')

    def observe(self, p, wait, ip_bin):
        runtime = p.get('runtime_dir') or podrt.RUNTIME_DIR
        rec = _pod_record(p)
        spid = podrt.pause_pid(runtime, rec)
        cpid = podrt.read_pid(podrt.container_files(runtime, p['pod'], p['container'])['pid'])
        return dict(sandbox_pid=spid, sandbox=_net_inode(spid) if spid else None,
                    pinned=_net_inode(os.path.join(podrt.NETNS_DIR, p['pod'])),
                    pid=cpid if cpid and podrt.alive(cpid) else None,
                    container=_net_inode(cpid) if cpid and podrt.alive(cpid) else None)

    def judge(self, p, observed):
        expected = self.expected(p)
        if observed.get('error'):
            return False, expected, observed['error'], observed['error']
        inodes = (observed['container'], observed['sandbox'], observed['pinned'])
        if len(set(inodes)) == 1:
            text = 'pid %s, pause %s: net:[%s]' % (observed['pid'], observed['sandbox_pid'],
                                                   observed['container'])
        else:
            text = 'pid %s net:[%s], pause %s net:[%s], /run/netns/%s net:[%s]' % (
                observed['pid'] or '-', inodes[0] or '-', observed['sandbox_pid'] or '-',
                inodes[1] or '-', p['pod'], inodes[2] or '-')
        if not observed['pid']:
            return False, expected, text, 'container %s is not running' % p['container']
        if not observed['sandbox']:
            return False, expected, text, 'the sandbox (pause) of %s is not running' % p['pod']
        if not observed['container'] == observed['sandbox'] == observed['pinned']:
            return False, expected, text, 'container %s is in another network namespace' \
                % p['container']
        return True, expected, text, ''


@register
class Localhost(Http):
    """An HTTP GET to 127.0.0.1 inside a pod: one container reaches another on localhost."""
    name = 'localhost'

    def validate(self, p, what):
        Http.validate(self, p, what)
        if not str(p.get('target', '')).startswith('127.'):
            raise ProbeInputError('%s: kind localhost probes a loopback address, not %r'
                                  % (what, p.get('target')))


@register
class Store(Kind):
    """The host-local store file of the pod's live eth0 address holds ``<sandbox id>\\r\\n<dev>``
    (host-local 1.1's format; the sandbox id from the pod's record)."""
    name = 'store'
    needs_target = False

    def validate(self, p, what):
        if not p.get('pod') or '/' in p['pod'] or not p.get('store') or not p.get('dev'):
            raise ProbeInputError('%s: kind store needs pod, store and dev, got %r, %r, %r'
                                  % (what, p.get('pod'), p.get('store'), p.get('dev')))

    def expected(self, p):
        return 'sandbox id\\r\\n%s' % p.get('dev')

    def observe(self, p, wait, ip_bin):
        sid = (_pod_record(p).get('sandbox') or {}).get('id')
        ips = [a['local'] for a in ipv4_addresses(link_addresses(ip_bin, p['pod'], p['dev']))]
        content = None
        if ips:
            try:
                with open(os.path.join(p['store'], ips[0]), 'rb') as f:
                    content = f.read().decode('utf-8', 'replace')
            except (IOError, OSError):
                pass
        return dict(sandbox_id=sid, ip=ips[0] if ips else None, content=content)

    def judge(self, p, observed):
        expected = self.expected(p)
        if observed.get('error'):
            return False, expected, observed['error'], observed['error']
        sid, ip, content = observed['sandbox_id'], observed['ip'], observed['content']
        if not ip:
            return False, expected, 'no address on %s' % p['dev'], \
                'pod %s has no address on %s' % (p['pod'], p['dev'])
        shown = 'no store file'
        if content is not None:
            shown = content.replace('\r', '\\r').replace('\n', '\\n')
            if sid:
                shown = shown.replace(sid, sid[:13] + '...')  # crictl's short id
        text = '%s: %s' % (ip, shown)
        want = '%s\r\n%s' % (sid, p['dev'])
        if content == want:
            return True, expected, text, ''
        return False, expected, text, 'store file %s/%s does not hold sandbox %s and %s' % (
            p['store'], ip, (sid or '?')[:13], p['dev'])


# ---- running probes ------------------------------------------------------------------------

def validate_probes(probes, default_netns=None):
    """Checks every probe before any runs; returns them normalised (each with its ``netns``
    and ``home_netns``, the module's own namespace). Raises ProbeInputError naming the probe,
    the option and the value."""
    if not probes:
        raise ProbeInputError('probes must list at least one probe')
    if default_netns:
        _netns_name(default_netns, 'netns')
    seen = set()
    out = []
    for p in probes:
        p = dict(p)
        name = p.get('name')
        what = 'probe %r' % name
        if name in seen:
            raise ProbeInputError('probe name %r is used twice; names must be unique' % name)
        seen.add(name)
        kind = PROBES.get(p.get('kind'))
        if kind is None:
            raise ProbeInputError('%s: kind %r is not one of %s'
                                  % (what, p.get('kind'), ', '.join(sorted(PROBES))))
        p['home_netns'] = default_netns
        p['netns'] = p.get('netns') or default_netns
        if p['netns']:
            _netns_name(p['netns'], '%s: netns' % what)
        if kind.needs_target:
            if not p.get('target'):
                raise ProbeInputError('%s: target is required for kind %s' % (what, kind.name))
            _ipv4(p['target'], '%s: target' % what)
        for key in ('bind_dev', 'dev'):
            if p.get(key):
                _ifname(p[key], '%s: %s' % (what, key))
        for dev in p.get('forbid_dev') or []:
            _ifname(dev, '%s: forbid_dev' % what)
        kind.validate(p, what)
        out.append(p)
    return out


def evaluate(probe, observed):
    """(passed, expected_text, observed_text, reason) for one probe and its observation."""
    kind = PROBES.get(probe['kind'])
    if kind is None:
        raise ValueError('unknown probe kind %r' % probe['kind'])
    if observed.get('fatal'):
        err = observed.get('error')
        return False, kind.expected(probe), 'error: %s' % err, err
    return kind.judge(probe, observed)


def observe(probe, wait, ip_bin):
    """Runs one probe once, in the calling thread; returns the raw observation."""
    try:
        return PROBES[probe['kind']].observe(probe, wait, ip_bin)
    except (ProbeError, NetnsError) as e:
        # The probe could not even be set up (no such namespace or device): it proves nothing,
        # not even unreachability.
        return dict(error=str(e), fatal=True)
    except (OSError, IOError) as e:
        fatal = e.errno in (errno.ENODEV, errno.ENOENT, errno.EPERM, errno.EACCES, errno.EINVAL)
        return dict(error=getattr(e, 'strerror', None) or str(e), fatal=fatal)
    except Exception as e:  # http.client raises its own exception types
        return dict(error='%s: %s' % (type(e).__name__, e))


def _baseline(enter, limit):
    """Seconds that starting ``enter`` and getent takes for a numeric address (no lookup)."""
    start = time.monotonic()
    try:
        subprocess.run(enter + ['getent', 'ahostsv4', '127.0.0.1'], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=limit, check=False)
    except subprocess.TimeoutExpired:
        pass
    return min(time.monotonic() - start, limit)


def run_probe(probe, wait, retries, retry_delay, ip_bin, silence_wait=None):
    """Observes until the expectation holds or the retries are used up (a new route or ARP
    entry can take a moment); returns the result record. wait: seconds for each answer;
    silence_wait (None: wait): seconds a kind that passes on silence (unreach) listens - an
    answer inside one host comes within milliseconds, over a real network it may take longer."""
    if silence_wait and PROBES[probe['kind']].silent:
        wait = silence_wait
    start = time.monotonic()
    attempts = 0
    while True:
        attempts += 1
        READS.local.fresh = attempts > 1
        observed = observe(probe, wait, ip_bin)
        passed, expected, text, reason = evaluate(probe, observed)
        if passed or attempts > retries:
            break
        time.sleep(retry_delay)
    result = dict(name=probe['name'], kind=probe['kind'], netns=probe.get('netns'),
                  target=probe.get('target'), passed=passed, expected=expected, observed=text,
                  reason=reason, attempts=attempts,
                  duration=round(time.monotonic() - start, 3))
    result.update(PROBES[probe['kind']].result_fields(probe, observed))
    return result


def run_probes(probes, wait, retries, retry_delay, workers, ip_bin, silence_wait=None):
    """Runs all probes concurrently (at most ``workers`` at a time); results in input order.

    Kinds marked ``alone`` (path) run first, on their own: routers rate-limit the ICMP errors
    they send (about one per second and peer), and a concurrent ping to the same broken
    destination would take the one "network unreachable" that shows where a path ends."""
    global PACER, READS
    PACER = HopPacer()  # one per call: its buckets follow this call's probes
    READS = Reads()     # and its reads
    results = [None] * len(probes)
    gate = threading.Semaphore(max(1, workers))

    def work(n, probe):
        with gate:
            try:
                results[n] = run_probe(probe, wait, retries, retry_delay, ip_bin, silence_wait)
            except Exception as e:  # never lose a result to a bug in one probe
                results[n] = dict(name=probe['name'], kind=probe['kind'], passed=False,
                                  netns=probe.get('netns'), target=probe.get('target'),
                                  expected='', observed='internal error', attempts=1,
                                  reason='%s: %s' % (type(e).__name__, e), duration=0)

    for wave in (True, False):
        threads = [threading.Thread(target=work, args=(n, p)) for n, p in enumerate(probes)
                   if PROBES[p['kind']].alone == wave]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return results

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
- ``route``: ``ip -j route get``; ``address``: ``ip -j addr show``.

Evaluation is pure (``evaluate``), so it is unit-tested without a network.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
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

CLONE_NEWNET = 0x40000000
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

KINDS = ('path', 'reach', 'unreach', 'http', 'route', 'address')


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


def _expected(probe):
    kind = probe['kind']
    if kind == 'path':
        return ' '.join(probe.get('hops') or [])
    if kind in ('reach', 'unreach'):
        return 'reply' if kind == 'reach' else 'no reply'
    if kind == 'address':
        return '%s on %s' % (probe.get('address'), probe.get('dev'))
    return kind


def evaluate(probe, observed):
    """(passed, expected_text, observed_text, reason) for one probe and its observation."""
    kind = probe['kind']
    err = observed.get('error')
    if observed.get('fatal'):
        return False, _expected(probe), 'error: %s' % err, err
    if kind == 'path':
        expected = list(probe.get('hops') or [])
        hops = observed.get('hops') or []
        text = ' '.join(h['address'] + (' ' + h['flag'] if h.get('flag') else '') for h in hops)
        if err:
            return False, ' '.join(expected), text or err, err
        got = [h['address'] for h in hops]
        reached = bool(hops) and hops[-1].get('reached', False)
        if got == expected and (reached or not expected):
            return True, ' '.join(expected), text, ''
        for n, want in enumerate(expected):
            have = got[n] if n < len(got) else 'nothing'
            if have != want:
                return False, ' '.join(expected), text, \
                    'hop %d: expected %s, observed %s' % (n + 1, want, have)
        if len(got) > len(expected):
            return False, ' '.join(expected), text, \
                'hop %d: expected none, observed %s' % (len(expected) + 1, got[len(expected)])
        return False, ' '.join(expected), text, 'target %s did not answer' % probe['target']
    if kind in ('reach', 'unreach'):
        reply = observed.get('reply')
        text = 'reply from %s' % reply if reply else (err or 'no reply')
        want = kind == 'reach'
        passed = bool(reply) == want
        expected = 'reply' if want else 'no reply'
        return passed, expected, text, '' if passed else 'expected %s, observed %s' % (expected, text)
    if kind == 'http':
        status = probe.get('status', 200)
        body = probe.get('body')
        expected = 'HTTP %s' % status + (' containing %r' % body if body else '')
        if err:
            return False, expected, err, err
        text = 'HTTP %s, %d bytes' % (observed['status'], observed['length'])
        passed = observed['status'] == status and (not body or body in observed['body'])
        return passed, expected, text, '' if passed else 'expected %s, observed %s' % (expected, text)
    if kind == 'route':
        expected = 'dev %s' % probe.get('dev') if probe.get('dev') else 'any dev'
        if probe.get('gateway') is not None:
            expected += ' via %s' % probe['gateway'] if probe['gateway'] else ' (connected)'
        forbid = probe.get('forbid_dev') or []
        if forbid:
            expected += ', never ' + ','.join(forbid)
        if err:
            return False, expected, err, err
        route = observed.get('route') or {}
        text = 'dev %s' % route.get('dev') + (' via %s' % route['gateway'] if route.get('gateway')
                                              else ' (connected)')
        reasons = []
        if probe.get('dev') and route.get('dev') != probe['dev']:
            reasons.append('leaves via %s, not %s' % (route.get('dev'), probe['dev']))
        if probe.get('gateway') is not None and (route.get('gateway') or '') != probe['gateway']:
            reasons.append('gateway %s, not %s' % (route.get('gateway') or 'none',
                                                   probe['gateway'] or 'none'))
        if route.get('dev') in forbid:
            reasons.append('uses forbidden dev %s' % route.get('dev'))
        return not reasons, expected, text, '; '.join(reasons)
    if kind == 'address':
        expected = '%s on %s' % (probe['address'], probe['dev'])
        if err:
            return False, expected, err, err
        have = observed.get('addresses') or []
        text = ', '.join(have) or 'no address'
        passed = probe['address'] in have
        return passed, expected, text, '' if passed else 'expected %s, observed %s' % (expected, text)
    raise ValueError('unknown probe kind %r' % kind)


# ---- namespaces ----------------------------------------------------------------------------

_libc = None


def _setns(fd):
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


class InNetns(object):
    """Context manager: the calling thread enters /run/netns/NAME and comes back after."""

    def __init__(self, name):
        self.name = name
        self.home = None

    def __enter__(self):
        if not self.name:
            return self
        path = os.path.join('/run/netns', self.name)
        try:
            target = os.open(path, os.O_RDONLY)
        except OSError as e:
            raise ProbeError('network namespace %s: %s' % (self.name, e.strerror))
        self.home = os.open('/proc/thread-self/ns/net', os.O_RDONLY)
        try:
            _setns(target)
        except OSError as e:
            os.close(self.home)
            raise ProbeError('cannot enter network namespace %s: %s' % (self.name, e.strerror))
        finally:
            os.close(target)
        return self

    def __exit__(self, *exc):
        if self.home is not None:
            try:
                _setns(self.home)  # a thread must never stay in a probe's namespace
            finally:
                os.close(self.home)


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


def trace(target, max_hops, wait, dev=None):
    """The hops towards target, one probe per TTL, until it answers or a router refuses."""
    hops = []
    for ttl in range(1, max_hops + 1):
        err = trace_hop(target, ttl, wait, dev)
        if err is not None and err['origin'] == SO_EE_ORIGIN_LOCAL and err.get('message'):
            hops.append(dict(address='*', flag='!%s' % err['message'].replace(' ', '_'),
                             reached=False))
            break
        address, flag, final = classify_hop(err, target)
        hops.append(dict(address=address, flag=flag, reached=final and not flag))
        if final:
            break
    return hops


def ping(target, wait, dev=None):
    """One ICMP echo; returns (reply source or None, error text or None)."""
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
            left = deadline - time.monotonic()
            if left <= 0:
                return None, error
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


def ip_json(ip_bin, netns, args):
    argv = [ip_bin, '-j'] + (['-n', netns] if netns else []) + list(args)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, LC_ALL='C'))
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise ProbeError('ip %s: %s' % (' '.join(args), err.decode('utf-8', 'replace').strip()))
    out = out.strip()
    return json.loads(out) if out else []


def observe(probe, wait, ip_bin):
    """Runs one probe once, in the calling thread; returns the raw observation."""
    kind = probe['kind']
    netns = probe.get('netns')
    try:
        if kind == 'route':
            return dict(route=select_route(ip_json(ip_bin, netns, ['route', 'get', probe['target']])))
        if kind == 'address':
            links = ip_json(ip_bin, netns, ['-4', 'addr', 'show', 'dev', probe['dev']])
            return dict(addresses=['%s/%s' % (a['local'], a['prefixlen'])
                                   for link in links for a in link.get('addr_info', [])])
        with InNetns(netns):
            if kind == 'path':
                return dict(hops=trace(probe['target'], probe['max_hops'], wait,
                                       probe.get('bind_dev')))
            if kind in ('reach', 'unreach'):
                reply, error = ping(probe['target'], wait, probe.get('bind_dev'))
                return dict(reply=reply, error=None if reply else error)
            if kind == 'http':
                status, body = http_get(probe['target'], probe.get('port') or 80,
                                        probe.get('url_path') or '/', wait)
                return dict(status=status, length=len(body), body=body[:4096])
    except ProbeError as e:
        # The probe could not even be set up (no such namespace or device): it proves nothing,
        # not even unreachability.
        return dict(error=str(e), fatal=True)
    except (OSError, IOError) as e:
        fatal = e.errno in (errno.ENODEV, errno.ENOENT, errno.EPERM, errno.EACCES, errno.EINVAL)
        return dict(error=getattr(e, 'strerror', None) or str(e), fatal=fatal)
    except Exception as e:  # http.client raises its own exception types
        return dict(error='%s: %s' % (type(e).__name__, e))
    raise ValueError('unknown probe kind %r' % kind)


def run_probe(probe, wait, retries, retry_delay, ip_bin):
    """Observes until the expectation holds or the retries are used up (a new route or ARP
    entry can take a moment); returns the result record."""
    start = time.monotonic()
    attempts = 0
    while True:
        attempts += 1
        observed = observe(probe, wait, ip_bin)
        passed, expected, text, reason = evaluate(probe, observed)
        if passed or attempts > retries:
            break
        time.sleep(retry_delay)
    result = dict(name=probe['name'], kind=probe['kind'], netns=probe.get('netns'),
                  target=probe.get('target'), passed=passed, expected=expected, observed=text,
                  reason=reason, attempts=attempts,
                  duration=round(time.monotonic() - start, 3))
    if probe['kind'] == 'path':
        result['hops'] = [h['address'] for h in observed.get('hops') or []]
    if probe['kind'] == 'http' and 'body' in observed:
        result['body'] = observed['body'][:200]
    return result


def run_probes(probes, wait, retries, retry_delay, workers, ip_bin):
    """Runs all probes concurrently (at most ``workers`` at a time); results in input order.

    Path probes run first, on their own: routers rate-limit the ICMP errors they send
    (about one per second and peer), and a concurrent ping to the same broken destination
    would take the one "network unreachable" that shows where a path ends."""
    results = [None] * len(probes)
    gate = threading.Semaphore(max(1, workers))

    def work(n, probe):
        with gate:
            try:
                results[n] = run_probe(probe, wait, retries, retry_delay, ip_bin)
            except Exception as e:  # never lose a result to a bug in one probe
                results[n] = dict(name=probe['name'], kind=probe['kind'], passed=False,
                                  netns=probe.get('netns'), target=probe.get('target'),
                                  expected='', observed='internal error', attempts=1,
                                  reason='%s: %s' % (type(e).__name__, e), duration=0)

    for wave in (True, False):
        threads = [threading.Thread(target=work, args=(n, p)) for n, p in enumerate(probes)
                   if (p['kind'] == 'path') == wave]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return results

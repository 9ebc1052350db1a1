# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""Cluster DNS as dnsmasq serves it, the pods' resolv.conf, and a minimal DNS client.

- ``cluster_records``: the names kube-dns answers for Services and their endpoint pods
  (``<svc>.<ns>.svc.<domain>`` -> clusterIP; ``<a-b-c-d>.<svc>.<ns>.svc.<domain>`` -> pod IP,
  as in seed 002; ``<a-b-c-d>.<ns>.pod.<domain>``; SRV for named ports).
- ``dnsmasq_conf``: a dnsmasq configuration serving those names and their reverse names
  (``10.96.0.10`` -> ``kube-dns.kube-system.svc.cluster.local``), authoritative for the
  cluster domain and the reverse zones of the service and cluster CIDRs, forwarding the rest
  only to the ``upstream`` servers given (none: refused, never forwarded off the machine).
- ``pod_resolv_conf``: the resolv.conf kubelet writes for a ClusterFirst pod.
- ``query``: one DNS question over UDP, answer parsed (for checks and tests; no dig needed).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import random
import socket
import struct

from ansible_collections.k8slab.podnet.plugins.module_utils.kubeproxy import (
    CLUSTER_DOMAIN, SERVICE_CIDR, endpoints, pod_ip)

QTYPES = {'A': 1, 'PTR': 12, 'SRV': 33}


def dashed(ip):
    """``10.244.2.15`` -> ``10-244-2-15`` (the pod part of a pod's DNS name)."""
    return str(ip).replace('.', '-')


def pod_resolv_conf(namespace, nameserver='10.96.0.10', domain=CLUSTER_DOMAIN):
    """The resolv.conf kubelet writes for a pod in ``namespace`` (dnsPolicy ClusterFirst)."""
    return ('search %s.svc.%s svc.%s %s\nnameserver %s\noptions ndots:5\n'
            % (namespace, domain, domain, domain, nameserver))


def reverse_zones(cidr):
    """The ``in-addr.arpa`` zones (whole octets) covering an IPv4 ``cidr``:
    10.96.0.0/12 -> 96.10 ... 111.10.in-addr.arpa."""
    net = ipaddress.ip_network(str(cidr))
    bits = max(8, min(24, (net.prefixlen + 7) // 8 * 8))
    if net.prefixlen < bits:
        subs = list(net.subnets(new_prefix=bits))
    else:
        subs = [net.supernet(new_prefix=bits) if net.prefixlen > bits else net]
    zones = []
    for sub in subs:
        octets = str(sub.network_address).split('.')[:bits // 8]
        zones.append('.'.join(reversed(octets)) + '.in-addr.arpa')
    return zones


def cluster_records(services, pods, domain=CLUSTER_DOMAIN):
    """Records for normalized ``services`` (see kubeproxy.normalize_services) and ``pods``.

    Returns ``{'host': [(name, ip)], 'address': [(name, ip)], 'srv': [(name, target, port)]}``:
    ``host`` names get A and PTR records (services, and each endpoint pod's name under the
    first service that selects it, so every IP has one reverse name), ``address`` names A only.
    """
    host, address, srv, ptr_done = [], [], [], set()
    for svc in sorted(services, key=lambda s: (s['namespace'], s['name'])):
        fqdn = '%s.%s.svc.%s' % (svc['name'], svc['namespace'], domain)
        host.append((fqdn, svc['clusterIP']))
        for port in svc['ports']:
            if port['name']:
                srv.append(('_%s._%s.%s' % (port['name'], port['protocol'].lower(), fqdn),
                            fqdn, port['port']))
        for ep in endpoints(svc, pods):
            name = '%s.%s' % (dashed(ep['ip']), fqdn)
            (address if ep['ip'] in ptr_done else host).append((name, ep['ip']))
            ptr_done.add(ep['ip'])
    for pod in pods or []:
        ip = pod_ip(pod)
        if ip:
            address.append(('%s.%s.pod.%s' % (dashed(ip), pod.get('namespace', 'default'), domain),
                            ip))
    return {'host': host, 'address': sorted(set(address)), 'srv': srv}


def dnsmasq_conf(records, domain=CLUSTER_DOMAIN, zones=(), upstream=(), ttl=5, extra=()):
    """dnsmasq configuration text for ``records`` (from ``cluster_records`` or
    ``{'host': [(name, ip)]}``); ``zones`` are answered locally besides ``domain`` (unknown names
    there get NXDOMAIN at once); other names go to ``upstream`` (``server=``) or, with none,
    are refused. ``extra`` lines are appended (listen address, pid-file, ...)."""
    lines = ['# k8slab.podnet: generated, do not edit', 'no-resolv', 'no-hosts',
             'local-ttl=%d' % ttl, 'local=/%s/' % domain]
    lines += ['local=/%s/' % z for z in zones]
    lines += ['server=%s' % s for s in upstream]
    lines += ['host-record=%s,%s' % r for r in records.get('host', [])]
    lines += ['address=/%s/%s' % r for r in records.get('address', [])]
    lines += ['srv-host=%s,%s,%d' % r for r in records.get('srv', [])]
    lines += list(extra)
    return '\n'.join(lines) + '\n'


def cluster_dnsmasq_conf(services, pods, domain=CLUSTER_DOMAIN, service_cidr=SERVICE_CIDR,
                         cluster_cidr='10.244.0.0/16', upstream=(), ttl=5):
    """The DNS pod's dnsmasq.conf: cluster records, authoritative for the cluster domain and
    the reverse zones of both CIDRs; logs to stderr (the container log); no pid file."""
    zones = reverse_zones(service_cidr) + (reverse_zones(cluster_cidr) if cluster_cidr else [])
    return dnsmasq_conf(cluster_records(services, pods, domain), domain, zones, upstream, ttl,
                        extra=['log-facility=-', 'pid-file='])


def _qname(name):
    return b''.join(struct.pack('B', len(p)) + p.encode('ascii') for p in name.rstrip('.').split('.')) + b'\0'


def _read_name(data, off):
    labels, jumped, end = [], False, off
    while True:
        n = data[off]
        if n & 0xC0 == 0xC0:
            if not jumped:
                end = off + 2
            off, jumped = struct.unpack('>H', data[off:off + 2])[0] & 0x3FFF, True
            continue
        if n == 0:
            return '.'.join(labels), (end if jumped else off + 1)
        labels.append(data[off + 1:off + 1 + n].decode('ascii'))
        off += 1 + n


def query(server, name, qtype='A', port=53, timeout=2.0):
    """Ask ``server`` one question over UDP.

    Returns ``{'rcode': int (0 NOERROR, 3 NXDOMAIN, 5 REFUSED), 'answers': [str]}`` with A
    answers as addresses, PTR as names, SRV as ``"port target"``. Raises socket.timeout/OSError.
    """
    qid = random.randint(0, 0xFFFF)
    packet = struct.pack('>HHHHHH', qid, 0x0100, 1, 0, 0, 0) + _qname(name) + struct.pack(
        '>HH', QTYPES[qtype], 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        s.sendto(packet, (server, port))
        while True:
            data = s.recv(4096)
            if struct.unpack('>H', data[:2])[0] == qid:
                break
    finally:
        s.close()
    rcode = data[3] & 0x0F
    qd, an = struct.unpack('>HH', data[4:8])
    off = 12
    for dummy in range(qd):
        off = _read_name(data, off)[1] + 4
    answers = []
    for dummy in range(an):
        off = _read_name(data, off)[1]
        rtype, _cls, _ttl, rdlen = struct.unpack('>HHIH', data[off:off + 10])
        off += 10
        rdata = data[off:off + rdlen]
        if rtype == 1:
            answers.append(socket.inet_ntoa(rdata))
        elif rtype == 12:
            answers.append(_read_name(data, off)[0])
        elif rtype == 33:
            answers.append('%d %s' % (struct.unpack('>H', rdata[4:6])[0], _read_name(data, off + 6)[0]))
        off += rdlen
    return {'rcode': rcode, 'answers': answers}

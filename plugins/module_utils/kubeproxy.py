# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""Services as data and the iptables rules kube-proxy's iptables mode writes for them.

Pure functions, no I/O (k8slab.podnet.kube_proxy applies the result with
plugins/module_utils/iptables.py):

- ``normalize_services``: validate the services a user writes and allocate what is not given
  (clusterIP in the service CIDR, nodePort in the NodePort range), never twice.
- ``endpoints``: the ready pods a service's selector matches, with their IPs.
- ``proxy_rules``: the ``nat`` and ``filter`` chains of kube-proxy's iptables mode.

The rule text follows the listings of seed 002 (kube-proxy of the Kubernetes 1.1x era), as
``iptables-save`` prints it: KUBE-SERVICES ``! -s <cluster CIDR> ... -j KUBE-MARK-MASQ`` then
``-j KUBE-SVC-<hash>`` per cluster IP (comment ``ns/name:port cluster IP``), KUBE-NODEPORTS
(comment ``ns/name:port``), KUBE-SVC chains with ``-m statistic --mode random --probability``
written with 5 decimals (iptables stores a 31-bit fixed-point value and prints 11 decimals, so
1/3 reads ``0.33332999982``), and KUBE-SEP chains (hairpin mark, then DNAT). KUBE-POSTROUTING
is today's kube-proxy's (RETURN unless marked, clear the mark, ``MASQUERADE --random-fully``).
A service port without endpoints gets kube-proxy's REJECT in the filter table.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import ipaddress
import re

SERVICE_CIDR = '10.96.0.0/12'
NODE_PORT_RANGE = (30000, 32767)
CLUSTER_DOMAIN = 'cluster.local'
MASQ_MARK = '0x4000/0x4000'
TYPES = ('ClusterIP', 'NodePort')
PROTOCOLS = ('TCP', 'UDP')
# DNS-1035 label (Service names), DNS-1123 label (namespaces, port names).
_DNS1035 = re.compile(r'^[a-z]([-a-z0-9]*[a-z0-9])?$')
_DNS1123 = re.compile(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')
SERVICE_KEYS = ('namespace', 'name', 'type', 'clusterIP', 'ports', 'selector')
PORT_KEYS = ('name', 'protocol', 'port', 'targetPort', 'nodePort')


class KubeProxyError(Exception):
    """Bad input; ``errors`` lists every problem found (the message joins them)."""

    def __init__(self, errors):
        self.errors = list(errors)
        Exception.__init__(self, '; '.join(self.errors))


def _hash16(text):
    return base64.b32encode(hashlib.sha256(text.encode('utf-8')).digest()).decode('ascii')[:16]


def service_port_name(namespace, name, port_name):
    """kube-proxy's ServicePortName string: ``ns/name:port`` (``ns/name:`` for an unnamed port)."""
    return '%s/%s:%s' % (namespace, name, port_name or '')


def svc_chain(spn, protocol):
    """``KUBE-SVC-`` + first 16 chars of base32(SHA-256(spn + lower-case protocol)), as
    kube-proxy's servicePortChainName. ``svc_chain('test001/app-svc-clusterip:', 'TCP')`` is
    ``KUBE-SVC-F657HDVWWTO5ELQA`` (seed 002)."""
    return 'KUBE-SVC-' + _hash16(spn + protocol.lower())


def sep_chain(spn, protocol, endpoint):
    """``KUBE-SEP-`` + the same hash over spn + protocol + ``ip:port`` (servicePortEndpointChainName)."""
    return 'KUBE-SEP-' + _hash16(spn + protocol.lower() + endpoint)


def probability_text(p):
    """How iptables-save prints a statistic probability that kube-proxy wrote as ``%0.5f``:
    iptables keeps round(p * 2^31) and prints it back with 11 decimals."""
    fixed = int(float('%0.5f' % p) * 0x80000000 + 0.5)
    return '%.11f' % (fixed / float(0x80000000))


def _int(value):
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, str) and not value.isdigit():
        raise ValueError
    return int(value)


def _stable_offset(key, size):
    return int(hashlib.sha256(key.encode('utf-8')).hexdigest(), 16) % size


def pod_ip(pod):
    """The pod's address without prefix (``10.244.2.3/24`` and ``10.244.2.3`` both work), or None."""
    ip = pod.get('ip')
    return str(ip).split('/', maxsplit=1)[0] if ip else None


def pod_ready(pod):
    """``ready`` may be a bool or kubectl's ``n/m`` (ready when n == m > 0); default True."""
    r = pod.get('ready', True)
    if isinstance(r, str) and '/' in r:
        n, m = r.split('/', 1)
        return n == m and n not in ('', '0')
    return bool(r)


def pod_ports(pod):
    """The set of ports the pod's containers serve, or None when the pod does not say.
    From ``ports`` (ints or ``{containerPort|port}``) or ``containers[].port``."""
    if 'ports' in pod:
        out = set()
        for p in pod['ports'] or []:
            out.add(int(p.get('containerPort', p.get('port')) if isinstance(p, dict) else p))
        return out
    if 'containers' in pod:
        return set(int(c['port']) for c in pod['containers'] or [] if c.get('port') is not None)
    return None


def selects(service, pod):
    """The service's selector matches the pod (same namespace, every label equal). An empty
    selector selects nothing (Kubernetes then manages no endpoints)."""
    sel = service.get('selector') or {}
    labels = pod.get('labels') or {}
    return (bool(sel) and pod.get('namespace', 'default') == service['namespace']
            and all(labels.get(k) == v for k, v in sel.items()))


def normalize_services(services, pods=None, service_cidr=SERVICE_CIDR,
                       node_port_range=NODE_PORT_RANGE):
    """Validate services and fill in defaults and allocations.

    ``services``: list of dicts as a user writes them: ``namespace`` (default ``default``),
    ``name`` (DNS-1035 label), ``type`` (ClusterIP|NodePort, default ClusterIP), ``clusterIP``
    (in ``service_cidr``; allocated when missing), ``selector`` (label dict), ``ports``: list of
    ``{name, protocol (TCP|UDP, default TCP), port, targetPort (default port), nodePort
    (NodePort only, in ``node_port_range``; allocated when missing)}``; port names are
    required when there are several and unique within the service.
    ``pods``: optional list of pods (see ``endpoints``); when given, every targetPort must be
    served by each pod the selector matches whose ports are known.

    Allocation is deterministic (a hash of ``ns/name`` probed upwards), so every node computes
    the same addresses; values given by the user are reserved first.

    Returns a new list of services with keys ``namespace, name, type, clusterIP, selector,
    ports`` (each port with all five keys). Raises KubeProxyError naming every bad value.
    """
    errors = []
    net = ipaddress.ip_network(service_cidr)
    lo, hi = node_port_range
    out, seen, ips, nps = [], set(), {}, {}
    for i, s in enumerate(services or []):
        if not isinstance(s, dict):
            errors.append('services[%d] must be a dict, got %r' % (i, s))
            continue
        unknown = sorted(set(s) - set(SERVICE_KEYS))
        ns = s.get('namespace', 'default')
        name = s.get('name')
        where = 'service %s/%s' % (ns, name)
        if unknown:
            errors.append('%s: unknown keys %s (allowed: %s)' % (where, ', '.join(unknown),
                                                                 ', '.join(SERVICE_KEYS)))
        if not isinstance(name, str) or not _DNS1035.match(name) or len(name) > 63:
            errors.append('%s: name %r is not a DNS-1035 label (lower-case letters, digits and '
                          '"-", starting with a letter, ending with a letter or digit, at most '
                          '63 characters)' % (where, name))
        if not isinstance(ns, str) or not _DNS1123.match(ns) or len(ns) > 63:
            errors.append('%s: namespace %r is not a DNS-1123 label' % (where, ns))
        if (ns, name) in seen:
            errors.append('%s is defined twice' % where)
        seen.add((ns, name))
        stype = s.get('type', 'ClusterIP')
        if stype not in TYPES:
            errors.append('%s: type %r is not one of %s' % (where, stype, ', '.join(TYPES)))
        sel = s.get('selector') or {}
        if not isinstance(sel, dict) or not all(isinstance(v, str) for v in sel.values()):
            errors.append('%s: selector %r must be a dict of label: string' % (where, sel))
            sel = {}
        svc = {'namespace': ns, 'name': name, 'type': stype, 'clusterIP': None,
               'selector': dict(sel), 'ports': []}
        cip = s.get('clusterIP')
        if cip is not None:
            try:
                addr = ipaddress.ip_address(str(cip))
                if addr not in net or addr in (net.network_address, net.broadcast_address):
                    raise ValueError('not a usable address of the service CIDR')
            except ValueError:
                errors.append('%s: clusterIP %r is not inside the service CIDR %s'
                              % (where, cip, service_cidr))
            else:
                if str(addr) in ips:
                    errors.append('%s: clusterIP %s is already taken by %s'
                                  % (where, addr, ips[str(addr)]))
                else:
                    ips[str(addr)] = where
                    svc['clusterIP'] = str(addr)
        ports = s.get('ports') or []
        if not isinstance(ports, list) or not ports:
            errors.append('%s: ports must be a non-empty list' % where)
            ports = []
        names, keys = set(), set()
        for j, p in enumerate(ports):
            if not isinstance(p, dict):
                errors.append('%s: ports[%d] must be a dict, got %r' % (where, j, p))
                continue
            bad = sorted(set(p) - set(PORT_KEYS))
            if bad:
                errors.append('%s: ports[%d] has unknown keys %s' % (where, j, ', '.join(bad)))
            pname = p.get('name') or ''
            if pname and (not isinstance(pname, str) or not _DNS1123.match(pname) or len(pname) > 63):
                errors.append('%s: port name %r is not a DNS-1123 label' % (where, pname))
            if pname in names:
                errors.append('%s: port name %r is used twice' % (where, pname))
            names.add(pname)
            if not pname and len(ports) > 1:
                errors.append('%s: ports[%d] needs a name (a service with several ports must '
                              'name each)' % (where, j))
            proto = p.get('protocol', 'TCP')
            if proto not in PROTOCOLS:
                errors.append('%s: port %r protocol %r is not one of %s'
                              % (where, pname, proto, ', '.join(PROTOCOLS)))
            port = {'name': pname, 'protocol': proto, 'port': None, 'targetPort': None,
                    'nodePort': None}
            for key in ('port', 'targetPort'):
                value = p.get(key, p.get('port') if key == 'targetPort' else None)
                try:
                    value = _int(value)
                    if not 1 <= value <= 65535:
                        raise ValueError
                    port[key] = value
                except (TypeError, ValueError):
                    errors.append('%s: port %r %s %r is not a port number 1-65535'
                                  % (where, pname, key, value))
            if (port['port'], proto) in keys:
                errors.append('%s: port %s/%s is listed twice' % (where, port['port'], proto))
            keys.add((port['port'], proto))
            np_ = p.get('nodePort')
            if np_ is not None:
                if stype != 'NodePort':
                    errors.append('%s: nodePort %r given but type is %s' % (where, np_, stype))
                else:
                    try:
                        np_ = _int(np_)
                        if not lo <= np_ <= hi:
                            raise ValueError
                    except (TypeError, ValueError):
                        errors.append('%s: nodePort %r is outside the NodePort range %d-%d'
                                      % (where, np_, lo, hi))
                    else:
                        key = (np_, proto)
                        if key in nps:
                            errors.append('%s: nodePort %d/%s is already taken by %s'
                                          % (where, np_, proto, nps[key]))
                        else:
                            nps[key] = where
                            port['nodePort'] = np_
            svc['ports'].append(port)
        out.append(svc)

    if pods is not None:
        for svc in out:
            for pod in pods:
                served = pod_ports(pod)
                if served is None or not selects(svc, pod):
                    continue
                for port in svc['ports']:
                    if port['targetPort'] is not None and port['targetPort'] not in served:
                        errors.append(
                            'service %s/%s: targetPort %s (port %s/%s) is served by no container '
                            'of pod %s/%s (its ports: %s)'
                            % (svc['namespace'], svc['name'], port['targetPort'], port['port'],
                               port['protocol'], pod.get('namespace', 'default'), pod.get('name'),
                               ', '.join(str(x) for x in sorted(served)) or 'none'))
    if errors:
        raise KubeProxyError(errors)

    # Allocate after every given value is reserved, so a given value always wins.
    size = net.num_addresses - 2
    for svc in out:
        if svc['clusterIP'] is None:
            key = '%s/%s' % (svc['namespace'], svc['name'])
            start = _stable_offset(key, size)
            for k in range(size):
                addr = str(net.network_address + 1 + (start + k) % size)
                if addr not in ips:
                    ips[addr] = key
                    svc['clusterIP'] = addr
                    break
        for port in svc['ports']:
            if svc['type'] == 'NodePort' and port['nodePort'] is None:
                key = service_port_name(svc['namespace'], svc['name'], port['name'])
                span = hi - lo + 1
                start = _stable_offset(key, span)
                for k in range(span):
                    cand = (lo + (start + k) % span, port['protocol'])
                    if cand not in nps:
                        nps[cand] = key
                        port['nodePort'] = cand[0]
                        break
                else:
                    raise KubeProxyError(['%s: no free nodePort in %d-%d' % (key, lo, hi)])
    return out


def endpoints(service, pods):
    """Endpoint pods of a normalized service: the ready pods in its namespace whose labels
    match its selector and that have an IP, on any node.

    ``pods``: list of ``{name, namespace (default "default"), labels, ip (with or without
    /prefix), ready (bool or "n/m", default True), ports or containers}``.
    Returns ``[{'name', 'namespace', 'ip'}]`` sorted by address.
    """
    eps = [{'name': p.get('name'), 'namespace': p.get('namespace', 'default'), 'ip': pod_ip(p)}
           for p in pods or [] if selects(service, p) and pod_ready(p) and pod_ip(p)]
    return sorted(eps, key=lambda e: ipaddress.ip_address(e['ip']))


def _proto(p):
    return '-p %s -m %s' % (p.lower(), p.lower())


def proxy_rules(services, pods, cluster_cidr=None, random_fully=True):
    """kube-proxy's iptables-mode chains for normalized ``services`` and ``pods``.

    Returns ``(tables, report)``: ``tables`` is ``{'nat': view, 'filter': view}`` with
    ``view = {'chains': {chain: [spec]}, 'jumps': {builtin chain: [spec]}}`` (the shape
    plugins/module_utils/iptables.py keeps); ``report`` lists per service port
    ``{service, port, protocol, clusterIP, nodePort, chain, endpoints: [{pod, ip, chain}],
    status: "ok"|"no endpoints"}``. ``cluster_cidr`` (the pod network) adds kube-proxy's
    ``! -s <cluster_cidr> ... -j KUBE-MARK-MASQ`` per cluster IP, as in seed 002.
    """
    nat = {'KUBE-SERVICES': [], 'KUBE-NODEPORTS': [], 'KUBE-MARK-MASQ': [],
           'KUBE-POSTROUTING': []}
    filt = {'KUBE-SERVICES': []}
    report = []
    for svc in sorted(services, key=lambda s: (s['namespace'], s['name'])):
        eps = endpoints(svc, pods)
        for port in sorted(svc['ports'], key=lambda p: (p['name'], p['protocol'])):
            spn = service_port_name(svc['namespace'], svc['name'], port['name'])
            proto = port['protocol']
            svc_name = svc_chain(spn, proto)
            dst = '-d %s/32 %s' % (svc['clusterIP'], '-p ' + proto.lower())
            match = '-m comment --comment "%s cluster IP" -m %s --dport %d' % (
                spn, proto.lower(), port['port'])
            entry = {'service': '%s/%s' % (svc['namespace'], svc['name']), 'port': port['name'],
                     'protocol': proto, 'clusterIP': svc['clusterIP'],
                     'nodePort': port['nodePort'], 'chain': None, 'endpoints': [],
                     'status': 'ok' if eps else 'no endpoints'}
            report.append(entry)
            if not eps:
                filt['KUBE-SERVICES'].append(
                    '%s -m comment --comment "%s has no endpoints" -m %s --dport %d '
                    '-j REJECT --reject-with icmp-port-unreachable'
                    % (dst, spn, proto.lower(), port['port']))
                if port['nodePort']:
                    filt['KUBE-SERVICES'].append(
                        '-p %s -m comment --comment "%s has no endpoints" -m addrtype '
                        '--dst-type LOCAL -m %s --dport %d -j REJECT --reject-with '
                        'icmp-port-unreachable' % (proto.lower(), spn, proto.lower(),
                                                   port['nodePort']))
                continue
            entry['chain'] = svc_name
            if cluster_cidr:
                nat['KUBE-SERVICES'].append('! -s %s %s %s -j KUBE-MARK-MASQ'
                                            % (cluster_cidr, dst, match))
            nat['KUBE-SERVICES'].append('%s %s -j %s' % (dst, match, svc_name))
            if port['nodePort']:
                np_match = '-p %s -m comment --comment "%s" -m %s --dport %d' % (
                    proto.lower(), spn, proto.lower(), port['nodePort'])
                nat['KUBE-NODEPORTS'].append(np_match + ' -j KUBE-MARK-MASQ')
                nat['KUBE-NODEPORTS'].append('%s -j %s' % (np_match, svc_name))
            nat[svc_name] = []
            n = len(eps)
            for i, ep in enumerate(eps):
                endpoint = '%s:%d' % (ep['ip'], port['targetPort'])
                sep = sep_chain(spn, proto, endpoint)
                entry['endpoints'].append({'pod': ep['name'], 'ip': ep['ip'], 'chain': sep})
                if i < n - 1:
                    nat[svc_name].append('-m statistic --mode random --probability %s -j %s'
                                         % (probability_text(1.0 / (n - i)), sep))
                else:
                    nat[svc_name].append('-j ' + sep)
                nat[sep] = ['-s %s/32 -j KUBE-MARK-MASQ' % ep['ip'],
                            '%s -j DNAT --to-destination %s' % (_proto(proto), endpoint)]
    nat['KUBE-SERVICES'].append(
        '-m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule '
        'in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS')
    nat['KUBE-MARK-MASQ'] = ['-j MARK --set-xmark %s' % MASQ_MARK]
    # --xor-mark 0x4000 reads back from iptables-save as --set-xmark 0x4000/0x0.
    nat['KUBE-POSTROUTING'] = [
        '-m mark ! --mark %s -j RETURN' % MASQ_MARK,
        '-j MARK --set-xmark 0x4000/0x0',
        '-m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE'
        + (' --random-fully' if random_fully else ''),
    ]
    portals = '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES'
    new_portals = '-m conntrack --ctstate NEW ' + portals
    tables = {
        'nat': {'chains': nat, 'jumps': {
            'PREROUTING': [portals], 'OUTPUT': [portals],
            'POSTROUTING': ['-m comment --comment "kubernetes postrouting rules" '
                            '-j KUBE-POSTROUTING']}},
        'filter': {'chains': filt, 'jumps': {
            'INPUT': [new_portals], 'FORWARD': [new_portals], 'OUTPUT': [new_portals]}},
    }
    return tables, report

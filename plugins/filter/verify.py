# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""Filters of the verify role: derive the lab's checks, hand each node its probes, merge the
results into a report.

A check is data::

    {name: 'path node-2/client-2 -> node-1/httpd', kind: path|reach|unreach|http|route|address,
     source: 'node-2' | 'node-2/client-2',       # node, or pod of a node (node, netns derived)
     to: 'node-1/httpd' | 'node-1' | '192.168.56.11',  # as written
     target: '10.244.1.2',                       # resolved address (None: unresolved, + error)
     ...the expectation in k8slab.podnet.probe's terms: hops, bind_dev, dev, gateway, ...}

``verify_checks`` derives the default checks from the inventory (what the lab should be) and
resolves pod targets against the live host-local stores (which address each pod holds now).
Expectations come from the inventory, never from the live state, so a broken lab cannot make
its own checks pass.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re
import xml.etree.ElementTree as ET

from ansible.errors import AnsibleFilterError

from ansible_collections.k8slab.podnet.plugins.module_utils.probe import evaluate

KINDS = ('path', 'reach', 'unreach', 'http', 'route', 'address')
# The keys of a check that k8slab.podnet.probe understands.
PROBE_KEYS = ('name', 'kind', 'target', 'hops', 'max_hops', 'bind_dev', 'dev', 'gateway',
              'forbid_dev', 'address', 'port', 'url_path', 'status', 'body')


def _host(cidr, index=1):
    net = ipaddress.ip_network(str(cidr), strict=False)
    return str(net.network_address + index)


def _with_prefix(address, cidr):
    return '%s/%d' % (address, ipaddress.ip_network(str(cidr), strict=False).prefixlen)


class _Lab(object):
    """The inventory's view of the lab plus the live store, for resolving names."""

    def __init__(self, lab, facts):
        self.nodes = lab['nodes']
        # node_order: the nodes to verify (the play's, e.g. with --limit), in inventory order.
        self.order = [n for n in (lab.get('node_order') or sorted(self.nodes)) if n in self.nodes]
        self.pods = [p for p in lab.get('pods') or [] if p.get('node') in self.order]
        self.public = lab.get('public_iface', 'eth1')
        self.nat = lab.get('nat_iface', 'eth0')
        self.bridge = lab.get('cni_bridge', 'cni0')
        self.hostonly = lab.get('hostonly_cidr', '192.168.56.0/24')
        self.facts = facts or {}
        self._owners = {}

    def pods_on(self, node):
        return [p for p in self.pods if p['node'] == node]

    def gateway(self, node):
        """cni0's address on node: the first address of its pod CIDR (DESIGN.md §1)."""
        return _host(self.nodes[node]['pod_cidr'])

    def eth1(self, node):
        return str(self.nodes[node]['eth1_ip'])

    def pod_ip(self, node, pod):
        """The pod's address as the node's live host-local store records it, or None."""
        if node not in self._owners:
            owners = {}
            store = (self.facts.get(node) or {}).get('ipam') or {}
            for ip in sorted(store, key=ipaddress.ip_address, reverse=True):
                # The entry's pod (node_info maps sandbox ids to pods), else its container id.
                entry = store[ip]
                owners[entry.get('pod') or entry.get('container_id')] = ip  # lowest wins
            self._owners[node] = owners
        return self._owners[node].get(pod)


def _check(checks, lab, name, kind, source, target, resolved=None, **expect):
    """Appends one check. target is an address, a node (its eth1 address) or node/pod (the
    pod's address in the node's live store); a pod that is not in the store makes an
    unresolved check, reported as failed without probing. '@target' in hops is the target."""
    source = str(source)
    check = dict(name=name, kind=kind, source=source, node=source.split('/', 1)[0],
                 netns=source.split('/')[1] if '/' in source else None, to=target)
    address = resolved
    if address is None and target is not None:
        if '/' in str(target):
            node, pod = str(target).split('/', 1)
            address = lab.pod_ip(node, pod)
            if address is None:
                check['error'] = 'pod %s has no address in the host-local store of node %s' \
                    % (pod, node)
        elif target in lab.nodes:
            address = lab.eth1(target)
        elif kind != 'address':
            address = str(target)
    check['target'] = address
    if expect.get('hops'):
        # '@target' stands for the target's address (its name while unresolved).
        expect['hops'] = [(address or str(target)) if h == '@target' else h
                          for h in expect['hops']]
    check.update(expect)
    checks.append(check)


def verify_checks(lab, facts=None, options=None, extra=None):
    """The default checks of a lab, derived for every node, ordered node pair and pod.

    lab: {nodes: lab_nodes, node_order: [...], pods: lab_pods, public_iface, nat_iface,
    cni_bridge, hostonly_cidr}; facts: {node: k8slab.podnet.node_info result};
    options: nat_address (eth0's address on every node, '' to skip), nat_isolated (bool),
    outside_ip ('' to skip), http_port, http_body (str.format with {pod} and {node});
    extra: hand-written checks {name, kind, source, target, ...expectation}, resolved the same way.
    """
    if not isinstance(lab, dict) or not isinstance(lab.get('nodes'), dict):
        raise AnsibleFilterError('verify_checks: lab must be a dict with nodes (lab_nodes)')
    opts = dict(nat_address='10.0.2.15/24', nat_isolated=True, outside_ip='', http_port=80,
                http_body='pod {pod}')
    opts.update(options or {})
    L = _Lab(lab, facts)
    checks = []
    nodes = L.order
    prefix = ipaddress.ip_network(str(L.hostonly), strict=False).prefixlen

    # Every node's interfaces hold the inventory's addresses.
    for x in nodes:
        _check(checks, L, 'address %s %s %s' % (x, L.public, L.eth1(x)), 'address', x,
               L.public, dev=L.public, address='%s/%d' % (L.eth1(x), prefix))
        _check(checks, L, 'address %s %s %s' % (x, L.bridge, L.gateway(x)), 'address', x,
               L.bridge, dev=L.bridge,
               address=_with_prefix(L.gateway(x), L.nodes[x]['pod_cidr']))
        if opts['nat_address']:
            _check(checks, L, 'address %s %s %s' % (x, L.nat, opts['nat_address']), 'address',
                   x, L.nat, dev=L.nat, address=opts['nat_address'])
        # A pod's eth0 holds the address the store gave it.
        for pod in L.pods_on(x):
            ip = L.pod_ip(x, pod['name'])
            _check(checks, L, 'address %s/%s eth0 = store' % (x, pod['name']), 'address',
                   '%s/%s' % (x, pod['name']), 'eth0', dev='eth0',
                   address=_with_prefix(ip, L.nodes[x]['pod_cidr']) if ip else '(not in store)')
            if ip is None:
                checks[-1]['error'] = 'pod %s has no address in the host-local store of node %s' \
                    % (pod['name'], x)

    for x in nodes:
        for y in nodes:
            if x == y:
                continue
            # node -> node over the host-only network: one hop, as in the seed.
            _check(checks, L, 'path %s -> %s %s' % (x, y, L.public), 'path', x, L.eth1(y),
                   resolved=L.eth1(y), hops=[L.eth1(y)])
            if opts['nat_isolated']:
                _check(checks, L, 'unreach %s -> %s over %s' % (x, y, L.nat), 'unreach', x,
                       L.eth1(y), resolved=L.eth1(y), bind_dev=L.nat)

    # pod -> pod paths, one per ordered node pair (and within a node): seed results.
    for x in nodes:
        for y in nodes:
            target = _pick_target(L, y)
            if target is None:
                continue
            source = _pick_source(L, x, target)
            if source is None:
                continue
            if x == y:
                hops = ['@target']
            else:
                hops = [L.gateway(x), L.eth1(y), '@target']
            _check(checks, L, 'path %s/%s -> %s/%s' % (x, source['name'], y, target['name']),
                   'path', '%s/%s' % (x, source['name']), '%s/%s' % (y, target['name']),
                   hops=hops)

    # Every pod reaches a pod on every node (linear in pods).
    for pod in L.pods:
        for y in nodes:
            target = next((p for p in L.pods_on(y) if p['name'] != pod['name']), None)
            if target is None:
                continue
            _check(checks, L, 'reach %s/%s -> %s/%s' % (pod['node'], pod['name'], y,
                                                        target['name']),
                   'reach', '%s/%s' % (pod['node'], pod['name']), '%s/%s' % (y, target['name']))

    # Nodes reach the stand-in for the internet through eth0's NAT.
    if opts['outside_ip']:
        for x in nodes:
            _check(checks, L, 'reach %s -> outside %s over %s' % (x, opts['outside_ip'], L.nat),
                   'reach', x, opts['outside_ip'], resolved=opts['outside_ip'], bind_dev=L.nat)

    # httpd answers from its node and from a pod on every other node.
    for web in [p for p in L.pods if p.get('workload') == 'httpd']:
        body = str(opts['http_body']).format(pod=web['name'], node=web['node'])
        w = '%s/%s' % (web['node'], web['name'])
        _check(checks, L, 'http %s -> %s' % (web['node'], w), 'http', web['node'], w,
               port=int(opts['http_port']), body=body)
        for y in nodes:
            if y == web['node']:
                continue
            client = next(iter(L.pods_on(y)), None)
            if client:
                _check(checks, L, 'http %s/%s -> %s' % (y, client['name'], w), 'http',
                       '%s/%s' % (y, client['name']), w, port=int(opts['http_port']), body=body)

    # ip route get <pod ip> on every node: via eth1 and the owner's eth1 address, never eth0.
    for x in nodes:
        for y in nodes:
            target = _pick_target(L, y)
            if target is None:
                continue
            t = '%s/%s' % (y, target['name'])
            if x == y:
                _check(checks, L, 'route %s -> %s' % (x, t), 'route', x, t, dev=L.bridge,
                       gateway='', forbid_dev=[L.nat])
            else:
                _check(checks, L, 'route %s -> %s' % (x, t), 'route', x, t, dev=L.public,
                       gateway=L.eth1(y), forbid_dev=[L.nat])

    for c in extra or []:
        c = dict(c)
        try:
            name, kind, source = c.pop('name'), c.pop('kind'), c.pop('source')
        except KeyError as e:
            raise AnsibleFilterError('verify_checks: extra check %r has no %s' % (c, e))
        if kind not in KINDS:
            raise AnsibleFilterError('verify_checks: check %r: kind %r is not one of %s'
                                     % (name, kind, ', '.join(KINDS)))
        if str(source).split('/', 1)[0] not in L.nodes:
            raise AnsibleFilterError('verify_checks: check %r: source %r is not a node or '
                                     'node/pod of the lab' % (name, source))
        _check(checks, L, name, kind, source, c.pop('target', None), **c)

    seen, dups = set(), set()
    for c in checks:
        (dups if c['name'] in seen else seen).add(c['name'])
    dups = sorted(dups)
    if dups:
        raise AnsibleFilterError('verify_checks: check names must be unique: %s' % ', '.join(dups))
    return checks


def _pick_source(L, node, target):
    """The pod of node that path checks start from: a client rather than httpd when there is
    one (as in the seed), never the target itself."""
    pods = [p for p in L.pods_on(node) if p['name'] != target['name']]
    return next((p for p in pods if p.get('workload') != 'httpd'), pods[0] if pods else None)


def _pick_target(L, node):
    """The pod of node that cross-node checks aim at: httpd if it runs there (as in the
    seed), else the first pod."""
    pods = L.pods_on(node)
    return next((p for p in pods if p.get('workload') == 'httpd'), pods[0] if pods else None)


def verify_select(checks, kinds=None, only='', run_tags=None):
    """The checks to run: kinds listed (and, when the play runs with tags naming kinds, those
    kinds only), names matching the regular expression ``only``."""
    chosen = set(kinds or KINDS)
    tagged = set(run_tags or []) & set(KINDS)
    if tagged:
        chosen &= tagged
    pattern = re.compile(only) if only else None
    return [c for c in checks if c['kind'] in chosen and (not pattern or pattern.search(c['name']))]


def verify_probes(checks, node):
    """k8slab.podnet.probe ``probes`` for one node: its checks that can run."""
    probes = []
    for c in checks:
        if c.get('node') != node or c.get('error'):
            continue
        probe = dict((k, c[k]) for k in PROBE_KEYS if c.get(k) is not None)
        if c.get('netns'):
            probe['netns'] = c['netns']
        probes.append(probe)
    return probes


def verify_report(checks, results):
    """Checks merged with the probe results (a list of every node's ``results``), in check
    order. A check without a result failed: it could not be resolved or its node did not run."""
    by_name = {}
    for r in results or []:
        by_name[r['name']] = r
    report = []
    for c in checks:
        r = by_name.get(c['name'])
        row = dict(name=c['name'], kind=c['kind'], source=c['source'], target=c['to'],
                   address=c.get('target'))
        if r is None:
            row.update(passed=False, expected=_expected_text(c), observed='not probed',
                       reason=c.get('error') or 'node %s returned no result' % c['node'],
                       attempts=0, duration=0.0)
        else:
            row.update(passed=bool(r['passed']), expected=r.get('expected', ''),
                       observed=r.get('observed', ''), reason=r.get('reason', ''),
                       attempts=r.get('attempts', 1), duration=r.get('duration', 0.0))
            if 'hops' in r:
                row['hops'] = r['hops']
        if not row['passed']:
            # One line for the play's failure message: the check, expected and observed.
            row['failure'] = '%s: expected %s; observed %s' % (row['name'], row['expected'],
                                                               row['observed'])
            if row['reason'] and row['reason'] not in row['observed'] \
                    and not row['reason'].startswith('expected '):
                row['failure'] += ' (%s)' % row['reason']
        report.append(row)
    return report


def _expected_text(c):
    """The expectation as the probe module words it (for checks that never ran)."""
    probe = dict((k, c[k]) for k in PROBE_KEYS if c.get(k) is not None)
    probe.setdefault('status', 200)
    return evaluate(probe, {'error': 'not probed'})[1]


def verify_table(report, width=None):
    """One fixed-width text table: check, source, target, expected, observed, result."""
    head = ('check', 'source', 'target', 'expected', 'observed', 'result')
    rows = [(r['name'], r['source'], '%s%s' % (r['target'], ' (%s)' % r['address']
                                               if r.get('address') and r['address'] != r['target']
                                               else ''),
             r['expected'], r['observed'], 'PASS' if r['passed'] else 'FAIL')
            for r in report]
    widths = [max([len(head[i])] + [len(str(row[i])) for row in rows]) for i in range(6)]
    if width:
        widths = [min(w, int(width)) for w in widths]

    def line(cells):
        return '  '.join(str(c)[:widths[i]].ljust(widths[i]) for i, c in enumerate(cells)).rstrip()

    out = [line(head), line(['-' * w for w in widths])]
    out += [line(row) for row in rows]
    passed = sum(1 for r in report if r['passed'])
    out.append('%d checks: %d passed, %d failed' % (len(report), passed, len(report) - passed))
    return '\n'.join(out)


def verify_junit(report, suite='k8slab.podnet verify'):
    """The report as JUnit XML (one testcase per check, classname verify.<kind>), so CI
    systems list every path and probe."""
    failures = [r for r in report if not r['passed']]
    root = ET.Element('testsuites', name=suite, tests=str(len(report)),
                      failures=str(len(failures)))
    ts = ET.SubElement(root, 'testsuite', name=suite, tests=str(len(report)),
                       failures=str(len(failures)), errors='0', skipped='0',
                       time='%.3f' % max([float(r.get('duration') or 0) for r in report] or [0]))
    for r in report:
        case = ET.SubElement(ts, 'testcase', classname='verify.%s' % r['kind'], name=r['name'],
                             time='%.3f' % float(r.get('duration') or 0))
        target = r['target'] if not r.get('address') or r['address'] == r['target'] \
            else '%s (%s)' % (r['target'], r['address'])
        text = 'source: %s\ntarget: %s\nexpected: %s\nobserved: %s\nattempts: %s' % (
            r['source'], target, r['expected'], r['observed'], r.get('attempts'))
        if not r['passed']:
            failure = ET.SubElement(case, 'failure', type=r['kind'],
                                    message=r.get('reason') or 'failed')
            failure.text = text
        else:
            ET.SubElement(case, 'system-out').text = text
    return ET.tostring(root, encoding='unicode')


class FilterModule(object):
    def filters(self):
        return {
            'verify_checks': verify_checks,
            'verify_select': verify_select,
            'verify_probes': verify_probes,
            'verify_report': verify_report,
            'verify_table': verify_table,
            'verify_junit': verify_junit,
        }

# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""k8slab graph: a picture (SVG and PNG) of the lab as it is live, with the paths of the last
verification drawn on it - green where a hop passed, red at the hop that failed.

Reading (graph_data) uses only the standard library and the same live sources as `k8slab
status`; drawing (render) needs the `graphviz` Python package and Graphviz's `dot`. Services
come from SERVICE_READERS, functions (lab, node) -> [service]; today kube-proxy's iptables
rules (kube_proxy_services), read only when a node has KUBE-SVC-* chains.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import json
import os
import shlex
import subprocess
import sys

from ansible_collections.k8slab.podnet.plugins.module_utils.netns_lab import (
    HOST_PORT, NAT_LAN, NAT_WAN, NETNS_DIR, SWITCH, host_netns, nat_netns, outside_netns)
from ansible_collections.k8slab.podnet.plugins.plugin_utils.k8slab_cli.lab import (
    ROOT, Lab, Subcommand, fail, pick_lab, run_json)
from ansible_collections.k8slab.podnet.plugins.plugin_utils.k8slab_cli.status import status_data

NODE_IFACES = ('eth0', 'eth1', 'cni0')
PASS_COLOR = '#1a9c3a'
FAIL_COLOR = '#d62728'
CABLE_COLOR = '#8c8c8c'
SERVICE_COLOR = '#1f5fbf'


# ---------------------------------------------------------------- reading the live lab

def _addresses(link):
    return ['%s/%s' % (a['local'], a['prefixlen']) for a in link.get('addr_info', [])
            if a.get('family') == 'inet']


def kube_proxy_services(lab, node):
    """The services kube-proxy's rules program in the node's nat table (parse_kube_proxy);
    [] when iptables-save fails or there are none."""
    return parse_kube_proxy(subprocess.run(lab.enter(node) + ['iptables-save', '-t', 'nat'],
                                           capture_output=True, text=True, check=False).stdout)


def parse_kube_proxy(out):
    """Services from iptables-save output, as kube-proxy's iptables mode writes them
    (KUBE-SERVICES / KUBE-NODEPORTS jump to KUBE-SVC-* or KUBE-EXT-*, KUBE-SVC-* to KUBE-SEP-*,
    KUBE-SEP-* DNAT --to-destination): [{name ('ns/svc:port', from the rule's comment), chain
    (KUBE-SVC-*), cluster_ip ('ip:port/proto' or None), node_ports (['30080/tcp']),
    endpoints (['10.244.1.3:8080'])}], sorted by name; [] without KUBE-SVC-* chains."""
    if 'KUBE-SVC-' not in out:
        return []
    services, sep_dest, svc_seps = {}, {}, {}
    for line in out.splitlines():
        if not line.startswith('-A KUBE-'):
            continue
        words = shlex.split(line)
        chain = words[1]
        opt = dict((w, words[i + 1]) for i, w in enumerate(words[:-1]) if w.startswith('-'))
        jump = opt.get('-j', '')
        if chain in ('KUBE-SERVICES', 'KUBE-NODEPORTS') and \
                jump.startswith(('KUBE-SVC-', 'KUBE-EXT-')):
            svc = services.setdefault(jump.replace('KUBE-EXT-', 'KUBE-SVC-', 1), dict(
                name='', chain=jump.replace('KUBE-EXT-', 'KUBE-SVC-', 1), cluster_ip=None,
                node_ports=[], endpoints=[]))
            svc['name'] = svc['name'] or opt.get('--comment', '').split(' ')[0]
            proto = opt.get('-p', 'tcp')
            if chain == 'KUBE-SERVICES' and opt.get('-d'):
                svc['cluster_ip'] = '%s:%s/%s' % (opt['-d'].split('/')[0], opt.get('--dport'),
                                                  proto)
            elif chain == 'KUBE-NODEPORTS':
                svc['node_ports'].append('%s/%s' % (opt.get('--dport'), proto))
        elif chain.startswith('KUBE-SVC-') and jump.startswith('KUBE-SEP-'):
            svc_seps.setdefault(chain, []).append(jump)
        elif chain.startswith('KUBE-SEP-') and jump == 'DNAT':
            sep_dest[chain] = opt.get('--to-destination')
    for chain, svc in services.items():
        svc['endpoints'] = [sep_dest[s] for s in svc_seps.get(chain, []) if sep_dest.get(s)]
    return sorted(services.values(), key=lambda s: s['name'])


# Where services come from: each reader is asked for every node; the lab's services are the
# union by chain. Another source (e.g. nftables or IPVS) is one more function here.
SERVICE_READERS = [kube_proxy_services]


def _pod_links(lab, node):
    """pod -> {'ifname': 'eth0', 'peer_index': ifindex of its veth's other end in the node,
    'up': bool}: one nsenter into the node's mount namespace (pods live in its /run/netns)."""
    script = ('for f in %s/*; do [ -e "$f" ] || continue; p=${f##*/}; '
              'echo "$p $(ip -n "$p" -j link show dev eth0 2>/dev/null)"; done' % NETNS_DIR)
    out = subprocess.run(lab.enter_mount(node) + ['sh', '-c', script],
                         capture_output=True, text=True, check=False).stdout
    links = {}
    for line in out.splitlines():
        pod, dummy, text = line.partition(' ')
        link = (json.loads(text) if text.strip() else [{}])[0]
        links[pod] = dict(peer_index=link.get('link_index'),
                          up='UP' in link.get('flags', []))
    return links


def graph_data(lab):
    """The lab as it is live, for drawing:
    {lab, up, host: {netns, ip}, outside: {netns, ip}, services: [service],
     nodes: [{name, netns, up, ifaces: {ifname: {addresses: [cidr], mtu, up}},
              routes: [{dst, gateway, dev}] (host-gw: via a gateway into a pod subnet),
              pods: [{name, ip, up, veth (its cni0-side end), veth_up, veth_master}],
              nat: {netns, lan: [cidr], wan: [cidr]}}]}
    Addresses are IPv4 'a.b.c.d/len'; anything missing is None or empty."""
    status = status_data(lab)
    host = _addresses(next((ln for ln in run_json(['ip', '-j', '-n', host_netns(lab.name), '-4',
                                                   'addr', 'show', 'dev', HOST_PORT])), {}))
    outside = _addresses(next((ln for ln in run_json(['ip', '-j', '-n', outside_netns(lab.name),
                                                      '-4', 'addr', 'show', 'dev', SWITCH])), {}))
    data = dict(lab=lab.name, up=status['up'], services=[], nodes=[],
                host=dict(netns=host_netns(lab.name), ip=host[0] if host else None),
                outside=dict(netns=outside_netns(lab.name), ip=outside[0] if outside else None))
    services = {}
    for st in status['nodes']:
        node = dict(name=st['name'], netns=st['netns'], up=st['up'], ifaces={}, routes=[],
                    pods=[], nat={})
        data['nodes'].append(node)
        if not st['up']:
            continue
        links = run_json(['ip', '-j', '-n', st['netns'], 'addr', 'show'])
        by_index = dict((ln['ifindex'], ln) for ln in links)
        for ln in links:
            if ln['ifname'] in NODE_IFACES:
                node['ifaces'][ln['ifname']] = dict(addresses=_addresses(ln), mtu=ln.get('mtu'),
                                                    up='UP' in ln.get('flags', []))
        for r in run_json(['ip', '-j', '-n', st['netns'], '-4', 'route', 'show']):
            if r.get('gateway') and r.get('dst', 'default') != 'default':
                node['routes'].append(dict(dst=r['dst'], gateway=r['gateway'], dev=r.get('dev')))
        pod_links = _pod_links(lab, st['name'])
        for p in st['pods']:
            pl = pod_links.get(p['name'], {})
            veth = by_index.get(pl.get('peer_index'), {})
            node['pods'].append(dict(
                name=p['name'], ip=p['ip'], up=pl.get('up', False),
                veth=veth.get('ifname'), veth_up='UP' in veth.get('flags', []),
                veth_master=veth.get('master')))
        nat = dict((ln['ifname'], _addresses(ln))
                   for ln in run_json(['ip', '-j', '-n', nat_netns(lab.name, st['name']), '-4',
                                       'addr', 'show']))
        node['nat'] = dict(netns=nat_netns(lab.name, st['name']), lan=nat.get(NAT_LAN, []),
                           wan=nat.get(NAT_WAN, []))
        for reader in SERVICE_READERS:
            for svc in reader(lab, st['name']):
                services.setdefault(svc['chain'], svc)
    data['services'] = sorted(services.values(), key=lambda s: s['name'])
    return data


# ---------------------------------------------------------------- the verification report

def default_report(lab_name):
    """The lab's last verification report (verify_report writes <dir>/<lab>/verify.json, or
    verify-<selection>.json for a run of some kinds): the newest verify*.json of the first of
    $K8SLAB_REPORT_DIR/<lab>, ./reports/<lab> (where ansible-playbook ran), the checkout's
    reports/<lab>, and the older flat forms of each, that holds one; None when none does."""
    bases = [os.environ.get('K8SLAB_REPORT_DIR'), os.path.abspath('reports'),
             os.path.join(ROOT, 'reports')]
    dirs = [os.path.join(b, lab_name) for b in bases if b] + [b for b in bases if b]
    for d in dirs:
        found = glob.glob(os.path.join(d, 'verify*.json'))
        if found:
            return max(found, key=os.path.getmtime)
    return None


def path_checks(report):
    """The `path` checks of a verify.json report (verify_report's format), each as
    {name, source, target, passed, expected: [hop], observed: [hop], failed_at: index of the
    first hop that differs (None when passed; the last hop when every hop matched but the
    check failed all the same)}. Hops are addresses, '*' for no answer."""
    paths = []
    for r in (report or {}).get('results', []):
        if r.get('kind') != 'path':
            continue
        expected = (r.get('expected') or '').split()
        observed = list(r.get('hops') or [w for w in (r.get('observed') or '').split()
                                          if not w.startswith('!')])
        failed_at = None
        if not r.get('passed'):
            failed_at = next((i for i, hop in enumerate(expected)
                              if i >= len(observed) or observed[i] != hop),
                             max(len(expected) - 1, 0))
        paths.append(dict(name=r['name'], source=r['source'], target=r['target'],
                          passed=bool(r.get('passed')), expected=expected, observed=observed,
                          failed_at=failed_at))
    return paths


# ---------------------------------------------------------------- drawing

def _id(*parts):
    return '_'.join(parts).replace('-', '_').replace('/', '__').replace('.', '_')


def _ip(cidr):
    return cidr.split('/')[0] if cidr else None


def _html(text):
    return (str(text).replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;'))


def _iface_label(name, iface, note):
    addrs = ', '.join(iface.get('addresses') or ['no address'])
    state = '' if iface.get('up', True) else ' <FONT COLOR="%s">DOWN</FONT>' % FAIL_COLOR
    return ('<<B>%s</B>%s<BR/>%s<BR/><FONT POINT-SIZE="9">%s, mtu %s</FONT>>'
            % (name, state, _html(addrs), note, iface.get('mtu', '?')))


def render(data, paths, basename, formats=('svg', 'png'), source=None):
    """Draw data (graph_data) and paths (path_checks) with Graphviz's dot; writes
    basename.svg and basename.png (each of formats) and returns their paths; source (a line
    about the report) goes under the title. Needs the
    graphviz Python package."""
    import graphviz  # pylint: disable=import-outside-toplevel

    g = graphviz.Digraph('k8slab', engine='dot')
    g.attr(rankdir='TB', fontname='Helvetica', fontsize='12', nodesep='0.35', ordering='out',
           ranksep='0.55', compound='true', labelloc='t',
           label='<<B>k8slab lab %s</B>, read live%s<BR/><FONT POINT-SIZE="10">%s</FONT>>'
           % (_html(data['lab']), '' if data['up'] else ' (NOT UP)',
              _html(source or ('%d paths' % len(paths) if paths
                               else 'no verification report: no paths drawn'))))
    g.attr('node', fontname='Helvetica', fontsize='11', shape='box', style='rounded,filled',
           fillcolor='white')
    g.attr('edge', fontname='Helvetica', fontsize='9', color=CABLE_COLOR, arrowhead='none')

    # IP -> graph node, to draw the verification's hops.
    where = {}
    # Each graph node's level from the top (the switch 0, eth1 1, routes 2, cni0 and eth0 3,
    # pods 4): the hops of the verification are drawn along it.
    level = {}
    outside = _id('outside')
    g.node(outside, '<<B>the outside</B> (the internet)<BR/>%s<BR/>'
                    '<FONT POINT-SIZE="9">%s, bridge %s</FONT>>'
           % (_html(data['outside']['ip'] or '?'), data['outside']['netns'], SWITCH),
           shape='box', fillcolor='#f2f2f2', )
    switch = _id('switch')
    g.node(switch, '<<B>host-only switch</B> (%s)<BR/>192.168.56.0/24, the nodes\' eth1<BR/>'
                   '<FONT POINT-SIZE="9">host side %s: %s</FONT>>'
           % (SWITCH, HOST_PORT, _html(data['host']['ip'] or '?')),
           shape='box', fillcolor='#fff4d6')
    level[switch] = 0
    if data['host']['ip']:
        where[_ip(data['host']['ip'])] = switch

    for node in data['nodes']:
        if node['nat']:
            g.node(_id(node['name'], 'nat'),
                   '<<B>NAT router</B> of %s<BR/>%s (gw, dns)<BR/>wan0 %s>'
                   % (node['name'], ', '.join(_ip(a) for a in node['nat']['lan']),
                      ', '.join(_ip(a) for a in node['nat']['wan'])),
                   shape='box', fillcolor='#f2f2f2', fontsize='9')
    for node in data['nodes']:
        name = node['name']
        with g.subgraph(name='cluster_' + _id(name)) as c:
            missing = '' if node['up'] else ' <FONT COLOR="%s">missing</FONT>' % FAIL_COLOR
            c.attr(label='<<B>node %s</B>%s>' % (_html(name), missing),
                   style='rounded,filled', fillcolor='#eef4fb', color='#5b7fa6', fontsize='13')
            notes = {'eth0': 'NAT (VirtualBox)', 'eth1': 'host-only', 'cni0': 'pod bridge'}
            for ifname in NODE_IFACES:
                iface = node['ifaces'].get(ifname)
                if iface is None:
                    continue
                nid = _id(name, ifname)
                c.node(nid, _iface_label(ifname, iface, notes[ifname]),
                       shape='box' if ifname != 'cni0' else 'box', fillcolor='#ffffff'
                       if ifname != 'cni0' else '#e3f1e3')
                if ifname != 'eth0':    # every node's eth0 is 10.0.2.15: not a unique hop
                    for a in iface['addresses']:
                        where[_ip(a)] = nid
            # The routing table: the host-gw routes that send pod traffic to the peers.
            rows = ''.join('<TR><TD ALIGN="LEFT">%s via %s dev %s</TD></TR>'
                           % (r['dst'], r['gateway'], r['dev']) for r in node['routes'])
            c.node(_id(name, 'routes'),
                   '<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="1">'
                   '<TR><TD><B>routes (flannel host-gw)</B></TD></TR>%s</TABLE>>'
                   % (rows or '<TR><TD>none</TD></TR>'),
                   shape='note', fillcolor='#fffbe6', fontsize='9')
            where[name] = _id(name, 'routes')
            # Top down: the switch, eth1, the routing table, then cni0 (pods below) and eth0
            # (the NAT router and the outside below).
            for ifname in ('eth1', 'cni0', 'eth0'):
                if ifname in node['ifaces']:
                    ends = (_id(name, ifname), _id(name, 'routes'))
                    c.edge(*(ends if ifname == 'eth1' else ends[::-1]), style='dotted',
                           color='#9fb3c8')
                    level[_id(name, ifname)] = 1 if ifname == 'eth1' else 3
            level[_id(name, 'routes')] = 2
            for pod in node['pods']:
                pid = _id(name, 'pod', pod['name'])
                bad = not (pod['up'] and pod['veth_up'] and pod['veth_master'] == 'cni0')
                c.node(pid, '<<B>pod %s</B><BR/>eth0 %s>' % (_html(pod['name']),
                                                             _html(pod['ip'] or 'no address')),
                       shape='box', fillcolor='#fde9d9', color=FAIL_COLOR if bad else 'black')
                level[pid] = 4
                if pod['ip']:
                    where[_ip(pod['ip'])] = pid
                where['%s/%s' % (name, pod['name'])] = pid
                veth = pod['veth'] or '?'
                port = veth if pod['veth_master'] == 'cni0' else '%s (not in cni0!)' % veth
                c.edge(_id(name, 'cni0'), pid, label='%s \u2194 eth0' % port,
                       color=CABLE_COLOR if not bad else FAIL_COLOR, penwidth='1.5',
                       style='solid' if pod['veth_up'] else 'dashed')
        if 'eth1' in node['ifaces']:
            g.edge(switch, _id(name, 'eth1'), penwidth='2', label='port ' + name)
        if 'eth0' in node['ifaces'] and node['nat']:
            g.edge(_id(name, 'eth0'), _id(name, 'nat'), penwidth='2')
            g.edge(_id(name, 'nat'), outside, penwidth='2')

    for svc in data['services']:
        sid = _id('svc', svc['chain'])
        ports = ', '.join(svc['node_ports'])
        g.node(sid, '<<B>service %s</B><BR/>%s%s<BR/><FONT POINT-SIZE="9">%s</FONT>>'
               % (_html(svc['name']), _html(svc['cluster_ip'] or ''),
                  '<BR/>NodePort ' + _html(ports) if ports else '', svc['chain']),
               shape='box', style='rounded,filled', fillcolor='#e0eaff', color=SERVICE_COLOR)
        for ep in svc['endpoints']:
            ip = ep.split(':')[0]
            if ip in where:
                g.edge(sid, where[ip], color=SERVICE_COLOR, style='dashed', arrowhead='normal',
                       label=ep, fontcolor=SERVICE_COLOR, constraint='false')

    _draw_paths(g, paths, where, level)
    _legend(g, paths)
    written = []
    for fmt in formats:
        written.append(g.render(filename=basename + '.gv', outfile='%s.%s' % (basename, fmt),
                                format=fmt, cleanup=True))
    return written


def _hop_edge(g, level, a, b, **attrs):
    """An edge a -> b drawn downwards in the layout (dot 2.43 cannot lay out constraint=false
    edges between clusters): written upper -> lower, arrow reversed when b is the upper one,
    weight 0 and minlen 0 so it does not move anything."""
    if level.get(a, 0) <= level.get(b, 0):
        g.edge(a, b, arrowhead='normal', weight='0', minlen='0', **attrs)
    else:
        g.edge(b, a, dir='back', arrowtail='normal', weight='0', minlen='0', **attrs)


def _draw_paths(g, paths, where, level):
    """Each path check's hops as numbered edges: source -> hop 1 -> ... -> target."""
    for n, p in enumerate(paths, 1):
        src = where.get(p['source'])
        if src is None:
            continue
        prev = src
        stop = p['failed_at'] if p['failed_at'] is not None else len(p['expected'])
        for i, hop in enumerate(p['expected'][:stop]):
            dst = where.get(hop)
            if dst is None:
                break
            _hop_edge(g, level, prev, dst, color=PASS_COLOR, penwidth='1.5', arrowsize='0.6',
                      xlabel='P%d' % n, fontcolor=PASS_COLOR,
                      tooltip='%s: hop %d %s' % (p['name'], i + 1, hop))
            prev = dst
        if p['failed_at'] is not None and p['failed_at'] < len(p['expected']):
            i = p['failed_at']
            want = p['expected'][i]
            got = p['observed'][i] if i < len(p['observed']) else 'nothing'
            dst = where.get(want)
            if dst is None:
                continue
            # A short label (a long one would cover the boxes); the legend and the tooltip
            # say what was expected and what came back.
            _hop_edge(g, level, prev, dst, color=FAIL_COLOR, penwidth='3', style='bold',
                      fontcolor=FAIL_COLOR, fontsize='11', xlabel='P%d hop %d FAILED' % (n, i + 1),
                      tooltip='%s: hop %d FAILED: expected %s, got %s'
                      % (p['name'], i + 1, want, got))
            g.node(dst, color=FAIL_COLOR, penwidth='3')


def _legend(g, paths):
    rows = ['<TR><TD COLSPAN="3"><B>Legend</B></TD></TR>',
            '<TR><TD><FONT COLOR="%s">&#9473;&#9473;</FONT></TD><TD COLSPAN="2" ALIGN="LEFT">'
            'cable: a veth pair (pod eth0 &#8596; its cni0 port; node eth1 &#8596; a switch port)</TD></TR>'
            % CABLE_COLOR,
            '<TR><TD><FONT COLOR="#9fb3c8">&#8943;</FONT></TD><TD COLSPAN="2" ALIGN="LEFT">'
            'inside a node: its routing table picks the interface</TD></TR>',
            '<TR><TD><FONT COLOR="%s">&#10140;</FONT></TD><TD COLSPAN="2" ALIGN="LEFT">'
            'a hop of path Pn (traceroute from its source), answered as expected</TD></TR>'
            % PASS_COLOR,
            '<TR><TD><FONT COLOR="%s">&#10140;</FONT></TD><TD COLSPAN="2" ALIGN="LEFT">'
            'the hop where a path FAILED (expected vs observed)</TD></TR>' % FAIL_COLOR,
            '<TR><TD><FONT COLOR="%s">- - &gt;</FONT></TD><TD COLSPAN="2" ALIGN="LEFT">'
            'service to endpoint (kube-proxy DNAT)</TD></TR>' % SERVICE_COLOR]
    if paths:
        rows.append('<TR><TD><B>path</B></TD><TD ALIGN="LEFT"><B>check</B></TD>'
                    '<TD ALIGN="LEFT"><B>hops (traceroute)</B></TD></TR>')
    for n, p in enumerate(paths, 1):
        color = PASS_COLOR if p['passed'] else FAIL_COLOR
        hops = ' &#8594; '.join(_html(h) for h in p['expected'])
        if not p['passed']:
            hops += '<BR/><FONT COLOR="%s">observed: %s (hop %s failed)</FONT>' % (
                FAIL_COLOR, ' &#8594; '.join(_html(h) for h in p['observed']) or 'nothing',
                (p['failed_at'] or 0) + 1)
        rows.append('<TR><TD><FONT COLOR="%s"><B>P%d %s</B></FONT></TD><TD ALIGN="LEFT">%s</TD>'
                    '<TD ALIGN="LEFT">%s</TD></TR>'
                    % (color, n, 'PASS' if p['passed'] else 'FAIL',
                       _html(p['source'] + ' -> ' + p['target']), hops))
    g.node('legend', '<<TABLE BORDER="1" CELLBORDER="0" CELLSPACING="2" CELLPADDING="2">%s'
                     '</TABLE>>' % ''.join(rows), shape='plain', fontsize='10')


# ---------------------------------------------------------------- the subcommand

def _graphviz_python():
    """Re-run this command with a Python that has the graphviz package (the checkout's .venv or
    $K8SLAB_ANSIBLE_BIN's), when the launcher's python3 lacks it."""
    try:
        import graphviz  # noqa: F401 pylint: disable=import-outside-toplevel,unused-import
        return
    except ImportError:
        pass
    if not os.environ.get('K8SLAB_GRAPH_REEXEC'):
        for where in (os.environ.get('K8SLAB_ANSIBLE_BIN'), os.path.join(ROOT, '.venv', 'bin')):
            python = os.path.join(where or '', 'python3')
            if where and os.access(python, os.X_OK):
                os.environ['K8SLAB_GRAPH_REEXEC'] = '1'
                # The same program from the same collection (scripts/k8slab is a shell
                # launcher): the directory holding ansible_collections/ goes on sys.path.
                top = os.path.abspath(__file__)
                for _level in range(7):  # .../ansible_collections/k8slab/podnet/plugins/...
                    top = os.path.dirname(top)
                boot = ('import sys; sys.path.insert(0, sys.argv.pop(1)); from ansible_collections'
                        '.k8slab.podnet.plugins.plugin_utils.k8slab_cli.main import run; '
                        'sys.exit(run())')
                os.execv(python, [python, '-c', boot, top] + sys.argv[1:])
    fail('k8slab graph needs the graphviz Python package (make deps puts it in .venv)')


def run(args):
    _graphviz_python()
    lab = Lab(pick_lab(args))
    if not lab.up:
        fail('lab %s is not up (`%s` builds it)' % (lab.name, lab.up_command))
    report_file = args.report or default_report(lab.name)
    report = None
    if report_file:
        try:
            with open(report_file) as f:
                report = json.load(f)
        except (IOError, OSError, ValueError) as e:
            fail('cannot read the report %s: %s' % (report_file, e))
        if report.get('lab') not in (None, lab.name):
            print('k8slab: %s is lab %s\'s report, not %s\'s: no paths drawn'
                  % (report_file, report.get('lab'), lab.name), file=sys.stderr)
            report = None
    out = args.output or os.path.join(ROOT, 'reports', lab.name, 'graph.svg')
    base = out[:-4] if out.endswith('.svg') else out
    if os.path.dirname(base) and not os.path.isdir(os.path.dirname(base)):
        os.makedirs(os.path.dirname(base))
    paths = path_checks(report)
    source = report and 'paths of %s (%s): %s checks, %s failed' % (
        report_file, report.get('generated', '?'), report.get('checks', '?'),
        report.get('failed', '?'))
    for written in render(graph_data(lab), paths, base, source=source):
        print(written)
    failed = [p for p in paths if not p['passed']]
    print('%d paths drawn from %s%s' % (len(paths), report_file or 'no report',
                                        ', %d failed (red)' % len(failed) if failed else ''))
    return 0


def arguments(parser):
    parser.add_argument('-o', '--output', metavar='FILE.svg',
                        help='the SVG to write; a PNG is written beside it '
                             '(default reports/<lab>/graph.svg)')
    parser.add_argument('--report', metavar='verify.json',
                        help="the verification report whose paths are drawn (default: the lab's "
                             'newest, reports/<lab>/verify.json or reports/verify.json)')


GRAPH = Subcommand(
    'graph', 'a picture of the live lab (SVG and PNG) with the last verification drawn on it',
    ['k8slab graph [-o FILE.svg]        an SVG+PNG of the live lab, verified paths drawn on it'],
    run, arguments)

# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""The verification check kinds, controller side: one class per kind, each deriving its
default checks from the inventory (what the lab should be), with pod targets resolved against
the live host-local stores (which address each pod holds now). Expectations come from the
inventory, never from the live state, so a broken lab cannot make its own checks pass.

The module side of each kind (probe, judgement, text) is the class of the same name in
plugins/module_utils/probe.py. Adding a kind: one class here, one there (and its new
expectation option, if any, in the probe module's argument spec).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress

from ansible_collections.k8slab.podnet.plugins.filter.topology import pod_containers
from ansible_collections.k8slab.podnet.plugins.module_utils.clusterdns import dashed
from ansible_collections.k8slab.podnet.plugins.module_utils.kubeproxy import (
    CLUSTER_DOMAIN, normalize_services, selects)
from ansible_collections.k8slab.podnet.plugins.module_utils.probe import ICMP_BURST
from ansible_collections.k8slab.podnet.plugins.plugin_utils.verify_registry import (
    Kind, register, with_prefix)

# The host-local store of the lab's network when the options do not name it.
DEFAULT_STORE = '/var/lib/cni/networks/cbr0'


def _pick_source(lab, node, target):
    """The pod of node that path checks start from: a client rather than httpd when there is
    one (as in the seed), never the target itself."""
    pods = [p for p in lab.pods_on(node) if p['name'] != target['name']]
    return next((p for p in pods if p.get('workload') != 'httpd'), pods[0] if pods else None)


def _path_sources(lab, node, targets):
    """The source pod of each pod -> pod trace from node: {target node: pod}. targets is
    {target node: target pod}. The first choice is _pick_source's (the seed's client); a
    source takes at most ICMP_BURST traces to other nodes before the next pod of the node
    takes over, because the node's gateway answers every trace of one source at TTL 1 and
    the kernel lets it answer one destination ICMP_BURST times at once, then once a second
    (probe.HopPacer): ten traces from one pod wait four seconds, from two pods none."""
    pods = sorted(lab.pods_on(node), key=lambda p: p.get('workload') == 'httpd')
    used, sources = {}, {}
    for y, target in targets.items():
        source = _pick_source(lab, node, target)
        if y != node and source is not None:
            source = next((p for p in pods if p['name'] != target['name']
                           and used.get(p['name'], 0) < ICMP_BURST), source)
            used[source['name']] = used.get(source['name'], 0) + 1
        sources[y] = source
    return sources


def _pick_target(lab, node):
    """The pod of node that cross-node checks aim at: httpd if it runs there (as in the
    seed), else the first pod."""
    pods = lab.pods_on(node)
    return next((p for p in pods if p.get('workload') == 'httpd'), pods[0] if pods else None)


def _path_targets(lab):
    """{node: the pod that pod -> pod traces to node aim at}, for the nodes that have pods."""
    targets = dict((y, _pick_target(lab, y)) for y in lab.order)
    return dict((y, t) for y, t in targets.items() if t is not None)


def _refusal_client(lab, node, sources, refusals):
    """The pod of node to expect ``refusals`` refusals from (Services without endpoints):
    kube-proxy's REJECT answers with an ICMP error from the node, which the kernel rate-limits
    per destination pod together with the TTL-1 answers to that pod's traces (probe.HopPacer).
    So the first pod whose traces to other nodes (sources: the node's _path_sources,
    {target node: source pod dict or None}) leave room for the refusals in the burst, else
    the one with the fewest: a refusal without a turn is answered with silence, and passes
    only on a retry a second later."""
    load = {}
    for y, source in sources.items():
        if y != node and source is not None:
            load[source['name']] = load.get(source['name'], 0) + 1
    pods = lab.pods_on(node)
    return next((p for p in pods if load.get(p['name'], 0) + refusals <= ICMP_BURST),
                min(pods, key=lambda p: load.get(p['name'], 0)) if pods else None)


@register
class Address(Kind):
    """Every node's eth1, cni0 (and eth0) and every pod's eth0 hold the planned address."""
    name = 'address'
    keys = ('dev', 'address')
    addressed = False

    def checks(self, lab, opts):
        prefix = ipaddress.ip_network(str(lab.hostonly), strict=False).prefixlen
        for x in lab.order:
            yield lab.check('address %s %s %s' % (x, lab.public, lab.eth1(x)), self.name, x,
                            lab.public, dev=lab.public, address='%s/%d' % (lab.eth1(x), prefix))
            yield lab.check('address %s %s %s' % (x, lab.bridge, lab.gateway(x)), self.name, x,
                            lab.bridge, dev=lab.bridge,
                            address=with_prefix(lab.gateway(x), lab.nodes[x]['pod_cidr']))
            if opts['nat_address']:
                yield lab.check('address %s %s %s' % (x, lab.nat, opts['nat_address']),
                                self.name, x, lab.nat, dev=lab.nat, address=opts['nat_address'])
            # A pod's eth0 holds the address the store gave it.
            for pod in lab.pods_on(x):
                ip = lab.pod_ip(x, pod['name'])
                c = lab.check('address %s/%s eth0 = store' % (x, pod['name']), self.name,
                              '%s/%s' % (x, pod['name']), 'eth0', dev='eth0',
                              address=with_prefix(ip, lab.nodes[x]['pod_cidr']) if ip
                              else '(not in store)')
                if ip is None:
                    c['error'] = 'pod %s has no address in the host-local store of node %s' \
                        % (pod['name'], x)
                yield c


@register
class Path(Kind):
    """Hop by hop (traceroute): node to node over eth1, pod to pod within and across nodes."""
    name = 'path'
    keys = ('hops', 'max_hops', 'bind_dev')

    def checks(self, lab, opts):
        for x in lab.order:
            for y in lab.order:
                if x != y:
                    # node -> node over the host-only network: one hop, as in the seed.
                    yield lab.check('path %s -> %s %s' % (x, y, lab.public), self.name, x,
                                    lab.eth1(y), resolved=lab.eth1(y), hops=[lab.eth1(y)])
        # pod -> pod, one per ordered node pair (and within a node): the seed's results.
        targets = _path_targets(lab)
        for x in lab.order:
            sources = _path_sources(lab, x, targets)
            for y in lab.order:
                target, source = targets.get(y), sources.get(y)
                if source is None:
                    continue
                hops = ['@target'] if x == y else [lab.gateway(x), lab.eth1(y), '@target']
                yield lab.check('path %s/%s -> %s/%s' % (x, source['name'], y, target['name']),
                                self.name, '%s/%s' % (x, source['name']),
                                '%s/%s' % (y, target['name']), hops=hops)


@register
class Unreach(Kind):
    """Nodes cannot reach each other over eth0 (the NAT network is per node)."""
    name = 'unreach'
    keys = ('bind_dev',)

    def checks(self, lab, opts):
        if not opts['nat_isolated']:
            return
        for x in lab.order:
            for y in lab.order:
                if x != y:
                    yield lab.check('unreach %s -> %s over %s' % (x, y, lab.nat), self.name, x,
                                    lab.eth1(y), resolved=lab.eth1(y), bind_dev=lab.nat)


@register
class Reach(Kind):
    """Every pod pings a pod on every node (linear in pods); nodes reach the outside."""
    name = 'reach'
    keys = ('bind_dev',)

    def checks(self, lab, opts):
        for pod in lab.pods:
            for y in lab.order:
                target = next((p for p in lab.pods_on(y) if p['name'] != pod['name']), None)
                if target is not None:
                    yield lab.check('reach %s/%s -> %s/%s' % (pod['node'], pod['name'], y,
                                                              target['name']),
                                    self.name, '%s/%s' % (pod['node'], pod['name']),
                                    '%s/%s' % (y, target['name']))
        # Nodes reach the stand-in for the internet through eth0's NAT.
        if opts['outside_ip']:
            for x in lab.order:
                yield lab.check('reach %s -> outside %s over %s' % (x, opts['outside_ip'],
                                                                    lab.nat),
                                self.name, x, opts['outside_ip'], resolved=opts['outside_ip'],
                                bind_dev=lab.nat)


def _served(pod):
    """The containers of a lab_pods entry that serve HTTP (the long form's or the shorthand's
    one container, legacy ``httpd`` included), each with its port."""
    return [c for c in pod_containers(pod) if c.get('workload') == 'http']


@register
class Http(Kind):
    """Every HTTP container answers (its pod, node and container in the body) from its node and
    from a pod on every other node; ``/hello`` answers ``HELLO <pod>`` from the node."""
    name = 'http'
    keys = ('port', 'url_path', 'status', 'body')

    def checks(self, lab, opts):
        for web in lab.pods:
            w = '%s/%s' % (web['node'], web['name'])
            several = len(pod_containers(web)) > 1
            for c in _served(web):
                body = str(opts['http_body']).format(pod=web['name'], node=web['node'],
                                                     container=c['name'])
                port = int(c.get('port') or opts['http_port'])
                # the container in the name where the pod has several (two may share a port)
                named = ' (%s)' % c['name'] if several else ''
                at = '%s:%d%s' % (w, port, named)
                yield lab.check('http %s -> %s' % (web['node'], at), self.name,
                                web['node'], w, port=port, body=body)
                for y in lab.order:
                    client = next(iter(lab.pods_on(y)), None) if y != web['node'] else None
                    if client:
                        yield lab.check('http %s/%s -> %s' % (y, client['name'], at),
                                        self.name, '%s/%s' % (y, client['name']), w, port=port,
                                        body=body)
                yield lab.check('http %s -> %s:%d/hello%s' % (web['node'], w, port, named),
                                self.name, web['node'], w, port=port, url_path='/hello',
                                body='HELLO %s' % web['name'])


@register
class Route(Kind):
    """``ip route get <pod ip>`` on every node: via eth1 and the owner's eth1, never eth0."""
    name = 'route'
    keys = ('dev', 'gateway', 'forbid_dev')

    def checks(self, lab, opts):
        for x in lab.order:
            for y in lab.order:
                target = _pick_target(lab, y)
                if target is None:
                    continue
                t = '%s/%s' % (y, target['name'])
                if x == y:
                    yield lab.check('route %s -> %s' % (x, t), self.name, x, t, dev=lab.bridge,
                                    gateway='', forbid_dev=[lab.nat])
                else:
                    yield lab.check('route %s -> %s' % (x, t), self.name, x, t, dev=lab.public,
                                    gateway=lab.eth1(y), forbid_dev=[lab.nat])


@register
class Mtu(Kind):
    """Every pod's eth0 and its veth end, cni0 and eth1 have the network's MTU (cni_mtu)."""
    name = 'mtu'
    keys = ('dev', 'mtu')
    addressed = False

    def checks(self, lab, opts):
        if not lab.mtu:
            return  # the inventory plans no MTU: nothing to hold the links to
        for x in lab.order:
            for dev in (lab.public, lab.bridge):
                yield lab.check('mtu %s %s %d' % (x, dev, lab.mtu), self.name, x, dev, dev=dev,
                                mtu=lab.mtu)
            for pod in lab.pods_on(x):
                yield lab.check('mtu %s/%s eth0 %d' % (x, pod['name'], lab.mtu), self.name,
                                '%s/%s' % (x, pod['name']), 'eth0', dev='eth0', mtu=lab.mtu)


# ---- Services, DNS and the way out (docs/services.md) ---------------------------------------

def _pod_view(pod):
    """A lab_pods entry as a Service sees it: namespace, labels, the ports of its http
    containers."""
    return dict(name=pod['name'], node=pod.get('node'),
                namespace=pod.get('namespace', 'default'), labels=pod.get('labels') or {},
                http=set(int(c['port']) for c in pod_containers(pod)
                         if c.get('workload') in ('http', 'httpd') and c.get('port')))


def _service_ports(lab):
    """(service, port, endpoint pods) for every TCP port whose endpoints - the inventory's pods
    its selector matches - all serve HTTP on the targetPort (the ones a GET can probe), or
    that has no endpoint at all (it must refuse)."""
    if not lab.services:
        return []
    pods = [_pod_view(p) for p in lab.pods]
    out = []
    for svc in normalize_services(lab.services):
        eps = [p for p in pods if selects(svc, p)]
        for port in svc['ports']:
            if port['protocol'] != 'TCP':
                continue
            if all(port['targetPort'] in p['http'] for p in eps):
                out.append((svc, port, eps))
    return out


def _port_label(svc, port):
    return '%s/%s:%s' % (svc['namespace'], svc['name'], port['name'] or port['port'])


def _client(lab, node, avoid=()):
    """A pod of node to send from: not one of ``avoid`` (the service's endpoints)."""
    return next((p for p in lab.pods_on(node) if p['name'] not in avoid), None)


@register
class Service(Kind):
    """From a pod on every node ClusterIP:port answers, every endpoint its fair share; hairpin."""
    name = 'service'
    keys = ('port', 'url_path', 'endpoints', 'requests')

    def checks(self, lab, opts):
        ports = _service_ports(lab)
        refusals = len([eps for _svc, _port, eps in ports if not eps])
        clients = {}
        if refusals:
            targets = _path_targets(lab)
            clients = dict((x, _refusal_client(lab, x, _path_sources(lab, x, targets), refusals))
                           for x in lab.order)
        for svc, port, eps in ports:
            label = _port_label(svc, port)
            names = sorted(p['name'] for p in eps)
            expect = dict(resolved=svc['clusterIP'], port=port['port'], url_path='/hello',
                          endpoints=names, requests=int(opts.get('service_requests', 60)))
            for x in lab.order:
                c = _client(lab, x, names) if eps else clients[x]
                if c:
                    yield lab.check('service %s/%s -> %s' % (x, c['name'], label), self.name,
                                    '%s/%s' % (x, c['name']), svc['clusterIP'], **expect)
            if eps and eps[0]['node'] in lab.by_node:
                e = eps[0]
                yield lab.check('service %s/%s -> %s (hairpin)' % (e['node'], e['name'], label),
                                self.name, '%s/%s' % (e['node'], e['name']), svc['clusterIP'],
                                **expect)


@register
class Nodeport(Kind):
    """A NodePort answers on every node's eth1 from the host side (192.168.56.1), every endpoint its fair share."""
    name = 'nodeport'
    keys = ('port', 'url_path', 'endpoints', 'requests')

    def checks(self, lab, opts):
        if not opts.get('host_side'):
            return
        for svc, port, eps in _service_ports(lab):
            if not port['nodePort']:
                continue
            for x in lab.order:
                name = 'nodeport host -> %s:%d (%s)' % (x, port['nodePort'],
                                                        _port_label(svc, port))
                yield lab.check(name,
                                self.name, 'host', x, port=port['nodePort'], url_path='/hello',
                                endpoints=sorted(p['name'] for p in eps),
                                requests=int(opts.get('service_requests', 60)))


@register
class Dns(Kind):
    """Pods on every node resolve Services, seed 002's pod names and the DNS server's reverse name; nodes resolve lab names at once."""
    name = 'dns'
    keys = ('qname', 'answer', 'max_seconds')
    addressed = False

    def checks(self, lab, opts):
        bound = float(opts.get('dns_max_seconds', 1.0))
        domain = opts.get('cluster_domain') or CLUSTER_DOMAIN
        services = normalize_services(lab.services) if lab.services else []
        pods = [_pod_view(p) for p in lab.pods]

        def check(source, qname, answer, what=''):
            return lab.check('dns %s %s%s' % (source, qname, what), self.name, source, qname,
                             qname=qname, answer=answer, max_seconds=bound)

        for x in lab.order:
            c = _client(lab, x)
            if c is None or not services:
                continue
            src = '%s/%s' % (x, c['name'])
            for svc in services:
                yield check(src, '%s.%s.svc.%s' % (svc['name'], svc['namespace'], domain),
                            svc['clusterIP'])
            # The search path: <service>.<namespace> from any namespace, the bare name from a
            # pod of the service's own namespace.
            first = services[0]
            yield check(src, '%s.%s' % (first['name'], first['namespace']), first['clusterIP'])
            own = next((p for p in lab.pods_on(x)
                        if p.get('namespace', 'default') == first['namespace']), None)
            if own:
                yield check('%s/%s' % (x, own['name']), first['name'], first['clusterIP'])
            # Seed 002's pod names: <a-b-c-d>.<service>.<namespace>.svc.<domain>.
            for svc in services:
                ep = next((p for p in pods if selects(svc, p)), None)
                ip = ep and lab.pod_ip(ep['node'], ep['name'])
                if ep:
                    q = '%s.%s.%s.svc.%s' % (dashed(ip) if ip else '(%s)' % ep['name'],
                                             svc['name'], svc['namespace'], domain)
                    made = check(src, q, ip or '(not in store)')
                    if ip is None:
                        made['error'] = 'pod %s has no address in the host-local store of node %s' \
                            % (ep['name'], ep['node'])
                    yield made
                    break
            # The reverse name of the DNS server (nslookup prints it as its server).
            dns = next((s for s in services if s['clusterIP'] == opts.get('cluster_dns')), None)
            if dns:
                fqdn = '%s.%s.svc.%s' % (dns['name'], dns['namespace'], domain)
                yield check(src, dns['clusterIP'], fqdn)
        # Nodes: the names their resolver (the NAT's DNS at 10.0.2.3) answers, and a reverse
        # lookup as `traceroute` without -n makes - any outcome, but at once.
        names = opts.get('node_dns_names') or {}
        for x in lab.order:
            for name in sorted(names):
                if name != x:
                    yield check(x, name, str(names[name]))
            if names:
                yield check(x, lab.gateway(x), '', ' (reverse, at once)')


@register
class Outside(Kind):
    """A pod on every node reaches the outside over HTTP through its node's ip-masq."""
    name = 'outside'
    keys = ('port', 'url_path', 'status')

    def checks(self, lab, opts):
        if not opts.get('outside_ip'):
            return
        for x in lab.order:
            c = _client(lab, x)
            if c:
                yield lab.check('outside %s/%s -> %s' % (x, c['name'], opts['outside_ip']),
                                self.name, '%s/%s' % (x, c['name']), opts['outside_ip'],
                                port=80, url_path='/', status=200)


@register
class PodNetns(Kind):
    """Every container of a pod is in its sandbox's network namespace (same ``ns/net`` inode as
    the pause process and ``/run/netns/<pod>``)."""
    name = 'pod_netns'
    keys = ('pod', 'container')
    addressed = False

    def checks(self, lab, opts):
        for pod in lab.pods:
            for c in pod_containers(pod):
                at = '%s/%s/%s' % (pod['node'], pod['name'], c['name'])
                check = lab.check('pod_netns %s' % at, self.name, pod['node'], None,
                                  pod=pod['name'], container=c['name'])
                check['to'] = at
                yield check


@register
class Localhost(Kind):
    """In a pod of several containers, each reaches every other's port on ``localhost``
    (one IP, one port space: seed 000's lab-web :80 and lab-web-2 :8080)."""
    name = 'localhost'
    keys = ('port', 'url_path', 'status', 'body')

    def checks(self, lab, opts):
        for pod in lab.pods:
            containers = pod_containers(pod)
            if len(containers) < 2:
                continue
            for web in _served(pod):
                for c in containers:
                    if c['name'] == web['name']:
                        continue
                    port = int(web['port'])
                    body = str(opts['http_body']).format(pod=pod['name'], node=pod['node'],
                                                         container=web['name'])
                    yield lab.check('localhost %s/%s %s -> %s:%d' % (
                        pod['node'], pod['name'], c['name'], web['name'], port), self.name,
                        '%s/%s' % (pod['node'], pod['name']), 'localhost:%d' % port,
                        resolved='127.0.0.1', port=port, body=body)


@register
class Store(Kind):
    """The host-local store file of each pod's address holds its sandbox id and ifname
    (``<id>\\r\\neth0``: seed 000 ties 10.244.3.3 to the pause container this way)."""
    name = 'store'
    keys = ('pod', 'store', 'dev')
    addressed = False

    def checks(self, lab, opts):
        store = opts.get('cni_store') or DEFAULT_STORE
        for pod in lab.pods:
            at = '%s/%s' % (pod['node'], pod['name'])
            check = lab.check('store %s' % at, self.name, pod['node'], None, pod=pod['name'],
                              store=store, dev='eth0')
            check['to'] = at
            yield check

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: cluster_dns
short_description: Write the cluster DNS pod's dnsmasq configuration (kube-dns's names)
description:
  - Writes O(dest), a dnsmasq configuration serving the cluster domain as kube-dns does -
    C(<service>.<namespace>.svc.cluster.local) to the ClusterIP (with its reverse name),
    C(<pod-ip-dashed>.<service>.<namespace>.svc.cluster.local) to each endpoint pod's IP (seed
    002), C(<pod-ip-dashed>.<namespace>.pod.cluster.local), and SRV records for named ports.
  - Authoritative (C(local=)) for the cluster domain and the reverse zones of O(service_cidr)
    and O(cluster_cidr), so unknown cluster names get NXDOMAIN at once; other names go to
    O(upstream) only (none - refused).
  - Services are validated and allocated exactly as M(k8slab.podnet.kube_proxy) does, so the
    names lead to the addresses the proxy rules serve.
  - dnsmasq reads this file when it starts; restart the DNS container when the module reports
    a change. Run it as C(dnsmasq --keep-in-foreground --conf-file=<dest>).
  - Also returns the resolv.conf kubelet writes for pods of each namespace.
version_added: "1.0.0"
author: k8slab.podnet developers (@k8slab)
options:
  dest:
    description: Path of the configuration file (its directory is created when missing).
    type: path
    required: true
  services:
    description: The Services, as for M(k8slab.podnet.kube_proxy) O(k8slab.podnet.kube_proxy#module:services).
    type: list
    elements: dict
    required: true
  pods:
    description: The pods, as for M(k8slab.podnet.kube_proxy) O(k8slab.podnet.kube_proxy#module:pods).
    type: list
    elements: dict
    default: []
  domain:
    description: The cluster domain.
    type: str
    default: cluster.local
  nameserver:
    description: The kube-dns Service's ClusterIP, written into the pods' resolv.conf.
    type: str
    default: 10.96.0.10
  service_cidr:
    description: The service CIDR.
    type: str
    default: 10.96.0.0/12
  cluster_cidr:
    description: The pod network (its reverse zone is answered locally too).
    type: str
    default: 10.244.0.0/16
  upstream:
    description: Servers for every other name (kube-dns forwards to the node's resolver).
    type: list
    elements: str
    default: []
  ttl:
    description: TTL of the answers, seconds.
    type: int
    default: 5
  force:
    description:
      - V(false) writes O(dest) only when it does not exist yet and leaves an existing file
        as it is, as C(force) of M(ansible.builtin.copy) does. The services role writes the
        first configuration a DNS pod starts with this way, before its endpoints are known.
    type: bool
    default: true
attributes:
  platform:
    support: full
    platforms: linux
    description: Any Linux host.
extends_documentation_fragment:
  - k8slab.podnet.attributes
'''

EXAMPLES = r'''
- name: kube-dns's configuration
  k8slab.podnet.cluster_dns:
    dest: /run/podnet/dns/dnsmasq.conf
    services: "{{ lab_services }}"
    pods: "{{ lab_pod_records }}"
    upstream: [10.0.2.3]
'''

RETURN = r'''
records:
  description: C(host) (A and PTR), C(address) (A only) and C(srv) records written.
  returned: always
  type: dict
resolv_conf:
  description: The pods' resolv.conf text per namespace (of the services and pods given).
  returned: always
  type: dict
  sample: {test001: "search test001.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"}
'''

import ipaddress

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.k8slab.podnet.plugins.module_utils.clusterdns import (
    cluster_dnsmasq_conf, cluster_records, pod_resolv_conf)
from ansible_collections.k8slab.podnet.plugins.module_utils.files import read_text, write_atomic
from ansible_collections.k8slab.podnet.plugins.module_utils.kubeproxy import (
    KubeProxyError, normalize_services)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dest=dict(type='path', required=True),
            services=dict(type='list', elements='dict', required=True),
            pods=dict(type='list', elements='dict', default=[]),
            domain=dict(type='str', default='cluster.local'),
            nameserver=dict(type='str', default='10.96.0.10'),
            service_cidr=dict(type='str', default='10.96.0.0/12'),
            cluster_cidr=dict(type='str', default='10.244.0.0/16'),
            upstream=dict(type='list', elements='str', default=[]),
            ttl=dict(type='int', default=5),
            force=dict(type='bool', default=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    checks = [(p['nameserver'], 'nameserver', ipaddress.ip_address),
              (p['service_cidr'], 'service_cidr', ipaddress.ip_network),
              (p['cluster_cidr'], 'cluster_cidr', ipaddress.ip_network)]
    checks += [(u, 'upstream', ipaddress.ip_address) for u in p['upstream']]
    for value, key, parse in checks:
        try:
            parse(value)
        except ValueError as e:
            module.fail_json(msg='%s %r is invalid: %s' % (key, value, e))
    try:
        services = normalize_services(p['services'], p['pods'], p['service_cidr'])
    except KubeProxyError as e:
        module.fail_json(msg='bad services: %s' % e, errors=e.errors)
    text = cluster_dnsmasq_conf(services, p['pods'], p['domain'], p['service_cidr'],
                                p['cluster_cidr'], p['upstream'], p['ttl'])
    current = read_text(p['dest'])
    if current is not None and not p['force']:
        text = current
    changed = current != text
    if changed and not module.check_mode:
        write_atomic(p['dest'], text, makedirs=True)
    namespaces = sorted(set([s['namespace'] for s in services] +
                            [x.get('namespace', 'default') for x in p['pods']]))
    module.exit_json(
        changed=changed, records=cluster_records(services, p['pods'], p['domain']),
        resolv_conf=dict((ns, pod_resolv_conf(ns, p['nameserver'], p['domain']))
                         for ns in namespaces),
        diff=dict(before=current or '', after=text, before_header=p['dest'],
                  after_header=p['dest']))


if __name__ == '__main__':
    main()

# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""Controller-side filters for Services (the same code the modules run, module_utils/kubeproxy
and module_utils/clusterdns), so a bad service fails the play in milliseconds and the roles
get clusterIPs, nodePorts and resolv.conf without a round trip to a node.

- ``services | k8slab.podnet.service_errors(pods)``: [] or the list of problems (each names
  the bad value), for the inventory validation play.
- ``services | k8slab.podnet.kube_services(pods)``: the services with clusterIP and nodePorts
  allocated (deterministically, as kube_proxy and cluster_dns allocate them).
- ``namespace | k8slab.podnet.pod_resolv_conf(nameserver='10.96.0.10')``: kubelet's resolv.conf.
- ``pods | k8slab.podnet.service_pods(services, namespace, name)``: the pods (ready or not)
  the named service's selector matches (the DNS pods a node must configure, for instance);
  without namespace and name, the pods any service selects (kube-proxy's endpoints).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.k8slab.podnet.plugins.module_utils.clusterdns import pod_resolv_conf
from ansible_collections.k8slab.podnet.plugins.module_utils.kubeproxy import (
    KubeProxyError, SERVICE_CIDR, normalize_services, selects)


def service_errors(services, pods=None, service_cidr=SERVICE_CIDR):
    """[] when ``services`` are valid (with ``pods``, every targetPort served), else the list
    of problems."""
    try:
        normalize_services(services, pods, service_cidr)
    except KubeProxyError as e:
        return e.errors
    return []


def kube_services(services, pods=None, service_cidr=SERVICE_CIDR):
    """The services normalized and allocated; AnsibleFilterError naming every bad value."""
    try:
        return normalize_services(services, pods, service_cidr)
    except KubeProxyError as e:
        raise AnsibleFilterError('bad services: %s' % e)


def service_pods(pods, services, namespace=None, name=None):
    """The pods (dicts with namespace and labels: pod_specs' long form or node_info's records)
    that the selector of service ``namespace/name`` among ``services`` matches; [] when there
    is no such service or it has no selector. Without ``name``: the pods that any of
    ``services`` selects, once each, in their order - what the EndpointSlice controller makes
    endpoints of, and all of the pods that kube-proxy needs."""
    if (namespace is None) != (name is None):
        raise AnsibleFilterError('service_pods: give both namespace and name (one Service) or '
                                 'neither (every Service), not namespace=%r name=%r'
                                 % (namespace, name))
    if name is None:
        wanted = [dict(svc, namespace=svc.get('namespace', 'default'))
                  for svc in services or [] if svc.get('selector')]
        return [p for p in pods or [] if any(selects(svc, p) for svc in wanted)]
    for svc in services or []:
        if svc.get('namespace', 'default') == namespace and svc.get('name') == name:
            if not svc.get('selector'):
                return []
            svc = dict(svc, namespace=namespace)
            return [p for p in pods or [] if selects(svc, p)]
    return []


class FilterModule(object):
    def filters(self):
        return {
            'service_errors': service_errors,
            'kube_services': kube_services,
            'pod_resolv_conf': pod_resolv_conf,
            'service_pods': service_pods,
        }

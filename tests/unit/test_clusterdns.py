"""Cluster DNS records and dnsmasq configuration (plugins/module_utils/clusterdns.py) and the
services filters (plugins/filter/services.py), no root."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), '.collections'))

from ansible.errors import AnsibleFilterError  # noqa: E402
from ansible_collections.k8slab.podnet.plugins.filter.services import (  # noqa: E402
    kube_services, service_errors, service_pods)
from ansible_collections.k8slab.podnet.plugins.module_utils.clusterdns import (  # noqa: E402
    cluster_dnsmasq_conf, cluster_records, pod_resolv_conf, reverse_zones)
from ansible_collections.k8slab.podnet.plugins.module_utils.kubeproxy import (  # noqa: E402
    normalize_services)

SERVICES = normalize_services([
    {'namespace': 'kube-system', 'name': 'kube-dns', 'clusterIP': '10.96.0.10',
     'selector': {'k8s-app': 'kube-dns'},
     'ports': [{'name': 'dns', 'protocol': 'UDP', 'port': 53},
               {'name': 'dns-tcp', 'protocol': 'TCP', 'port': 53}]},
    {'namespace': 'default', 'name': 'nginx-dns', 'clusterIP': '10.110.192.26',
     'selector': {'app': 'nginx-dns'}, 'ports': [{'port': 80}]},
    {'namespace': 'default', 'name': 'other', 'clusterIP': '10.110.192.27',
     'selector': {'app': 'nginx-dns'}, 'ports': [{'port': 80}]},
])
PODS = [{'name': 'nginx-dns-69fdc94b9f-hdh7d', 'labels': {'app': 'nginx-dns'},
         'ip': '192.168.208.238'},
        {'name': 'coredns', 'namespace': 'kube-system', 'labels': {'k8s-app': 'kube-dns'},
         'ip': '10.244.0.2/24'}]


def test_seed_002_names():
    rec = cluster_records(SERVICES, PODS)
    host = dict(rec['host'])
    assert host['kube-dns.kube-system.svc.cluster.local'] == '10.96.0.10'
    assert host['nginx-dns.default.svc.cluster.local'] == '10.110.192.26'
    # the pod's name under its service (seed 002), with the one reverse name of its IP
    assert host['192-168-208-238.nginx-dns.default.svc.cluster.local'] == '192.168.208.238'
    address = dict(rec['address'])
    assert address['192-168-208-238.other.default.svc.cluster.local'] == '192.168.208.238'
    assert address['192-168-208-238.default.pod.cluster.local'] == '192.168.208.238'
    assert [ip for _name, ip in rec['host']].count('192.168.208.238') == 1
    assert ('_dns._udp.kube-dns.kube-system.svc.cluster.local',
            'kube-dns.kube-system.svc.cluster.local', 53) in rec['srv']


def test_dnsmasq_conf_never_forwards_without_upstream():
    text = cluster_dnsmasq_conf(SERVICES, PODS)
    lines = text.splitlines()
    assert 'no-resolv' in lines and 'no-hosts' in lines
    assert not [l for l in lines if l.startswith('server=')]
    assert 'local=/cluster.local/' in lines and 'local=/96.10.in-addr.arpa/' in lines
    assert 'local=/111.10.in-addr.arpa/' in lines and 'local=/112.10.in-addr.arpa/' not in lines
    assert 'host-record=kube-dns.kube-system.svc.cluster.local,10.96.0.10' in lines
    assert 'server=10.0.2.3' in cluster_dnsmasq_conf(SERVICES, PODS, upstream=['10.0.2.3'])


def test_reverse_zones():
    assert len(reverse_zones('10.96.0.0/12')) == 16
    assert reverse_zones('10.244.0.0/16') == ['244.10.in-addr.arpa']
    assert reverse_zones('10.0.0.0/8') == ['10.in-addr.arpa']


def test_kubelet_resolv_conf():
    assert pod_resolv_conf('test001') == (
        'search test001.svc.cluster.local svc.cluster.local cluster.local\n'
        'nameserver 10.96.0.10\noptions ndots:5\n')


def test_filters():
    assert service_errors([{'name': 'ok', 'ports': [{'port': 80}]}]) == []
    errors = service_errors([{'name': 'ok', 'clusterIP': '10.0.0.1', 'ports': [{'port': 80}]}])
    assert len(errors) == 1 and '10.0.0.1' in errors[0]
    assert kube_services([{'name': 'ok', 'ports': [{'port': 80}]}])[0]['clusterIP'].startswith('10.')
    with pytest.raises(AnsibleFilterError):
        kube_services([{'name': 'Bad', 'ports': [{'port': 80}]}])


def test_service_pods_of_one_service_or_of_any():
    """With a name: that Service's pods (the DNS pods); without: the pods some Service selects,
    once each, in their order (kube-proxy's endpoints) - a pod no selector matches is left out,
    and a Service without a selector selects nothing."""
    idle = {'name': 'idle', 'labels': {'app': 'idle'}, 'ip': '10.244.1.9'}
    other_ns = {'name': 'nginx-2', 'namespace': 'other', 'labels': {'app': 'nginx-dns'}}
    pods = [idle, PODS[0], other_ns, PODS[1]]
    raw = [dict(s) for s in SERVICES] + [{'name': 'manual', 'ports': [{'port': 80}]}]
    assert service_pods(pods, raw, 'kube-system', 'kube-dns') == [PODS[1]]
    assert service_pods(pods, raw, 'default', 'manual') == []
    assert service_pods(pods, raw) == [PODS[0], PODS[1]]
    # namespace defaults to "default" on a Service as on a pod
    assert service_pods(pods, [{'name': 'x', 'selector': {'app': 'idle'}}]) == [idle]
    assert service_pods(pods, []) == [] and service_pods(None, raw) == []
    with pytest.raises(AnsibleFilterError, match='both namespace and name'):
        service_pods(pods, raw, 'kube-system')

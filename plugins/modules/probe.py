#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: probe
short_description: Run many network probes at once - hop-by-hop paths, ping, HTTP, routes, MTUs
version_added: 0.1.0
description:
  - Runs a list of probes from the host it runs on, or from inside named network namespaces
    of that host (the pods of a lab node), all concurrently, so one call takes about as long
    as its slowest probe.
  - Each probe carries its expectation and is retried briefly until it holds, because a new
    route or neighbour entry can take a moment. The module reports every probe as passed or
    failed with the expected and observed values; it fails itself only on bad input, so a
    caller (the C(k8slab.podnet.verify) role) can report all results together.
  - C(path) discovers the hops the way traceroute(8) does by default (UDP datagrams with
    growing TTL, one probe per hop, short waits), reading the ICMP answers from the socket's
    error queue (IP_RECVERR) instead of parsing traceroute's text output.
  - C(reach) and C(unreach) send one ICMP echo request per attempt on a raw socket.
  - C(http) sends an HTTP GET. C(route) asks the kernel with C(ip -j route get).
    C(address) reads C(ip -j addr show). C(mtu) reads C(ip -j link show).
  - Each kind is one class in the collection's C(module_utils/probe.py), registered by name.
  - The module never changes anything.
author: k8slab.podnet developers (@k8slab)
options:
  probes:
    description: The probes to run. Exactly one of O(probes) and O(plan).
    type: list
    elements: dict
    suboptions:
      name:
        description: A unique name, reported with the result.
        type: str
        required: true
      kind:
        description:
          - C(path) expects exactly the hops in O(probes[].hops).
          - C(reach) expects an ICMP echo reply from O(probes[].target), C(unreach) expects none.
          - C(http) expects status O(probes[].status) and optionally O(probes[].body).
          - C(route) expects C(ip route get) to leave via O(probes[].dev) and
            O(probes[].gateway) and never via O(probes[].forbid_dev).
          - C(address) expects O(probes[].address) on O(probes[].dev).
          - C(mtu) expects MTU O(probes[].mtu) on O(probes[].dev) and, when the probe runs in a
            pod (its O(probes[].netns) is not the module's O(netns)), on the node end of that
            veth too.
          - C(service) and C(nodeport) send O(probes[].requests) HTTP GETs to
            O(probes[].target):O(probes[].port) and expect every pod of
            O(probes[].endpoints) to answer at least its fair share (a binomial bound), or a
            refusal when it lists none.
          - C(outside) is C(http) from a pod to the outside.
          - C(dns) expects the C library to resolve O(probes[].qname) (in a container of the
            pod, with the pod's resolv.conf) to O(probes[].answer) within
            O(probes[].max_seconds).
          - C(pod_netns) expects the process of container O(probes[].container) of pod
            O(probes[].pod) in the pause process's network namespace (same C(ns/net) inode,
            also that of C(/run/netns/<pod>)); the module reads the node's pod records.
          - C(localhost) is C(http) to a loopback address, from inside a pod.
          - C(store) expects the host-local store file of pod O(probes[].pod)'s address on
            O(probes[].dev) in directory O(probes[].store) to hold the pod's sandbox id and
            O(probes[].dev) (C(<id>\\r\\neth0)).
        type: str
        required: true
        choices: [address, dns, http, localhost, mtu, nodeport, outside, path, pod_netns, reach, route,
                  service, store, unreach]
      netns:
        description:
          - Run this probe inside this named network namespace (a pod of the node), as
            C(ip netns exec) would. Overrides the module-level O(netns).
        type: str
      target:
        description: The IPv4 address probed. Required for every kind but C(address).
        type: str
      hops:
        description:
          - For C(path), the expected hop addresses in order; the last one is the target.
        type: list
        elements: str
      max_hops:
        description:
          - For C(path), the highest TTL tried. Defaults to one more than the expected hops,
            enough to show where a wrong path diverges.
        type: int
      bind_dev:
        description:
          - For C(path), C(reach) and C(unreach), send through this interface only
            (SO_BINDTODEVICE), for example C(eth0) to prove nodes cannot reach each other
            over the NAT interface.
        type: str
      dev:
        description:
          - For C(route), the interface the route must leave through.
          - For C(address), the interface whose IPv4 addresses are read.
          - For C(mtu), the interface whose MTU is read, for example C(eth0) in a pod.
        type: str
      gateway:
        description:
          - For C(route), the expected gateway; an empty string expects a directly connected
            route with no gateway. Omitted, the gateway is not checked.
        type: str
      forbid_dev:
        description: For C(route), interfaces the route must never use.
        type: list
        elements: str
        default: []
      address:
        description: For C(address), the expected address with prefix, for example C(10.0.2.15/24).
        type: str
      port:
        description: For C(http), the TCP port.
        type: int
        default: 80
      url_path:
        description: For C(http), the path requested.
        type: str
        default: /
      status:
        description: For C(http), the expected status code.
        type: int
        default: 200
      body:
        description: For C(http), a text the response body must contain.
        type: str
      mtu:
        description: For C(mtu), the expected MTU in bytes.
        type: int
      endpoints:
        description: For C(service) and C(nodeport), the pods that must answer (none - refused).
        type: list
        elements: str
      requests:
        description: For C(service) and C(nodeport), how many requests (new connections).
        type: int
        default: 60
      qname:
        description: For C(dns), the name (or IPv4 address, for a reverse lookup) looked up.
        type: str
      answer:
        description: For C(dns), an address (or name) that must be among the answers.
        type: str
      max_seconds:
        description: For C(dns), the longest the lookup may take.
        type: float
        default: 1.0
      pod:
        description: For C(pod_netns) and C(store), the pod's name (its record and namespace).
        type: str
      container:
        description: For C(pod_netns), the container's name in the pod.
        type: str
      store:
        description:
          - For C(store), the host-local store directory of the network, for example
            C(/var/lib/cni/networks/cbr0).
        type: path
  plan:
    description:
      - Run a node's probes from a plan instead, what the C(k8slab.podnet.verify_plan) filter
        made (its C(probes), keyed by node), held by a variable of the host the task runs for
        (for example set by C(ansible.builtin.set_fact) with C(run_once)).
      - Read on the controller by the module's action plugin as it is, not templated again as
        O(probes) would be for every node (10 nodes x 20 pods, 350 probes a node - about 0.2 s
        of CPU each).
    type: dict
    suboptions:
      var:
        description: The variable's name.
        type: str
        required: true
      node:
        description:
          - Whose probes, a key of the plan's C(probes) - a node's inventory name, or C(host)
            for the checks made from the host side. Defaults to the host the task runs for.
          - A node the plan does not know is an error.
        type: str
  netns:
    description:
      - Run all probes inside this named network namespace (like C(ip -n)); a probe's own
        O(probes[].netns) takes precedence.
    type: str
  wait:
    description: Seconds to wait for each answer (per hop for C(path)).
    type: float
    default: 1.0
  silence_wait:
    description:
      - Seconds a probe that passes when nothing answers (C(unreach)) listens before it counts
        the silence; defaults to O(wait). Inside one host an answer comes within milliseconds
        (the single-host lab's backend sets 0.25), over a real network allow more.
      - An answer the kernel had queued by then counts, however late the probe's thread runs.
    type: float
  retries:
    description: How many more times a probe whose expectation does not hold is run.
    type: int
    default: 2
  retry_delay:
    description: Seconds between attempts.
    type: float
    default: 0.5
  workers:
    description: At most this many probes run at the same time.
    type: int
    default: 32
extends_documentation_fragment:
  - k8slab.podnet.attributes.info
attributes:
  action:
    support: full
    description: An action plugin reads O(plan) on the controller; the probes run on the target.
  platform:
    support: full
    platforms: linux
    description: Needs root (raw ICMP sockets, setns(2)) and iproute2 with JSON output.
notes:
  - Probes of different namespaces run side by side in threads; each thread enters its
    namespace with setns(2) and returns to the original one afterwards.
  - Addresses are IPv4, as in the lab.
  - The result's C(invocation) (shown with C(-vvv)) leaves O(probes) out - every result record
    names its probe - unless Ansible's own argument checks rejected them; it shows O(plan)
    when the probes came from one (not with C(async), whose result is the module's own).
  - With O(plan), a node the plan lists without probes gets an empty RV(results) without a
    module run.
seealso:
  - module: k8slab.podnet.node_info
'''

EXAMPLES = r'''
- name: Prove the seed's paths from node-2 and from its pod
  k8slab.podnet.probe:
    probes:
      - name: node-2 -> node-1 over eth1
        kind: path
        target: 192.168.56.11
        hops: [192.168.56.11]
      - name: client-2 -> httpd
        kind: path
        netns: client-2
        target: 10.244.1.2
        hops: [10.244.2.1, 192.168.56.11, 10.244.1.2]
      - name: httpd answers
        kind: http
        netns: client-2
        target: 10.244.1.2
        body: k8slab
      - name: pods of node-1 leave through eth1
        kind: route
        target: 10.244.1.2
        dev: eth1
        gateway: 192.168.56.11
        forbid_dev: [eth0]
      - name: node-1 is not reachable over eth0
        kind: unreach
        target: 192.168.56.11
        bind_dev: eth0
  register: probed

- name: Run node-2's probes from a plan made once on the controller
  k8slab.podnet.probe:
    plan:
      var: my_plan  # set_fact: my_plan: "{{ my_lab | k8slab.podnet.verify_plan }}" (run_once)
      node: node-2
  register: probed

- name: Fail when any probe failed
  ansible.builtin.assert:
    that: probed.failed_probes | length == 0
    fail_msg: "{{ probed.results | rejectattr('passed') | map(attribute='reason') | list }}"
'''

RETURN = r'''
results:
  description: One record per probe, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The probe's name.
      type: str
    kind:
      description: The probe's kind.
      type: str
    netns:
      description: The namespace it ran in (null for the module's own).
      type: str
    target:
      description: The address probed.
      type: str
    passed:
      description: Whether the expectation held (on the last attempt).
      type: bool
    expected:
      description: The expectation as text, for example the hop list.
      type: str
    observed:
      description: What was observed, as text (C(path) flags unreachable hops like traceroute, C(!N), C(!H)).
      type: str
    reason:
      description: Why it failed, for example C(hop 2 expected 192.168.56.11, observed 10.0.2.2); empty when passed.
      type: str
    hops:
      description: For C(path), the observed hop addresses, C(*) for a silent hop.
      type: list
      elements: str
    attempts:
      description: How many times it ran.
      type: int
    duration:
      description: Seconds it took, retries included.
      type: float
  sample:
    - name: client-2 -> httpd
      kind: path
      netns: client-2
      target: 10.244.1.2
      passed: true
      expected: 10.244.2.1 192.168.56.11 10.244.1.2
      observed: 10.244.2.1 192.168.56.11 10.244.1.2
      reason: ''
      hops: [10.244.2.1, 192.168.56.11, 10.244.1.2]
      attempts: 1
      duration: 0.004
failed_probes:
  description: The names of the probes that failed.
  returned: always
  type: list
  elements: str
  sample: []
duration:
  description: Seconds the whole call took.
  returned: always
  type: float
  sample: 0.05
'''

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.k8slab.podnet.plugins.module_utils.probe import (
    PROBES, ProbeInputError, run_probes, validate_probes)


def main():
    probe_spec = dict(
        name=dict(type='str', required=True),
        kind=dict(type='str', required=True, choices=sorted(PROBES)),
        netns=dict(type='str'),
        target=dict(type='str'),
        hops=dict(type='list', elements='str'),
        max_hops=dict(type='int'),
        bind_dev=dict(type='str'),
        dev=dict(type='str'),
        gateway=dict(type='str'),
        forbid_dev=dict(type='list', elements='str', default=[]),
        address=dict(type='str'),
        port=dict(type='int', default=80),
        url_path=dict(type='str', default='/'),
        status=dict(type='int', default=200),
        body=dict(type='str'),
        mtu=dict(type='int'),
        endpoints=dict(type='list', elements='str'),
        requests=dict(type='int', default=60),
        qname=dict(type='str'),
        answer=dict(type='str'),
        max_seconds=dict(type='float', default=1.0),
        pod=dict(type='str'),
        container=dict(type='str'),
        store=dict(type='path'),
    )
    module = AnsibleModule(
        argument_spec=dict(
            probes=dict(type='list', elements='dict', options=probe_spec),
            plan=dict(type='dict', options=dict(var=dict(type='str', required=True),
                                                node=dict(type='str'))),
            netns=dict(type='str'),
            wait=dict(type='float', default=1.0),
            silence_wait=dict(type='float'),
            retries=dict(type='int', default=2),
            retry_delay=dict(type='float', default=0.5),
            workers=dict(type='int', default=32),
        ),
        mutually_exclusive=[('probes', 'plan')],
        required_one_of=[('probes', 'plan')],
        supports_check_mode=True,
    )
    p = module.params
    start = time.monotonic()
    # The invocation leaves the probes out: each result names its probe, and echoing them
    # (every option filled in) tripled what a node of a 10x20 lab sent back.
    invocation = dict(module_args=dict((k, v) for k, v in p.items() if k != 'probes'))
    if p['plan'] is not None:
        # The action plugin turns a plan into probes on the controller; only it can read it.
        module.fail_json(msg='plan %r is read by the k8slab.podnet.probe action plugin on the '
                             'controller and cannot be given to the module itself' % (p['plan'],),
                         invocation=invocation)
    try:
        probes = validate_probes(p['probes'], p['netns'])
        for opt in ('wait', 'silence_wait'):
            if p[opt] is not None and not 0 < p[opt] <= 30:
                raise ProbeInputError('%s %r must be more than 0 and at most 30 seconds'
                                      % (opt, p[opt]))
        if p['retries'] < 0 or p['retry_delay'] < 0 or p['workers'] < 1:
            raise ProbeInputError('retries %r, retry_delay %r must not be negative and workers %r '
                                  'at least 1' % (p['retries'], p['retry_delay'], p['workers']))
    except ProbeInputError as e:
        module.fail_json(msg=str(e), invocation=invocation)
    ip_bin = module.get_bin_path('ip', required=True)
    results = run_probes(probes, p['wait'], p['retries'], p['retry_delay'], p['workers'], ip_bin,
                         p['silence_wait'])
    module.exit_json(changed=False, results=results,
                     failed_probes=[r['name'] for r in results if not r['passed']],
                     duration=round(time.monotonic() - start, 3), invocation=invocation)


if __name__ == '__main__':
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: cni_ipam
short_description: Allocate pod addresses from a CNI host-local IPAM store
description:
  - Allocates (O(state=present)) or releases (O(state=absent)) IP addresses for containers in
    the on-disk store of the CNI C(host-local) IPAM plugin, C(<data_dir>/<network>/), byte for
    byte as host-local 1.1.1 writes it, so this module and the real plugin can share one store
    at the same time.
  - One file per allocated IP, named by the IP and holding C(<container id>\r\n<ifname>) with no
    trailing newline; C(last_reserved_ip.0) holding the bare last reserved IP; an empty C(lock)
    file on which an exclusive C(flock) (not C(lockf)) is held for the whole
    read-modify-write.
  - Allocation is round robin from the last reserved IP, wrapping from O(range_end) to
    O(range_start), skipping the gateway, exactly as host-local does.
  - Unlike host-local, a container and interface that already hold an address in the range get
    that address back and the store is left unchanged, so the module is idempotent.
  - The list form O(containers) allocates or releases for many containers under one lock in one
    call; if any of them cannot be served, nothing is written.
  - Bad input fails with a message naming the value and leaves the store (and the file system)
    untouched.
version_added: 1.0.0
author: k8slab.podnet developers (@k8slab)
options:
  network:
    description:
      - CNI network name; the store is the directory O(data_dir)/O(network).
      - Must match C(^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$), as CNI requires.
    type: str
    required: true
  subnet:
    description:
      - The subnet to allocate from, for example C(10.244.1.0/24). Host bits must be zero; a
        V(/31) or V(/32) (IPv6 V(/127), V(/128)) is refused.
      - Required when O(state=present).
    type: str
  range_start:
    description:
      - First allocatable address (inclusive). Defaults to the subnet's network address + 1.
      - The network address and the IPv4 broadcast address are refused here, in O(range_end)
        and in O(gateway) - neighbours cannot reach a pod holding one. (host-local 1.1.1
        accepts them and hands them out; that is its bug, not shared here.)
    type: str
  range_end:
    description:
      - Last allocatable address (inclusive). Defaults to the broadcast address - 1 (IPv6 the
        last address of the subnet).
    type: str
  gateway:
    description:
      - Gateway address, never allocated and returned with every allocation. Defaults to the
        network address + 1.
    type: str
  data_dir:
    description:
      - Directory holding one store per network, host-local's C(dataDir).
    type: path
    default: /var/lib/cni/networks
  container_id:
    description:
      - The container to allocate for or release. Must match C(^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$).
      - Mutually exclusive with O(containers); one of the two is required.
    type: str
  ifname:
    description:
      - The container's interface name (at most 15 bytes, no C(/), C(:) or whitespace).
    type: str
    default: eth0
  ip:
    description:
      - Request this address instead of the next free one (host-local's C(IP) argument). It
        must lie in the range, not be the gateway and not be held by another container. Like
        host-local, reserving it moves C(last_reserved_ip).
      - An address outside the range fails as host-local's ADD does, and like it moves
        C(last_reserved_ip.0) to the next free address (host-local allocates it, then
        releases it on that error), so the next allocation is the same from either.
        Nothing else is written.
      - Ignored when O(state=absent).
    type: str
  containers:
    description:
      - List form; each element is one container with the singular options. Processed in
        order under a single lock, so the first pod of a fresh store gets the first free
        address after the gateway.
    type: list
    elements: dict
    suboptions:
      container_id:
        description: The container.
        type: str
        required: true
      ifname:
        description: Its interface name.
        type: str
        default: eth0
      ip:
        description: A requested address, as O(ip).
        type: str
  state:
    description:
      - V(present) allocates (or returns the address already held), V(absent) releases every
        address held by the container and interface (or, when none, by the container id
        alone, as host-local's old store format did). Releasing an unknown container is not an
        error and changes nothing.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - k8slab.podnet.attributes
attributes:
  diff_mode:
    description: Shows each store file that changes (CR shown as C(\r)).
  platform:
    support: full
    platforms: linux
    description: Needs a local file system that supports C(flock) for the store.
notes:
  - Only one range set with one range is supported (host-local's C(ranges) with one element);
    its round-robin cursor is C(last_reserved_ip.0).
  - There is no C(netns) option because the store is a file system object, not network state;
    to use a node's private store, run the task on that node (for example through the
    C(k8slab.podnet.netns) connection plugin).
seealso:
  - name: CNI host-local IPAM plugin
    description: The reference implementation whose store this module shares.
    link: https://www.cni.dev/plugins/current/ipam/host-local/
'''

EXAMPLES = r'''
- name: Give the pods of node-1 their addresses in one call
  k8slab.podnet.cni_ipam:
    network: cbr0
    subnet: 10.244.1.0/24
    containers:
      - container_id: httpd
      - container_id: client
  register: ipam

- name: Show httpd's address (10.244.1.2/24 on a fresh store)
  ansible.builtin.debug:
    msg: "{{ ipam.allocations[0].ip }} via {{ ipam.allocations[0].gateway }}"

- name: Pin one container to an address
  k8slab.podnet.cni_ipam:
    network: cbr0
    subnet: 10.244.1.0/24
    container_id: dns
    ip: 10.244.1.53

- name: Release a pod's address
  k8slab.podnet.cni_ipam:
    network: cbr0
    container_id: client
    state: absent
'''

RETURN = r'''
ip:
  description: The container's address with prefix length (single form, O(state=present)).
  returned: when O(container_id) is given and O(state=present)
  type: str
  sample: 10.244.1.2/24
gateway:
  description: The range's gateway (single form, O(state=present)).
  returned: when O(container_id) is given and O(state=present)
  type: str
  sample: 10.244.1.1
allocations:
  description: One entry per container, in the order given, with the address it holds.
  returned: when O(state=present)
  type: list
  elements: dict
  contains:
    container_id:
      description: The container.
      type: str
      sample: httpd
    ifname:
      description: Its interface name.
      type: str
      sample: eth0
    ip:
      description: Address with prefix length.
      type: str
      sample: 10.244.1.2/24
    gateway:
      description: The gateway.
      type: str
      sample: 10.244.1.1
released:
  description: One entry per container with the addresses whose files were removed.
  returned: when O(state=absent)
  type: list
  elements: dict
  contains:
    container_id:
      description: The container.
      type: str
      sample: client
    ifname:
      description: Its interface name.
      type: str
      sample: eth0
    ips:
      description: The released addresses (empty when the container held none).
      type: list
      elements: str
      sample: [10.244.1.3]
before:
  description:
    - The addresses each requested container and interface held before the run, keyed
      C(container_id/ifname) (in the range with O(state=present), any with O(state=absent)).
    - The module runs no commands; its changes are the store files in the diff.
  returned: always
  type: dict
  sample: {httpd/eth0: []}
after:
  description: The same after the run (in check mode, as it would be).
  returned: always
  type: dict
  sample: {httpd/eth0: [10.244.1.2]}
store:
  description: The store directory.
  returned: always
  type: str
  sample: /var/lib/cni/networks/cbr0
'''

from ansible_collections.k8slab.podnet.plugins.module_utils.argspec import PodnetModule
from ansible_collections.k8slab.podnet.plugins.module_utils.hostlocal import (
    HostLocalError, Range, ensure, render_diff, validate_requests)


def main():
    module = PodnetModule(
        argument_spec=dict(
            network=dict(type='str', required=True),
            subnet=dict(type='str'),
            range_start=dict(type='str'),
            range_end=dict(type='str'),
            gateway=dict(type='str'),
            data_dir=dict(type='path', default='/var/lib/cni/networks'),
            container_id=dict(type='str'),
            ifname=dict(type='str', default='eth0'),
            ip=dict(type='str'),
            containers=dict(type='list', elements='dict', options=dict(
                container_id=dict(type='str', required=True),
                ifname=dict(type='str', default='eth0'),
                ip=dict(type='str'),
            )),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
        ),
        mutually_exclusive=[('container_id', 'containers'), ('ip', 'containers')],
        required_one_of=[('container_id', 'containers')],
        required_if=[('state', 'present', ('subnet',))],
        supports_check_mode=True,
    )
    p = module.params
    single = p['containers'] is None
    try:
        rng = None
        if p['subnet'] is not None:
            rng = Range(p['subnet'], p['range_start'], p['range_end'], p['gateway'])
        items = ([{'container_id': p['container_id'], 'ifname': p['ifname'], 'ip': p['ip']}]
                 if single else p['containers'])
        requests = validate_requests(items, p['state'], rng)
        res = ensure(p['data_dir'], p['network'], rng, requests, p['state'], module.check_mode)
    except HostLocalError as e:
        module.fail_json(msg=str(e))

    result = dict(changed=res['changed'], store=res['store'], before=res['before'],
                  after=res['after'])
    if p['state'] == 'present':
        result['allocations'] = res['allocations']
        if single:
            result['ip'] = res['allocations'][0]['ip']
            result['gateway'] = res['allocations'][0]['gateway']
    else:
        result['released'] = res['released']
    if module._diff:
        result['diff'] = render_diff(res['store'], res['changes'])
    module.exit_json(**result)


if __name__ == '__main__':
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: cni_config
short_description: The CNI network config and flannel subnet file of a flannel host-gw node
version_added: 0.1.0
description:
  - Writes the two files a flannel node carries, so a lab node can be compared with a real one
    - the CNI network configuration list (C(/etc/cni/net.d/10-flannel.conflist)) and flannel's
    lease file (C(/run/flannel/subnet.env)).
  - The conflist is kube-flannel's own - network C(cbr0), C(cniVersion) 0.3.1, a C(flannel)
    plugin whose C(delegate) sets C(hairpinMode) and C(isDefaultGateway), chained with
    C(portmap). flannel's plugin (or M(k8slab.podnet.cni_attachment) where no flannel binary
    is installed) expands it from C(subnet.env) into the C(bridge) plugin on C(cni0) with
    C(host-local) IPAM on the node's subnet and a route to the cluster network.
  - Settings that differ from flannel's defaults are written where flannel reads them - a
    bridge other than C(cni0) as C(delegate.bridge), a non-default O(data_dir) as
    C(ipam.dataDir) and a non-default O(subnet_file) as C(subnetFile) of the flannel plugin.
  - C(subnet.env) holds C(FLANNEL_NETWORK), C(FLANNEL_SUBNET) (the node's gateway address,
    e.g. C(10.244.1.1/24)), C(FLANNEL_MTU) and C(FLANNEL_IPMASQ), in flannel's order.
  - Both files in one call; missing parent directories are created. Files are replaced
    atomically, so a reader never sees half a file.
author: k8slab.podnet developers (@k8slab)
options:
  subnet:
    description: The node's pod subnet, host bits zero, e.g. C(10.244.1.0/24).
    type: str
  cluster_cidr:
    description: The cluster's pod network (flannel's C(Network)), e.g. C(10.244.0.0/16).
    type: str
  network:
    description:
      - CNI network name; also the host-local store directory under O(data_dir). Must match
        C(^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$), as CNI requires.
    type: str
    default: cbr0
  bridge:
    description: The bridge the pods are ports of (an interface name).
    type: str
    default: cni0
  mtu:
    description: MTU of the bridge and pod interfaces (C(FLANNEL_MTU)).
    type: int
    default: 1500
  ipmasq:
    description:
      - C(FLANNEL_IPMASQ) - flannel masquerades traffic leaving the cluster network, so the
        bridge plugin's own C(ipMasq) is off (as flannel's CNI plugin sets it).
    type: bool
    default: true
  data_dir:
    description: host-local's store directory (C(dataDir)).
    type: path
    default: /var/lib/cni/networks
  conf_file:
    description: Path of the CNI network configuration list.
    type: path
    default: /etc/cni/net.d/10-flannel.conflist
  subnet_file:
    description: Path of flannel's subnet file.
    type: path
    default: /run/flannel/subnet.env
  state:
    description: C(present) writes both files, C(absent) removes them (directories stay).
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - k8slab.podnet.attributes
attributes:
  diff_mode:
    description: Shows the content of each file before and after.
  platform:
    support: full
    platforms: posix
    description: Plain files; no other dependencies.
seealso:
  - module: k8slab.podnet.bridge
  - module: k8slab.podnet.cni_ipam
'''

EXAMPLES = r'''
- name: CNI config and subnet.env of node-1
  k8slab.podnet.cni_config:
    subnet: 10.244.1.0/24
    cluster_cidr: 10.244.0.0/16
'''

RETURN = r'''
changed_files:
  description: The files written or removed (or that would be in check mode).
  returned: always
  type: list
  elements: str
  sample: [/etc/cni/net.d/10-flannel.conflist, /run/flannel/subnet.env]
gateway:
  description: The bridge's address, C(FLANNEL_SUBNET).
  returned: when O(state=present)
  type: str
  sample: 10.244.1.1/24
'''

import ipaddress
import json
import os

from ansible_collections.k8slab.podnet.plugins.module_utils.argspec import PodnetModule
from ansible_collections.k8slab.podnet.plugins.module_utils.files import read_text, write_atomic
from ansible_collections.k8slab.podnet.plugins.module_utils.hostlocal import (
    HostLocalError, validate_network_name)
from ansible_collections.k8slab.podnet.plugins.module_utils.iproute import (
    IprouteError, validate_ifname)


def conflist(p):
    """kube-flannel's cni-conf.json; non-default paths and bridge where flannel reads them."""
    flannel = {'type': 'flannel', 'delegate': {'hairpinMode': True, 'isDefaultGateway': True}}
    if p['bridge'] != 'cni0':
        flannel['delegate']['bridge'] = p['bridge']
    if p['subnet_file'] != '/run/flannel/subnet.env':
        flannel['subnetFile'] = p['subnet_file']
    if p['data_dir'] != '/var/lib/cni/networks':
        flannel['ipam'] = {'dataDir': p['data_dir']}
    return json.dumps({
        'name': p['network'],
        'cniVersion': '0.3.1',
        'plugins': [flannel, {'type': 'portmap', 'capabilities': {'portMappings': True}}],
    }, indent=2) + '\n'


def subnet_env(p, gateway):
    return ('FLANNEL_NETWORK=%s\nFLANNEL_SUBNET=%s\nFLANNEL_MTU=%d\nFLANNEL_IPMASQ=%s\n'
            % (p['cluster_cidr'], gateway, p['mtu'], 'true' if p['ipmasq'] else 'false'))


def main():
    module = PodnetModule(
        argument_spec=dict(
            subnet=dict(type='str'),
            cluster_cidr=dict(type='str'),
            network=dict(type='str', default='cbr0'),
            bridge=dict(type='str', default='cni0'),
            mtu=dict(type='int', default=1500),
            ipmasq=dict(type='bool', default=True),
            data_dir=dict(type='path', default='/var/lib/cni/networks'),
            conf_file=dict(type='path', default='/etc/cni/net.d/10-flannel.conflist'),
            subnet_file=dict(type='path', default='/run/flannel/subnet.env'),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
        ),
        required_if=[('state', 'present', ('subnet', 'cluster_cidr'))],
        supports_check_mode=True,
    )
    p = module.params
    result = dict(changed=False, changed_files=[])
    wanted = {}
    if p['state'] == 'present':
        try:
            validate_network_name(p['network'])
            validate_ifname(p['bridge'], 'bridge')
        except (HostLocalError, IprouteError) as e:
            module.fail_json(msg=str(e), **result)
        try:
            subnet = ipaddress.ip_network(p['subnet'], strict=True)
        except ValueError as e:
            module.fail_json(msg='subnet %r is not a valid network (host bits must be zero): %s'
                             % (p['subnet'], e), **result)
        try:
            cluster = ipaddress.ip_network(p['cluster_cidr'], strict=True)
        except ValueError as e:
            module.fail_json(msg='cluster_cidr %r is not a valid network: %s'
                             % (p['cluster_cidr'], e), **result)
        if subnet.version != cluster.version or not subnet.subnet_of(cluster):
            module.fail_json(msg='subnet %s is outside cluster_cidr %s' % (subnet, cluster),
                             **result)
        if subnet.num_addresses < 4:
            module.fail_json(msg='subnet %s is too small for a gateway and a pod' % subnet,
                             **result)
        if not 68 <= p['mtu'] <= 65535:
            module.fail_json(msg='mtu %d is out of range (68-65535)' % p['mtu'], **result)
        gateway = '%s/%d' % (subnet.network_address + 1, subnet.prefixlen)
        result['gateway'] = gateway
        wanted = {p['conf_file']: conflist(p), p['subnet_file']: subnet_env(p, gateway)}
    else:
        wanted = {p['conf_file']: None, p['subnet_file']: None}

    diffs = []
    for path in (p['conf_file'], p['subnet_file']):
        before, after = read_text(path), wanted[path]
        if before == after or (after is None and not os.path.lexists(path)):
            continue
        result['changed_files'].append(path)
        diffs.append(dict(before_header=path, after_header=path,
                          before=before or '', after=after or ''))
        if module.check_mode:
            continue
        try:
            if after is None:
                os.unlink(path)
            else:
                write_atomic(path, after, makedirs=True)
        except (IOError, OSError) as e:
            module.fail_json(msg='cannot %s %s: %s' % ('remove' if after is None else 'write',
                                                       path, e), **result)
    result['changed'] = bool(result['changed_files'])
    if module._diff:
        result['diff'] = diffs
    module.exit_json(**result)


if __name__ == '__main__':
    main()

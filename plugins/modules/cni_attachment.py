#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: cni_attachment
short_description: Attach pod sandboxes to the node's CNI network, as a container runtime does
version_added: 0.2.0
description:
  - The container runtime's side of CNI (what libcni and C(cnitool) do) for a node's pod
    sandboxes. It reads the node's network config list, runs each plugin of it from
    C(CNI_PATH) in order with the CNI protocol (C(CNI_COMMAND) C(ADD), C(CHECK) or C(DEL),
    C(CNI_CONTAINERID), C(CNI_NETNS), C(CNI_IFNAME), C(CNI_PATH), C(CNI_ARGS); the plugin's
    config on stdin with the list's C(name) and C(cniVersion) and the previous plugin's result
    as C(prevResult); the result JSON on stdout) and keeps libcni's results cache
    (C(<cache_dir>/results/<network>-<container id>-<ifname>), kind C(cniCacheV1)).
  - An attachment with a cached result is checked, not re-added - the cached interfaces,
    addresses and routes must still be in the kernel, and for lists of C(cniVersion) 0.4.0 or
    later the plugins' own C(CHECK) must pass. On drift the attachment is deleted (C(DEL)) and
    added again, and the task reports a change with what drifted.
  - C(state=absent) runs C(DEL) through the plugins in reverse order and removes the cache
    entry. C(DEL) of an attachment that is already gone succeeds and changes nothing.
  - Every plugin of the list must be in O(cni_path) before anything runs. A plugin that fails
    during C(ADD) fails the task with that plugin's own error code and message, after the
    attachment was deleted again (nothing left in the host-local store or the cache).
  - Debian packages the standard plugins but not flannel's. Where no C(flannel) executable is
    in O(cni_path), a C(flannel) plugin of the list is run as flannel's plugin does it - its
    delegate (the bridge plugin by default) gets the config flannel builds from
    C(/run/flannel/subnet.env) (C(FLANNEL_SUBNET) as the host-local range, a route to
    C(FLANNEL_NETWORK), C(mtu) C(FLANNEL_MTU), C(ipMasq) the opposite of C(FLANNEL_IPMASQ),
    C(isGateway)), saved under C(/var/lib/cni/flannel/<container id>) for C(DEL).
author: k8slab.podnet developers (@k8slab)
options:
  attachments:
    description:
      - The node's pod sandboxes to attach (or detach), all in one call.
    type: list
    elements: dict
    required: true
    suboptions:
      container_id:
        description:
          - C(CNI_CONTAINERID) - the sandbox's id (kubelet passes the pause container's id).
          - Letters, digits, C(_), C(.), C(-); starting with a letter or digit.
        type: str
        required: true
      netns:
        description:
          - C(CNI_NETNS) - path of the sandbox's network namespace, e.g. C(/run/netns/httpd).
          - Required to add; for C(DEL) the cached one is used when not given.
        type: path
      ifname:
        description: C(CNI_IFNAME) - the interface to create inside the sandbox.
        type: str
        default: eth0
      args:
        description: C(CNI_ARGS) as a dict (passed as C(K1=V1;K2=V2)).
        type: dict
      capability_args:
        description:
          - The runtime's capability arguments (for example C(portMappings)); each plugin gets
            in its C(runtimeConfig) only those it declares in its C(capabilities).
        type: dict
      state:
        description: Overrides the top-level O(state) for this attachment.
        type: str
        choices: [present, absent]
  state:
    description: C(present) adds (or checks and repairs) the attachments, C(absent) deletes them.
    type: str
    choices: [present, absent]
    default: present
  conf_dir:
    description: The directory of network configuration files.
    type: path
    default: /etc/cni/net.d
  conf_file:
    description:
      - The network config list to use, a file name in O(conf_dir) or an absolute path.
      - Default is the lexically first C(*.conflist) in O(conf_dir), as kubelet picks it.
    type: str
  cni_path:
    description: C(CNI_PATH) - directories searched for the plugins, in order.
    type: list
    elements: path
    default: [/usr/lib/cni]
  cache_dir:
    description: libcni's cache directory; results are kept in its C(results) subdirectory.
    type: path
    default: /var/lib/cni
  check:
    description:
      - Whether an attachment that has a cached result is checked for drift. Off, a cached
        result counts as attached.
    type: bool
    default: true
attributes:
  platform:
    support: full
    platforms: linux
    description: Needs root, C(nsenter) and iproute2 with JSON output; the plugins run in the
      namespace the module runs in (the node).
seealso:
  - module: k8slab.podnet.cni_config
  - module: k8slab.podnet.cni_ipam
extends_documentation_fragment:
  - k8slab.podnet.attributes
'''

EXAMPLES = r'''
- name: Wire the node's pod sandboxes through the node's conflist and the real plugins
  k8slab.podnet.cni_attachment:
    attachments:
      - {container_id: "{{ httpd_sandbox_id }}", netns: /run/netns/httpd}
      - {container_id: "{{ client_sandbox_id }}", netns: /run/netns/client-1}

- name: Remove one pod's attachment (a second run changes nothing)
  k8slab.podnet.cni_attachment:
    state: absent
    attachments:
      - {container_id: "{{ httpd_sandbox_id }}"}
'''

RETURN = r'''
network:
  description: The network's name (the conflist's C(name)).
  returned: always
  type: str
  sample: cbr0
conf_file:
  description: The network config list used.
  returned: always
  type: str
  sample: /etc/cni/net.d/10-flannel.conflist
cni_version:
  description: The conflist's C(cniVersion).
  returned: always
  type: str
  sample: 0.3.1
flannel_emulated:
  description: Whether a C(flannel) plugin of the list was run by this module (no flannel binary).
  returned: always
  type: bool
attachments:
  description: One entry per attachment, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    container_id:
      description: C(CNI_CONTAINERID).
      type: str
    ifname:
      description: C(CNI_IFNAME).
      type: str
    netns:
      description: C(CNI_NETNS).
      type: str
    action:
      description: C(added), C(unchanged), C(repaired), C(deleted) or C(absent) (nothing to
        delete); in check mode what would be done.
      type: str
    drift:
      description: What no longer matched the cached result (for C(repaired)).
      type: list
      elements: str
    result:
      description: The CNI result (from the plugins, or the cached one when unchanged).
      type: dict
    cache_file:
      description: The libcni results cache file of the attachment.
      type: str
commands:
  description: The plugin invocations run, as C(COMMAND type), in order.
  returned: always
  type: list
  elements: str
  sample: [ADD bridge, ADD portmap]
'''

import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.k8slab.podnet.plugins.module_utils import command
from ansible_collections.k8slab.podnet.plugins.module_utils import libcni
from ansible_collections.k8slab.podnet.plugins.module_utils.iproute import validate_ifname


def validate(module, attachments, state):
    """fail_json naming the element and value for bad input, before anything runs."""
    seen = set()
    out = []
    for n, a in enumerate(attachments):
        a = dict(a, state=a.get('state') or state)
        where = 'attachments[%d]' % n
        cid = a['container_id']
        if not cid or not libcni._ID_RE.match(cid):
            module.fail_json(msg='%s: container_id %r is not a valid CNI container id '
                             '(letters, digits, _ . -)' % (where, cid))
        try:
            validate_ifname(a['ifname'], 'ifname')
        except Exception as e:  # pylint: disable=broad-except
            module.fail_json(msg='%s: %s' % (where, e))
        if a['state'] == 'present':
            if not a.get('netns'):
                module.fail_json(msg='%s: netns is required to add container %s'
                                 % (where, cid))
            if not os.path.exists(a['netns']):
                module.fail_json(msg='%s: netns %s does not exist' % (where, a['netns']))
        key = (cid, a['ifname'])
        if key in seen:
            module.fail_json(msg='%s: container %s interface %s is listed twice'
                             % (where, cid, a['ifname']))
        seen.add(key)
        out.append(a)
    return out


class Kernel(object):
    """Reads links and routes with ``ip -j``, in the node or (through nsenter) a sandbox."""

    def __init__(self, module):
        self.module = module
        self.ip = module.get_bin_path('ip', required=True)
        self.nsenter = module.get_bin_path('nsenter', required=True)

    def _json(self, netns, args):
        argv = ([self.nsenter, '--net=%s' % netns] if netns else []) + [self.ip, '-j'] + args
        rc, out, err = command.run(argv)
        if rc != 0:
            return None
        return json.loads(out) if out.strip() else []

    def links(self, netns):
        data = self._json(netns, ['addr', 'show'])
        return dict((link['ifname'], link) for link in (data or []))

    def routes(self, netns):
        return (self._json(netns, ['-4', 'route', 'show']) or []) + \
            (self._json(netns, ['-6', 'route', 'show']) or [])


def view(entry):
    """The part of a cached entry the diff shows."""
    if not entry:
        return {}
    result = entry.get('result') or {}
    return {'netns': entry.get('netns', ''),
            'interfaces': [i.get('name') for i in result.get('interfaces') or []],
            'ips': [i.get('address') for i in result.get('ips') or []]}


def main():
    element = dict(
        container_id=dict(type='str', required=True),
        netns=dict(type='path'),
        ifname=dict(type='str', default='eth0'),
        args=dict(type='dict'),
        capability_args=dict(type='dict'),
        state=dict(type='str', choices=['present', 'absent']),
    )
    module = AnsibleModule(
        argument_spec=dict(
            attachments=dict(type='list', elements='dict', options=element, required=True),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            conf_dir=dict(type='path', default='/etc/cni/net.d'),
            conf_file=dict(type='str'),
            cni_path=dict(type='list', elements='path', default=['/usr/lib/cni']),
            cache_dir=dict(type='path', default='/var/lib/cni'),
            check=dict(type='bool', default=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    attachments = validate(module, p['attachments'], p['state'])
    try:
        conf_path = libcni.find_conflist(p['conf_dir'], p['conf_file'])
        with open(conf_path, 'rb') as f:
            conf_bytes = f.read()
        conf = libcni.parse_conflist(conf_bytes, conf_path)
        runtime = libcni.Runtime(conf, conf_bytes, p['cni_path'], p['cache_dir'])
    except (libcni.CNIError, IOError, OSError) as e:
        module.fail_json(msg=str(e))

    kernel = Kernel(module)
    result = dict(changed=False, network=conf['name'], conf_file=conf_path,
                  cni_version=conf.get('cniVersion', ''), attachments=[], commands=[],
                  flannel_emulated=any(x['flannel_emulated'] for x in runtime.plan))
    diffs = []
    for a in attachments:
        cached = runtime.cache_read(a)
        if a['state'] == 'absent' and not a.get('netns') and cached:
            a['netns'] = cached.get('netns', '')
        out = dict(container_id=a['container_id'], ifname=a['ifname'], netns=a.get('netns') or '',
                   cache_file=runtime.cache_path(a), drift=[], result=None)
        try:
            if a['state'] == 'absent':
                out['action'] = 'deleted' if cached else 'absent'
                if not module.check_mode:
                    runtime.delete(a)
                after = None
            elif cached is None:
                out['action'] = 'added'
                if not module.check_mode:
                    out['result'] = runtime.add(a)
                after = out['result']
            else:
                out['result'] = cached.get('result')
                if p['check']:
                    if cached.get('netns') and cached['netns'] != a['netns']:
                        out['drift'].append('netns changed from %s to %s'
                                            % (cached['netns'], a['netns']))
                    out['drift'] += libcni.result_drift(cached.get('result') or {}, a['netns'],
                                                        kernel.links, kernel.routes)
                    if not out['drift']:
                        try:
                            runtime.check(a, cached.get('result'))
                        except libcni.CNIError as e:
                            out['drift'].append(str(e))
                out['action'] = 'repaired' if out['drift'] else 'unchanged'
                if out['drift'] and not module.check_mode:
                    old = dict(a, netns=cached.get('netns') or a['netns'])
                    runtime.delete(old)
                    out['result'] = runtime.add(a)
                after = out['result']
        except libcni.CNIError as e:
            result['commands'] = ['%s %s' % c for c in runtime.log]
            result['attachments'].append(out)
            module.fail_json(msg='container %s: %s' % (a['container_id'], e),
                             cni_error=e.as_dict(), **result)
        except (IOError, OSError) as e:
            result['commands'] = ['%s %s' % c for c in runtime.log]
            module.fail_json(msg='container %s: %s' % (a['container_id'], e), **result)
        if out['action'] in ('added', 'repaired', 'deleted'):
            result['changed'] = True
            before_view = view(cached)
            after_view = view({'netns': a.get('netns'), 'result': after}) if after else (
                {} if a['state'] == 'absent' else {'netns': a['netns'], 'ips': ['(allocated)']})
            diffs.append(dict(before_header='%s %s' % (a['container_id'], a['ifname']),
                              after_header='%s %s' % (a['container_id'], a['ifname']),
                              before=json.dumps(before_view, indent=2, sort_keys=True) + '\n',
                              after=json.dumps(after_view, indent=2, sort_keys=True) + '\n'))
        result['attachments'].append(out)
    result['commands'] = ['%s %s' % c for c in runtime.log]
    if module._diff:
        result['diff'] = diffs
    module.exit_json(**result)


if __name__ == '__main__':
    main()

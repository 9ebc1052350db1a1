#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: pod_sandbox
short_description: Keep lab pods' sandboxes (pause process, network namespace) and their record
version_added: 0.2.0
description:
  - A pod's sandbox is what a kubelet's runtime makes first (RunPodSandbox) - a network
    namespace C(/run/netns/POD) with C(lo) up and a tiny long-lived "pause" process
    (C(catatonit -P), podman's static pause, 0.7 MiB; C(sleep infinity) where catatonit is not
    installed) started inside it, which pins the namespace. Its id is 64 random
    hex digits; the CNI container id of the pod's address is that id.
  - The node's record of its pods, C(RUNTIME_DIR/pods/POD/pod.json), is written here (name,
    namespace, uid, labels, sandbox id, pid, netns); the record, not the workload's files,
    says which pods the node has. M(k8slab.podnet.pod_container) adds the containers.
  - A sandbox is kept (same id, no change) while its pause process lives in the namespace
    C(/run/netns/POD) names. Otherwise - the pause was killed, the namespace was deleted by
    hand while processes still ran in it, or the pod has no record - the pod is rebuilt as a
    kubelet does - every process left in the old namespace is stopped, the stale host veth
    (O(pods[].veth)) and the namespace are deleted, and a new sandbox with a new id is made.
    The old id is returned in RV(released) so its address can be released from the store.
  - O(purge) (and O(state=absent)) remove pods - their processes are stopped, their namespace,
    host veth and record deleted, and their sandbox ids returned in RV(released).
author: k8slab.podnet developers (@k8slab)
options:
  pods:
    description: The node's pods.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The pod; also its network namespace's name.
        type: str
        required: true
      namespace:
        description: The pod's Kubernetes namespace.
        type: str
        default: default
      labels:
        description: The pod's labels (Service selectors match them).
        type: dict
        default: {}
      veth:
        description:
          - The host end of the pod's veth pair, deleted when the sandbox is rebuilt (a pod
            namespace deleted by hand leaves it paired with an end in the orphaned namespace).
        type: str
  purge:
    description: Also remove every pod that has a record but is not in O(pods).
    type: bool
    default: false
  runtime_dir:
    description: The runtime's state directory; records live in C(RUNTIME_DIR/pods/POD/).
    type: path
    default: /run/podnet
  state:
    description: C(present) keeps a live sandbox per pod; C(absent) removes the pods.
    type: str
    choices: [present, absent]
    default: present
attributes:
  platform:
    support: full
    platforms: linux
    description: Needs root and C(ip) (iproute2).
seealso:
  - module: k8slab.podnet.pod_container
  - module: k8slab.podnet.cni_ipam
  - module: k8slab.podnet.veth
extends_documentation_fragment:
  - k8slab.podnet.attributes
'''

EXAMPLES = r'''
- name: The node's sandboxes; pods taken out of the list are removed
  k8slab.podnet.pod_sandbox:
    pods:
      - {name: httpd, veth: veth1a2b3c4d}
      - {name: app-1, namespace: test001, labels: {app: lab-web}}
    purge: true
  register: sandboxes

- name: Give each sandbox its address (the sandbox id is the CNI container id)
  k8slab.podnet.cni_ipam:
    network: cbr0
    subnet: 10.244.1.0/24
    containers: "{{ sandboxes.sandboxes | k8slab.podnet.ipam_containers }}"
'''

RETURN = r'''
sandboxes:
  description: One entry per pod of O(pods) (O(state=present)).
  returned: always
  type: list
  elements: dict
  sample: [{name: httpd, id: 3f1c0e..., pid: 4242, netns: /run/netns/httpd, created: false}]
created:
  description: Pods whose sandbox was (or would be) made, new or rebuilt.
  returned: always
  type: list
  elements: str
  sample: [httpd]
removed:
  description: Pods whose sandbox and record were (or would be) removed.
  returned: always
  type: list
  elements: str
  sample: [old-client]
released:
  description:
    - CNI container ids whose addresses should be released now - ids of sandboxes that were
      rebuilt or removed, and the pod name of a pod whose namespace exists without a record
      (the container id of pods made before records existed). A new pod releases nothing.
  returned: always
  type: list
  elements: str
  sample: [9a0b1c...]
stopped:
  description: Pids of the processes stopped (pause, containers, orphans in the namespace).
  returned: always
  type: list
  elements: int
  sample: [4242, 4250]
'''

import os
import shutil
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.k8slab.podnet.plugins.module_utils import command
from ansible_collections.k8slab.podnet.plugins.module_utils import pods as P
from ansible_collections.k8slab.podnet.plugins.module_utils.netns import NetnsError, link_exists
from ansible_collections.k8slab.podnet.plugins.module_utils.nschild import (
    netns_add, netns_delete)

SUBOPTIONS = dict(
    name=dict(type='str', required=True),
    namespace=dict(type='str', default='default'),
    labels=dict(type='dict', default={}),
    veth=dict(type='str'),
)


class Sandboxes(object):
    def __init__(self, module):
        self.m = module
        self.runtime_dir = module.params['runtime_dir']
        self.check = module.check_mode
        self.ip = module.get_bin_path('ip', required=True)
        self.result = dict(sandboxes=[], created=[], removed=[], released=[], stopped=[])

    def run(self, argv, ok_missing=False):
        rc, out, err = command.run(argv)
        if rc != 0 and not (ok_missing and ('Cannot find' in err or 'No such file' in err)):
            raise P.PodError('%s failed (rc=%d): %s' % (' '.join(argv), rc, err.strip()))
        return out

    def teardown(self, name, record, veth):
        """Stops every process of the pod (recorded or found in its namespaces), deletes its
        host veth and its namespace. Returns the pids stopped."""
        netns = os.path.join(P.NETNS_DIR, name)
        inodes = {P.net_inode(netns)}
        pids = set()
        pause = P.pause_pid(self.runtime_dir, record)
        if pause:
            pids.add(pause)
            inodes.add(P.net_inode('/proc/%d/ns/net' % pause))
        for c in (record or {}).get('containers') or []:
            pid = c.get('pid')
            if isinstance(pid, int) and P.alive(pid) and P.cmdline(pid) == c.get('argv'):
                pids.add(pid)
                inodes.add(P.net_inode('/proc/%d/ns/net' % pid))
        inodes.discard(P.net_inode('/proc/self/ns/net'))  # never the node's own namespace
        pids.update(P.pids_in_netns(inodes))
        pids.discard(os.getpid())
        if not self.check:
            P.stop(sorted(pids))
            if veth and link_exists(veth):  # a new pod has none: no `ip` for nothing
                self.run([self.ip, 'link', 'del', 'dev', veth], ok_missing=True)
            if os.path.exists(netns):
                netns_delete(name)
        return sorted(pids)

    def create(self, pod):
        """A new netns with lo up and a pause process in it; undone on failure."""
        name = pod['name']
        pdir = P.pod_dir(self.runtime_dir, name)
        netns = netns_add(name)  # `ip netns add` and `ip -n NAME link set lo up`, no process
        try:
            if not os.path.isdir(pdir):
                os.makedirs(pdir, 0o755)
            pause = os.path.join(pdir, P.PAUSE)
            if os.path.lexists(pause):
                os.unlink(pause)
            program, args = P.pause_program(self.m.get_bin_path)
            os.symlink(program, pause)
            pid = P.spawn([pause] + args, name)
            # It has exec'd when spawn returns; make sure it holds the pod's namespace.
            deadline = time.time() + 5
            while P.net_inode('/proc/%d/ns/net' % pid) != P.net_inode(netns):
                if time.time() > deadline or not P.alive(pid):
                    raise P.PodError('pod %s: the pause process did not start in %s'
                                     % (name, netns))
                time.sleep(0.005)
            return pid
        except Exception:
            self.teardown(name, None, None)
            raise

    def present(self, pod, before, after):
        name = pod['name']
        rec = P.read_record(self.runtime_dir, name)
        pid = P.pause_pid(self.runtime_dir, rec)
        netns = os.path.join(P.NETNS_DIR, name)
        healthy = (pid is not None and P.net_inode(netns) is not None
                   and P.net_inode('/proc/%d/ns/net' % pid) == P.net_inode(netns))
        before[name] = ('sandbox %s pid %d' % (rec['sandbox']['id'][:13], pid)) if healthy else (
            'no sandbox' if rec is None else 'sandbox %s not ready'
            % ((rec.get('sandbox') or {}).get('id') or '?')[:13])
        meta = dict(name=name, namespace=pod['namespace'], labels=pod['labels'] or {})
        if healthy:
            changed = any(rec.get(k) != v for k, v in meta.items())
            if changed and not self.check:
                rec.update(meta)
                P.write_record(self.runtime_dir, rec)
            after[name] = before[name]
            self.result['sandboxes'].append(dict(name=name, id=rec['sandbox']['id'], pid=pid,
                                                 netns=netns, created=False))
            return changed
        # Rebuild: a kubelet makes a new sandbox (new id) when the old one is not ready.
        self.result['created'].append(name)
        if rec or P.net_inode(netns) is not None:
            # A recorded sandbox, or a namespace without a record (a pod made before records:
            # its container id was its name), may hold an address; a new pod holds none.
            self.result['released'].append(((rec or {}).get('sandbox') or {}).get('id') or name)
        self.result['stopped'].extend(self.teardown(name, rec, pod.get('veth')))
        sid = P.new_sandbox_id()
        new_pid = None
        if not self.check:
            new_pid = self.create(pod)
            containers = (rec or {}).get('containers') or []
            record = dict(meta, uid=(rec or {}).get('uid') or P.new_sandbox_id()[:32],
                          sandbox=dict(id=sid, pid=new_pid, netns=netns, ip=None,
                                       veth=pod.get('veth'), state='SANDBOX_READY'),
                          # The old containers died with the old sandbox; pod_container
                          # restarts them and counts the restart.
                          containers=[dict(c, state='Exited', pid=None) for c in containers],
                          ready=P.ready_text([]) if not containers else '0/%d' % len(containers))
            P.write_record(self.runtime_dir, record)
        after[name] = 'sandbox %s pid %s' % (sid[:13], new_pid or '(new)')
        self.result['sandboxes'].append(dict(name=name, id=sid, pid=new_pid, netns=netns,
                                             created=True))
        return True

    def absent(self, name, veth, before, after):
        rec = P.read_record(self.runtime_dir, name)
        pdir = P.pod_dir(self.runtime_dir, name)
        if rec is None and not os.path.isdir(pdir) and not os.path.exists(
                os.path.join(P.NETNS_DIR, name)):
            return False
        sid = ((rec or {}).get('sandbox') or {}).get('id')
        before[name] = 'sandbox %s' % (sid or 'unknown')[:13]
        after[name] = 'no sandbox'
        self.result['removed'].append(name)
        self.result['released'].append(sid or name)
        self.result['stopped'].extend(self.teardown(name, rec, veth))
        if not self.check and os.path.isdir(pdir):
            shutil.rmtree(pdir)
        return True


def main():
    module = AnsibleModule(
        argument_spec=dict(
            pods=dict(type='list', elements='dict', options=SUBOPTIONS, required=True),
            purge=dict(type='bool', default=False),
            runtime_dir=dict(type='path', default=P.RUNTIME_DIR),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
        ),
        supports_check_mode=True,
    )
    p = module.params
    sb = Sandboxes(module)
    seen = set()
    # Every pod is checked before anything changes: bad input changes nothing.
    for pod in p['pods']:
        name = pod['name']
        if not name or name in ('.', '..') or '/' in name or len(name) > 63:
            module.fail_json(msg='pods: pod name %r is invalid: it must be a file name of at '
                                 'most 63 characters' % (name,), **sb.result)
        if name in seen:
            module.fail_json(msg='pods: pod %s is listed twice' % name, **sb.result)
        seen.add(name)
    changed = False
    before, after = {}, {}
    try:
        for pod in p['pods']:
            if p['state'] == 'present':
                changed |= sb.present(pod, before, after)
            else:
                changed |= sb.absent(pod['name'], pod.get('veth'), before, after)
        if p['purge'] or p['state'] == 'absent':
            for name in P.record_names(p['runtime_dir']):
                if name not in seen:
                    rec = P.read_record(p['runtime_dir'], name) or {}
                    changed |= sb.absent(name, (rec.get('sandbox') or {}).get('veth'),
                                         before, after)
    except (P.PodError, NetnsError, OSError, IOError, ValueError) as e:
        module.fail_json(msg=str(e), **sb.result)
    res = dict(sb.result, changed=changed)
    if module._diff:
        res['diff'] = dict(before=before, after=after)
    module.exit_json(**res)


if __name__ == '__main__':
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: netns_lab_dns
short_description: The NAT router's DNS server at 10.0.2.3 (what VirtualBox answers there)
description:
  - Runs dnsmasq in network namespace O(netns), bound to O(address) only, answering the lab's
    names from O(hosts) (A and reverse records) and everything else at once, locally, with
    NXDOMAIN. Nothing is ever forwarded, so no lookup leaves the machine or waits for a
    resolver the lab cannot reach.
  - The configuration is kept in O(conf); dnsmasq runs daemonized with its PID in O(pidfile).
    It is running when that PID is alive in O(netns); a changed configuration restarts it.
  - O(address) must already be an address of the namespace (the module fails otherwise).
options:
  netns:
    description: Network namespace to serve in (the single-host lab's NAT router).
    type: str
    required: true
  address:
    description: Address to answer on.
    type: str
    default: 10.0.2.3
  hosts:
    description: "Names and their IPv4 addresses, e.g. C({controlplane: 192.168.56.10})."
    type: dict
    default: {}
  domain:
    description: Optional domain appended to each name in O(hosts) as well (both forms answer).
    type: str
  conf:
    description: Path of the dnsmasq configuration file.
    type: path
    required: true
  pidfile:
    description: Where dnsmasq writes its PID.
    type: path
    required: true
  state:
    description: C(present) runs it, C(absent) stops it.
    type: str
    choices: [present, absent]
    default: present
attributes:
  platform:
    support: full
    platforms: linux
    description: Needs dnsmasq, iproute2 (C(ip netns exec)) and root.
author: k8slab.podnet developers (@k8slab)
extends_documentation_fragment:
  - k8slab.podnet.attributes
'''

EXAMPLES = r'''
- name: DNS at 10.0.2.3 on node-1's NAT network
  k8slab.podnet.netns_lab_dns:
    netns: k8slab-nat-node-1
    hosts: {controlplane: 192.168.56.10, node-1: 192.168.56.11, node-2: 192.168.56.12,
            outside: 203.0.113.1}
    conf: /run/k8slab/k8slab/nat-node-1/dnsmasq.conf
    pidfile: /run/k8slab/k8slab/nat-node-1/dnsmasq.pid
'''

RETURN = r'''
pid:
  description: PID of dnsmasq (absent when stopped).
  returned: success
  type: int
'''

import ipaddress
import json
import os
import signal
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.k8slab.podnet.plugins.module_utils import command
from ansible_collections.k8slab.podnet.plugins.module_utils.clusterdns import dnsmasq_conf
from ansible_collections.k8slab.podnet.plugins.module_utils.files import read_text, write_atomic


def running(pidfile, netns):
    """dnsmasq's PID when it runs in netns, else None."""
    try:
        pid = int((read_text(pidfile) or '').strip())
        if os.stat('/proc/%d/ns/net' % pid).st_ino == os.stat('/run/netns/' + netns).st_ino:
            return pid
    except (OSError, ValueError):
        pass
    return None


def stop(pid):
    os.kill(pid, signal.SIGTERM)
    for dummy in range(50):
        if not os.path.exists('/proc/%d' % pid):
            return
        time.sleep(0.05)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            netns=dict(type='str', required=True),
            address=dict(type='str', default='10.0.2.3'),
            hosts=dict(type='dict', default={}),
            domain=dict(type='str'),
            conf=dict(type='path', required=True),
            pidfile=dict(type='path', required=True),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if not os.path.exists('/run/netns/' + p['netns']):
        module.fail_json(msg='network namespace %r (netns) does not exist' % p['netns'])
    pid = running(p['pidfile'], p['netns'])
    if p['state'] == 'absent':
        if pid and not module.check_mode:
            stop(pid)
        module.exit_json(changed=bool(pid))

    records = []
    for name, ip in sorted(p['hosts'].items()):
        try:
            ip = str(ipaddress.IPv4Address(str(ip)))
        except ValueError:
            module.fail_json(msg='hosts: %r of %r is not an IPv4 address' % (ip, name))
        names = [name] + (['%s.%s' % (name, p['domain'])] if p['domain'] else [])
        records.append((','.join(names), ip))
    try:
        ipaddress.ip_address(p['address'])
    except ValueError:
        module.fail_json(msg='address %r is not an IP address' % p['address'])
    out = command.run_ok(module, ['ip', '-j', '-n', p['netns'], 'addr', 'show'])
    local = [a['local'] for link in json.loads(out) for a in link.get('addr_info', [])]
    if p['address'] not in local:
        module.fail_json(msg='address %s is not an address of network namespace %s'
                         % (p['address'], p['netns']))

    # local=/#/: every name is this server's to answer; unknown ones get NXDOMAIN at once.
    text = dnsmasq_conf({'host': records}, domain='#', extra=[
        'listen-address=' + p['address'], 'bind-interfaces', 'pid-file=' + p['pidfile'],
        'log-facility=' + os.path.join(os.path.dirname(p['conf']), 'dnsmasq.log')])
    current = read_text(p['conf'])
    changed = current != text or pid is None
    if changed and not module.check_mode:
        write_atomic(p['conf'], text, makedirs=True)
        if pid:
            stop(pid)
        # dnsmasq daemonizes (closing its inherited descriptors) after it bound its socket,
        # so a zero exit status means it serves.
        command.run_ok(module, ['ip', 'netns', 'exec', p['netns'], 'dnsmasq',
                                '--conf-file=' + p['conf']])
        pid = running(p['pidfile'], p['netns'])
        if pid is None:
            module.fail_json(msg='dnsmasq in %s did not start; see %s' % (p['netns'], p['conf']))
    module.exit_json(changed=changed, pid=pid,
                     diff=dict(before=current or '', after=text, before_header=p['conf'],
                               after_header=p['conf']))


if __name__ == '__main__':
    main()

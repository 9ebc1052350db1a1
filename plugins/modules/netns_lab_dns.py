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
  - The lab's NAT routers take one call with O(servers). Every server's namespace and address
    are checked before anything changes.
options:
  netns:
    description:
      - Network namespace to serve in (the single-host lab's NAT router).
      - Exactly one of O(netns) and O(servers) is required.
    type: str
  servers:
    description:
      - Several servers in one run, one per namespace, each with its own O(netns), O(conf) and
        O(pidfile); O(address), O(hosts), O(domain) and O(state) apply to all of them.
    type: list
    elements: dict
    suboptions:
      netns:
        description: As O(netns).
        type: str
        required: true
      conf:
        description: As O(conf).
        type: path
        required: true
      pidfile:
        description: As O(pidfile).
        type: path
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
    description: Path of the dnsmasq configuration file (with O(netns)).
    type: path
  pidfile:
    description: Where dnsmasq writes its PID (with O(netns)).
    type: path
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

- name: The same in every NAT router of the lab, in one run
  k8slab.podnet.netns_lab_dns:
    servers:
      - {netns: k8slab-node-1-nat, conf: /run/k8slab/k8slab/dns/node-1/dnsmasq.conf,
         pidfile: /run/k8slab/k8slab/dns/node-1/dnsmasq.pid}
      - {netns: k8slab-node-2-nat, conf: /run/k8slab/k8slab/dns/node-2/dnsmasq.conf,
         pidfile: /run/k8slab/k8slab/dns/node-2/dnsmasq.pid}
    hosts: {node-1: 192.168.56.11, node-2: 192.168.56.12}
'''

RETURN = r'''
pid:
  description: PID of dnsmasq (absent when stopped).
  returned: success, with O(netns)
  type: int
servers:
  description: Each server of O(servers), in order, with its PID (absent when stopped) and whether
    it changed.
  returned: success, with O(servers)
  type: list
  elements: dict
  sample: [{netns: k8slab-node-1-nat, pid: 4242, changed: false}]
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


def serve(module, server, text):
    """Keeps dnsmasq running in server['netns'] with configuration text: written to
    server['conf'], restarted when it changed or is not running. Returns (changed, pid, diff)."""
    pid = running(server['pidfile'], server['netns'])
    current = read_text(server['conf'])
    changed = current != text or pid is None
    if changed and not module.check_mode:
        write_atomic(server['conf'], text, makedirs=True)
        if pid:
            stop(pid)
        # dnsmasq daemonizes (closing its inherited descriptors) after it bound its socket,
        # so a zero exit status means it serves.
        command.run_ok(module, ['ip', 'netns', 'exec', server['netns'], 'dnsmasq',
                                '--conf-file=' + server['conf']])
        pid = running(server['pidfile'], server['netns'])
        if pid is None:
            module.fail_json(msg='dnsmasq in %s did not start; see %s'
                             % (server['netns'], server['conf']))
    return changed, pid, dict(before=current or '', after=text, before_header=server['conf'],
                              after_header=server['conf'])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            netns=dict(type='str'),
            servers=dict(type='list', elements='dict', options=dict(
                netns=dict(type='str', required=True),
                conf=dict(type='path', required=True),
                pidfile=dict(type='path', required=True))),
            address=dict(type='str', default='10.0.2.3'),
            hosts=dict(type='dict', default={}),
            domain=dict(type='str'),
            conf=dict(type='path'),
            pidfile=dict(type='path'),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
        ),
        required_one_of=[('netns', 'servers')],
        mutually_exclusive=[('netns', 'servers'), ('conf', 'servers'), ('pidfile', 'servers')],
        required_by=dict(netns=('conf', 'pidfile')),
        supports_check_mode=True,
    )
    p = module.params
    one = p['servers'] is None
    servers = [dict(netns=p['netns'], conf=p['conf'], pidfile=p['pidfile'])] if one \
        else p['servers']
    # Everything is checked before anything changes.
    for i, server in enumerate(servers):
        if not os.path.exists('/run/netns/' + server['netns']):
            module.fail_json(msg='network namespace %r (%s) does not exist'
                             % (server['netns'], 'netns' if one else 'servers[%d].netns' % i))
    results = []
    if p['state'] == 'absent':
        for server in servers:
            pid = running(server['pidfile'], server['netns'])
            if pid and not module.check_mode:
                stop(pid)
            results.append(dict(netns=server['netns'], changed=bool(pid)))
        changed = any(r['changed'] for r in results)
        module.exit_json(changed=changed, **({} if one else dict(servers=results)))

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
    for server in servers:
        out = command.run_ok(module, ['ip', '-j', '-n', server['netns'], 'addr', 'show'])
        local = [a['local'] for link in json.loads(out) for a in link.get('addr_info', [])]
        if p['address'] not in local:
            module.fail_json(msg='address %s is not an address of network namespace %s'
                             % (p['address'], server['netns']))

    diffs = []
    for server in servers:
        # local=/#/: every name is this server's to answer; unknown ones get NXDOMAIN at once.
        text = dnsmasq_conf({'host': records}, domain='#', extra=[
            'listen-address=' + p['address'], 'bind-interfaces', 'pid-file=' + server['pidfile'],
            'log-facility=' + os.path.join(os.path.dirname(server['conf']), 'dnsmasq.log')])
        changed, pid, diff = serve(module, server, text)
        results.append(dict(netns=server['netns'], pid=pid, changed=changed))
        diffs.append(diff)
    changed = any(r['changed'] for r in results)
    if one:
        module.exit_json(changed=changed, pid=results[0]['pid'], diff=diffs[0])
    module.exit_json(changed=changed, servers=results, diff=diffs)


if __name__ == '__main__':
    main()

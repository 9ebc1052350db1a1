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
    are checked, and no two servers may share a namespace or a file, before anything changes;
    if a server then fails to start, the servers this run changed are put back as they were.
options:
  netns:
    description:
      - Network namespace to serve in (the single-host lab's NAT router).
      - Exactly one of O(netns) and O(servers) is required.
    type: str
  servers:
    description:
      - Several servers in one run, one per namespace, each with its own C(netns), C(conf) and
        C(pidfile) (all three required, as for a single server); O(address), O(hosts),
        O(domain) and O(state) apply to all of them.
      - Not with O(netns), O(conf) or O(pidfile).
    type: list
    elements: dict
    suboptions:
      netns:
        description: Network namespace to serve in.
        type: str
        required: true
      conf:
        description: Path of its dnsmasq configuration file.
        type: path
        required: true
      pidfile:
        description: Where its dnsmasq writes its PID.
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
    description: Path of the dnsmasq configuration file. Required with O(netns).
    type: path
  pidfile:
    description: Where dnsmasq writes its PID. Required with O(netns).
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
    netns: k8slab-node-1-nat
    hosts: {controlplane: 192.168.56.10, node-1: 192.168.56.11, node-2: 192.168.56.12,
            outside: 203.0.113.1}
    conf: /run/k8slab/k8slab/dns/node-1/dnsmasq.conf
    pidfile: /run/k8slab/k8slab/dns/node-1/dnsmasq.pid

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
  description: PID of dnsmasq; null when it is stopped, or in check mode when it would start.
  returned: success, with O(netns)
  type: int
servers:
  description: Each server of O(servers), in order.
  returned: success, with O(servers); also when a server fails to start (what was undone)
  type: list
  elements: dict
  contains:
    netns:
      description: Its namespace.
      type: str
    pid:
      description: Its PID, as RV(pid).
      type: int
    changed:
      description: Whether its configuration or process changed (or was put back after a failure).
      type: bool
  sample: [{netns: k8slab-node-1-nat, pid: 4242, changed: false}]
'''

import ipaddress
import json
import os
import re
import signal
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.k8slab.podnet.plugins.module_utils import command
from ansible_collections.k8slab.podnet.plugins.module_utils.clusterdns import dnsmasq_conf
from ansible_collections.k8slab.podnet.plugins.module_utils.files import read_text, write_atomic
from ansible_collections.k8slab.podnet.plugins.module_utils.iproute import (
    IprouteError, validate_netns_name)

LOG_NAME = 'dnsmasq.log'  # beside the configuration
# A host or domain name: dot-separated labels of letters, digits, '-' and '_'.
DNS_NAME = re.compile(r'[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?'
                      r'(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*\Z')


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


def start(server):
    """Starts dnsmasq in server['netns'] with server['conf']; returns (rc, stderr). dnsmasq
    daemonizes (closing its inherited descriptors) after it bound its socket, so rc 0 means
    it serves."""
    rc, _out, err = command.run(['ip', 'netns', 'exec', server['netns'], 'dnsmasq',
                                 '--conf-file=' + server['conf']])
    return rc, err


class DnsError(Exception):
    """A server that could not be configured or did not start; the message names its
    namespace."""


def serve(server, text, check):
    """Keeps dnsmasq running in server['netns'] (a dict of netns, conf, pidfile) with the
    configuration text: written to server['conf'], restarted when it changed or is not
    running. Returns (changed, pid or None, the configuration before or None, whether a server
    ran before). Raises DnsError when dnsmasq does not start, once this server is put back."""
    pid = running(server['pidfile'], server['netns'])
    current = read_text(server['conf'])
    changed = current != text or pid is None
    if changed and not check:
        try:
            write_atomic(server['conf'], text, makedirs=True)
        except (IOError, OSError) as e:
            raise DnsError('cannot write %s for the server in %s: %s'
                           % (server['conf'], server['netns'], e))
        if pid:
            stop(pid)
        rc, err = start(server)
        new = running(server['pidfile'], server['netns'])
        if rc != 0 or new is None:
            put_back([(server, current, pid is not None)])
            raise DnsError('dnsmasq in %s did not start (rc=%d): %s; see %s' % (
                server['netns'], rc, (err or '').strip(), server['conf']))
        return True, new, current, pid is not None
    return changed, pid, current, pid is not None


def put_back(done):
    """Undoes serve() for each (server, configuration before or None, ran before) of done,
    last first, best effort: the old configuration, and its server running again if one ran;
    a new one stopped and its file removed."""
    for server, before, ran in reversed(done):
        pid = running(server['pidfile'], server['netns'])
        if pid:
            stop(pid)
        try:
            if before is None:
                os.unlink(server['conf'])
            else:
                write_atomic(server['conf'], before)
        except OSError:
            pass
        if ran and before is not None:
            start(server)


def server_files(server):
    """{what: normalized absolute path} of the files a server writes: conf, pidfile and the
    log beside conf."""
    conf = os.path.normpath(server['conf'])
    return dict(conf=conf, pidfile=os.path.normpath(server['pidfile']),
                log=os.path.join(os.path.dirname(conf), LOG_NAME))


def check_servers(module, servers, one):
    """Fails naming the option when a namespace is not a plain existing name, a file is not
    an absolute path, or two servers (or one server's files) share a namespace or a file:
    they would fight over one address or file."""
    seen = {}
    for i, server in enumerate(servers):
        where = (lambda key: key) if one else (lambda key: 'servers[%d].%s' % (i, key))
        ns = server['netns']
        try:
            validate_netns_name(ns, where('netns'))
        except IprouteError as e:
            module.fail_json(msg=str(e))
        if not os.path.exists('/run/netns/' + ns):
            module.fail_json(msg='network namespace %r (%s) does not exist'
                             % (ns, where('netns')))
        for key in ('conf', 'pidfile'):
            if not server[key] or not os.path.isabs(server[key]):
                module.fail_json(msg='%s %r is not an absolute path' % (where(key), server[key]))
        for key, value in [('netns', ns)] + sorted(server_files(server).items()):
            other = seen.setdefault(('netns' if key == 'netns' else 'file', value),
                                    (i, key))
            if other != (i, key):
                module.fail_json(msg='%s %r is also %s' % (
                    where(key), value, key if one else 'servers[%d].%s' % other))


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
    if one and not (p['netns'] and p['conf'] and p['pidfile']):
        # An explicit null passes required_one_of and required_by (they count keys given).
        module.fail_json(msg='netns, conf and pidfile (or servers) are required, got netns=%r '
                         'conf=%r pidfile=%r' % (p['netns'], p['conf'], p['pidfile']))
    servers = [dict(netns=p['netns'], conf=p['conf'], pidfile=p['pidfile'])] if one \
        else p['servers']
    # Everything is checked before anything changes.
    check_servers(module, servers, one)
    results = []
    if p['state'] == 'absent':
        for server in servers:
            pid = running(server['pidfile'], server['netns'])
            if pid and not module.check_mode:
                stop(pid)
            results.append(dict(netns=server['netns'], changed=bool(pid)))
        changed = any(r['changed'] for r in results)
        module.exit_json(changed=changed, **({} if one else dict(servers=results)))

    # Names go into dnsmasq's configuration: a line break would add a directive of its own.
    if p['domain'] is not None and not DNS_NAME.match(p['domain']):
        module.fail_json(msg='domain %r is not a DNS name' % p['domain'])
    records = []
    for name, ip in sorted(p['hosts'].items()):
        if not DNS_NAME.match(name):
            module.fail_json(msg='hosts: %r is not a DNS name' % (name,))
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
    for i, server in enumerate(servers):
        out = command.run_ok(module, ['ip', '-j', '-n', server['netns'], 'addr', 'show'])
        local = [a['local'] for link in json.loads(out) for a in link.get('addr_info', [])]
        if p['address'] not in local:
            module.fail_json(msg='address %s is not an address of network namespace %s (%s)'
                             % (p['address'], server['netns'],
                                'netns' if one else 'servers[%d].netns' % i))

    diffs, done = [], []
    for server in servers:
        # local=/#/: every name is this server's to answer; unknown ones get NXDOMAIN at once.
        text = dnsmasq_conf({'host': records}, domain='#', extra=[
            'listen-address=' + p['address'], 'bind-interfaces', 'pid-file=' + server['pidfile'],
            'log-facility=' + server_files(server)['log']])
        try:
            changed, pid, before, ran = serve(server, text, module.check_mode)
        except DnsError as e:
            # Nothing half-made: the servers changed before this one go back as they were.
            put_back(done)
            module.fail_json(msg=str(e), servers=[
                dict(r, pid=running(s['pidfile'], s['netns'])) for r, s in zip(results, servers)])
        results.append(dict(netns=server['netns'], pid=pid, changed=changed))
        diffs.append(dict(before=before or '', after=text, before_header=server['conf'],
                          after_header=server['conf']))
        if changed and not module.check_mode:
            done.append((server, before, ran))
    changed = any(r['changed'] for r in results)
    if one:
        module.exit_json(changed=changed, pid=results[0]['pid'], diff=diffs[0])
    module.exit_json(changed=changed, servers=results, diff=diffs)


if __name__ == '__main__':
    main()

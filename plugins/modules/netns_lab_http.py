#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: netns_lab_http
short_description: A small HTTP server in a network namespace (the lab's registry stand-in)
description:
  - Serves O(root) over HTTP on O(address):O(port) with C(python3 -m http.server), started in
    network namespace O(netns), detached, with its PID in O(pidfile).
  - It is running when the PID in O(pidfile) is alive and in that namespace; otherwise it is
    started and the module waits until it listens (its socket, read from C(/proc)).
  - C(index.html) in O(root) is kept at O(index).
options:
  netns:
    description: Network namespace to serve in.
    type: str
    required: true
  address:
    description: Address to listen on.
    type: str
    required: true
  port:
    description: TCP port (1-65535).
    type: int
    default: 80
  root:
    description: Directory to serve (created when missing).
    type: path
    required: true
  index:
    description: Content of C(index.html).
    type: str
    default: "k8slab outside\n"
  pidfile:
    description: Where the server's PID is kept.
    type: path
    required: true
  state:
    description: C(present) runs it, C(absent) stops it.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - k8slab.podnet.attributes
attributes:
  diff_mode:
    support: none
    description: No diff.
  platform:
    support: full
    platforms: linux
    description: Needs iproute2 (C(ip netns exec)) and root.
author: k8slab.podnet developers (@k8slab)
'''

EXAMPLES = r'''
- name: Registry stand-in
  netns_lab_http:
    netns: k8slab-outside
    address: 203.0.113.1
    root: /run/k8slab/k8slab/outside/www
    pidfile: /run/k8slab/k8slab/outside/http.pid
'''

RETURN = r'''
pid:
  description: PID of the server (absent when stopped).
  returned: success
  type: int
'''

import json
import os
import signal
import sys
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.k8slab.podnet.plugins.module_utils import command
from ansible_collections.k8slab.podnet.plugins.module_utils.pods import listens


def running(pidfile, netns):
    """The server's PID when it runs in netns, else None."""
    try:
        with open(pidfile) as f:
            pid = int(f.read().strip())
        if os.stat('/proc/%d/ns/net' % pid).st_ino == os.stat('/run/netns/' + netns).st_ino:
            return pid
    except (IOError, OSError, ValueError):
        pass
    return None


def spawn(argv, log):
    """Start argv detached: its own session, stdin from /dev/null, output to log, no other
    inherited file (so Ansible does not wait for it). `ip netns exec` execs in place, so the
    pid returned is the server's."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            null = os.open(os.devnull, os.O_RDONLY)
            out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(null, 0)
            os.dup2(out, 1)
            os.dup2(out, 2)
            os.closerange(3, 65536)
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    return pid


def main():
    module = AnsibleModule(
        argument_spec=dict(
            netns=dict(type='str', required=True),
            address=dict(type='str', required=True),
            port=dict(type='int', default=80),
            root=dict(type='path', required=True),
            index=dict(type='str', default='k8slab outside\n'),
            pidfile=dict(type='path', required=True),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if not 1 <= p['port'] <= 65535:
        module.fail_json(msg='port %r must be 1-65535' % p['port'])
    if not os.path.exists('/run/netns/' + p['netns']):
        module.fail_json(msg='network namespace %r does not exist' % p['netns'])
    pid = running(p['pidfile'], p['netns'])
    changed = False

    if p['state'] == 'absent':
        if pid and not module.check_mode:
            os.kill(pid, signal.SIGTERM)
            os.unlink(p['pidfile'])
        module.exit_json(changed=bool(pid))

    index = os.path.join(p['root'], 'index.html')
    try:
        with open(index) as f:
            current = f.read()
    except (IOError, OSError):
        current = None
    if current != p['index']:
        changed = True
        if not module.check_mode:
            if not os.path.isdir(p['root']):
                os.makedirs(p['root'])
            with open(index, 'w') as f:
                f.write(p['index'])

    # Local connections (the probe below, a curl from inside) need the namespace's lo up.
    out = command.run_ok(module, ['ip', '-j', '-n', p['netns'], 'link', 'show', 'dev', 'lo'])
    if 'UP' not in json.loads(out)[0]['flags']:
        changed = True
        if not module.check_mode:
            command.run_ok(module, ['ip', '-n', p['netns'], 'link', 'set', 'dev', 'lo', 'up'])

    if pid is None:
        changed = True
        if not module.check_mode:
            log = os.path.join(os.path.dirname(p['pidfile']), 'http.log')
            pid = spawn(['ip', 'netns', 'exec', p['netns'], sys.executable, '-m', 'http.server',
                         '--bind', p['address'], '--directory', p['root'], str(p['port'])], log)
            with open(p['pidfile'], 'w') as f:
                f.write('%d\n' % pid)
            # Listening is accepting connections: read from /proc, not probed by a process.
            deadline = time.time() + 5
            while time.time() < deadline:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    os.unlink(p['pidfile'])
                    module.fail_json(msg='the HTTP server in %s exited; see %s' % (p['netns'], log))
                if listens(pid, p['port']):
                    break
                time.sleep(0.01)
            else:
                # Nothing half-made: a server that does not listen is not left running.
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                os.unlink(p['pidfile'])
                module.fail_json(msg='the HTTP server in %s does not accept connections on %s:%s'
                                 ' (see %s)' % (p['netns'], p['address'], p['port'], log))
    module.exit_json(changed=changed, pid=pid)


if __name__ == '__main__':
    main()

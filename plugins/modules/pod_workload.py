#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: pod_workload
short_description: Start or stop the process a lab pod runs inside its network namespace
version_added: 0.1.0
description:
  - Keeps the workload of lab pods running, or stopped. A pod is a named network namespace
    (C(/run/netns/NAME)); its runtime state lives in C(RUN_DIR/POD/) - C(pid), C(log), the
    server C(server.py) and its web root C(www/).
  - C(httpd) runs a real HTTP server inside the pod's namespace - Python's C(http.server), as
    C(python3 -m http.server PORT) runs it, minus the start-up DNS lookup of its own name that
    stalls without DNS - serving C(RUN_DIR/POD/www/index.html), a page naming pod and node.
    The server is detached from Ansible and outlives the run; C(RUN_DIR/POD/pid) holds its pid.
  - C(sleep) runs nothing; a server left over from an earlier C(httpd) workload is stopped.
  - Every pod present has its runtime directory, so the directories of C(RUN_DIR) are the pods
    this node runs; O(purge) removes the ones no longer wanted.
  - A server counts as running when the pid in the pidfile is alive, is this module's
    server for that web root and port, and lives in the pod's current namespace (a pod namespace that
    was re-created gets a new server). Running means no change.
  - Many pods take one call.
author: k8slab.podnet developers (@k8slab)
options:
  name:
    description: The pod. Mutually exclusive with O(pods).
    type: str
  workload:
    description: What the pod runs.
    type: str
    choices: [httpd, sleep]
    default: sleep
  node:
    description: The node the pod runs on, named on the C(httpd) page.
    type: str
  port:
    description: TCP port of the C(httpd) server.
    type: int
    default: 80
  netns:
    description: The pod's network namespace name. Defaults to the pod name.
    type: str
  content:
    description: The C(httpd) page (C(index.html)). Defaults to a page naming the pod and node.
    type: str
  pods:
    description: Many pods in one call; each element takes the options above.
    type: list
    elements: dict
    suboptions:
      name:
        description: The pod.
        type: str
        required: true
      workload:
        description: What the pod runs.
        type: str
        choices: [httpd, sleep]
        default: sleep
      node:
        description: The node the pod runs on, named on the C(httpd) page.
        type: str
      port:
        description: TCP port of the C(httpd) server.
        type: int
        default: 80
      netns:
        description: The pod's network namespace name. Defaults to the pod name.
        type: str
      content:
        description: The C(httpd) page. Defaults to a page naming the pod and node.
        type: str
  purge:
    description:
      - Also stop and remove every pod that has a runtime directory in O(run_dir) but is not
        listed (a pod taken out of the inventory). They are returned in RV(purged), so their
        addresses and namespaces can be released next.
    type: bool
    default: false
  run_dir:
    description: Directory holding one runtime directory per pod.
    type: path
    default: /run/podnet
  state:
    description:
      - C(present) makes every pod run its workload.
      - C(absent) stops the pods' processes and removes their runtime directories.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - k8slab.podnet.attributes
attributes:
  platform:
    support: full
    platforms: linux
    description: Needs C(nsenter) (util-linux), named network namespaces and root.
seealso:
  - module: k8slab.podnet.netns
  - module: k8slab.podnet.veth
'''

EXAMPLES = r'''
- name: Serve HTTP from pod httpd, nothing in client-1
  k8slab.podnet.pod_workload:
    pods:
      - {name: httpd, node: node-1, workload: httpd}
      - {name: client-1, node: node-1, workload: sleep}

- name: The node's pods are exactly these; others are stopped and listed in purged
  k8slab.podnet.pod_workload:
    pods: [{name: httpd, node: node-1, workload: httpd}]
    purge: true
  register: workloads

- name: Stop everything and remove the runtime state
  k8slab.podnet.pod_workload:
    pods: [{name: httpd}, {name: client-1}]
    state: absent
'''

RETURN = r'''
started:
  description: Pods whose server was (or in check mode would be) started.
  returned: always
  type: list
  elements: str
  sample: [httpd]
stopped:
  description: Pods whose server was (or would be) stopped.
  returned: always
  type: list
  elements: str
  sample: []
files:
  description: Files and directories written or removed (or that would be).
  returned: always
  type: list
  elements: str
  sample: [/run/podnet/httpd/www/index.html, /run/podnet/httpd/server.py]
purged:
  description: Pods not listed whose runtime directories were (or would be) removed, see O(purge).
  returned: always
  type: list
  elements: str
  sample: [old-client]
pods:
  description: Each pod with its workload, and for a running server its pid and port.
  returned: always
  type: list
  elements: dict
  sample: [{name: httpd, workload: httpd, running: true, pid: 4242, port: 80}]
'''

import os
import shutil
import signal
import sys
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.k8slab.podnet.plugins.module_utils.files import read_text, write_atomic

NETNS_DIR = '/run/netns'

# The pod's HTTP server: Python's http.server serving a directory, as `python3 -m http.server
# PORT --directory WWW` does, except that it skips http.server's reverse lookup of its own name
# after bind(): a pod has no DNS, and that lookup would stall the start for 10 s or more.
SERVER = '''"""HTTP server of a k8slab.podnet pod: server.py PORT WEB_ROOT."""
import functools
import http.server
import socketserver
import sys


class Server(http.server.ThreadingHTTPServer):
    def server_bind(self):
        # Skips HTTPServer's getfqdn() of the bound address: there is no DNS in a pod.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[2])
Server(('0.0.0.0', int(sys.argv[1])), handler).serve_forever()
'''
SUBOPTIONS = dict(
    name=dict(type='str', required=True),
    workload=dict(type='str', choices=['httpd', 'sleep'], default='sleep'),
    node=dict(type='str'),
    port=dict(type='int', default=80),
    netns=dict(type='str'),
    content=dict(type='str'),
)


class WorkloadError(Exception):
    pass


def default_page(pod, node):
    where = 'pod %s on node %s' % (pod, node) if node else 'pod %s' % pod
    return ('<!DOCTYPE html>\n<html><head><title>%s</title></head>\n'
            '<body><h1>Hello from %s</h1></body></html>\n' % (where, where))


def ns_inode(path):
    try:
        st = os.stat(path)
        return (st.st_dev, st.st_ino)
    except OSError:
        return None


def alive(pid):
    stat = read_text('/proc/%d/stat' % pid)
    # The state letter follows the parenthesised command name; a zombie has exited.
    return stat is not None and stat.rsplit(')', 1)[-1].split()[0] not in ('Z', 'X')


def cmdline(pid):
    raw = read_text('/proc/%d/cmdline' % pid)
    return raw.split('\0') if raw else []


def server_pid(pod_dir):
    """The pid from the pidfile if it is a live http.server of this pod, else None."""
    raw = read_text(os.path.join(pod_dir, 'pid'))
    try:
        pid = int(raw.strip())
    except (AttributeError, ValueError):
        return None
    args = cmdline(pid)
    if alive(pid) and os.path.join(pod_dir, 'server.py') in args:
        return pid
    return None


def server_port(pid):
    """The port the server was started with (the argument before the web root)."""
    args = [a for a in cmdline(pid) if a]
    return args[-2] if len(args) >= 2 else None


def listening(pid, port):
    """True when the process's namespace has a TCP socket listening on port (LISTEN = 0A)."""
    for table in ('tcp', 'tcp6'):
        text = read_text('/proc/%d/net/%s' % (pid, table)) or ''
        for line in text.splitlines()[1:]:
            fields = line.split()
            if len(fields) > 3 and fields[3] == '0A' and int(fields[1].rsplit(':', 1)[1], 16) == port:
                return True
    return False


def stop(pid):
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        return
    deadline = time.time() + 3
    while alive(pid) and time.time() < deadline:
        time.sleep(0.05)
    if alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


# Starts the server detached: setsid (a new session), stdio on the log, nothing inherited from
# Ansible's pipes, so the run can end while the server goes on. setsid and nsenter exec in place,
# so the pid the shell prints is the server's own.
DETACH = 'log=$1; shift; "$@" </dev/null >>"$log" 2>&1 & echo $!'


def start(module, pod, pod_dir, netns_path):
    www = os.path.join(pod_dir, 'www')
    log = os.path.join(pod_dir, 'log')
    argv = ['/bin/sh', '-c', DETACH, 'sh', log, module.get_bin_path('setsid', required=True),
            module.get_bin_path('nsenter', required=True), '--net=%s' % netns_path,
            sys.executable, os.path.join(pod_dir, 'server.py'), str(pod['port']), www]
    rc, out, err = module.run_command(argv, cwd=www)
    try:
        pid = int(out.strip())
    except ValueError:
        raise WorkloadError('pod %s: could not start the HTTP server (rc=%d): %s'
                            % (pod['name'], rc, (err or out).strip()))
    write_atomic(os.path.join(pod_dir, 'pid'), '%d\n' % pid)
    deadline = time.time() + 10
    while time.time() < deadline:
        if not alive(pid):
            tail = (read_text(log) or '')[-600:]
            raise WorkloadError('pod %s: the HTTP server exited at once: %s'
                                % (pod['name'], tail.strip()))
        if listening(pid, pod['port']):
            return pid
        time.sleep(0.05)
    stop(pid)
    raise WorkloadError('pod %s: the HTTP server did not listen on port %d within 10 s'
                        % (pod['name'], pod['port']))


def reconcile(module, pod, run_dir, state, result):
    """Brings one pod to its wanted state; returns (before, after) for the diff."""
    check = module.check_mode
    name = pod['name']
    pod_dir = os.path.join(run_dir, name)
    www = os.path.join(pod_dir, 'www')
    index = os.path.join(www, 'index.html')
    netns_path = os.path.join(NETNS_DIR, pod.get('netns') or name)
    pid = server_pid(pod_dir)
    # A server in a namespace that was deleted or re-created no longer serves the pod.
    if pid and ns_inode('/proc/%d/ns/net' % pid) != ns_inode(netns_path):
        stale = True
    else:
        stale = False
    before = 'httpd running (pid %d)' % pid if pid and not stale else 'no server'
    if os.path.isdir(pod_dir):
        before += ', %s present' % pod_dir

    want_server = state == 'present' and pod['workload'] == 'httpd'
    if pid and (stale or not want_server or server_port(pid) != str(pod['port'])):
        result['stopped'].append(name)
        if not check:
            stop(pid)
        pid = None

    if state == 'absent':
        if os.path.isdir(pod_dir):
            result['files'].append(pod_dir)
            if not check:
                shutil.rmtree(pod_dir)
        result['pods'].append(dict(name=name, workload=pod['workload'], running=False))
        return before, 'no server'
    if not want_server:
        # The directory alone records the pod; anything an httpd workload left goes.
        leftovers = sorted(os.listdir(pod_dir)) if os.path.isdir(pod_dir) else []
        for entry in leftovers:
            path = os.path.join(pod_dir, entry)
            result['files'].append(path)
            if not check:
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
        if not os.path.isdir(pod_dir):
            result['files'].append(pod_dir)
            if not check:
                os.makedirs(pod_dir, 0o755)
        result['pods'].append(dict(name=name, workload=pod['workload'], running=False))
        return before, 'no server, %s present' % pod_dir

    page = pod.get('content')
    if page is None:
        page = default_page(name, pod.get('node'))
    if not os.path.isdir(www):
        result['files'].append(www)
        if not check:
            os.makedirs(www, 0o755)
    server = os.path.join(pod_dir, 'server.py')
    for path, text in ((index, page), (server, SERVER)):
        if read_text(path) != text:
            result['files'].append(path)
            if not check:
                write_atomic(path, text)
    if pid and server in result['files']:
        # A new server program takes effect on restart.
        result['stopped'].append(name)
        if not check:
            stop(pid)
        pid = None
    if pid is None:
        result['started'].append(name)
        if not check:
            pid = start(module, pod, pod_dir, netns_path)
    result['pods'].append(dict(name=name, workload='httpd', running=True, pid=pid,
                               port=pod['port']))
    return before, 'httpd running on port %d, %s present' % (pod['port'], pod_dir)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str'),
            workload=SUBOPTIONS['workload'],
            node=SUBOPTIONS['node'],
            port=SUBOPTIONS['port'],
            netns=SUBOPTIONS['netns'],
            content=SUBOPTIONS['content'],
            pods=dict(type='list', elements='dict', options=SUBOPTIONS),
            purge=dict(type='bool', default=False),
            run_dir=dict(type='path', default='/run/podnet'),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
        ),
        mutually_exclusive=[('name', 'pods')],
        required_one_of=[('name', 'pods')],
        supports_check_mode=True,
    )
    p = module.params
    pods = p['pods'] if p['pods'] is not None else [
        dict((k, p[k]) for k in SUBOPTIONS)]
    result = dict(started=[], stopped=[], files=[], pods=[], purged=[])
    seen = set()
    for pod in pods:
        # The pod name becomes a path component and a namespace name.
        if not pod['name'] or pod['name'] in ('.', '..') or '/' in pod['name']:
            module.fail_json(msg='pod name %r is invalid: it must be a non-empty file name'
                             % (pod['name'],), **result)
        if pod['name'] in seen:
            module.fail_json(msg='pod %s is listed twice' % pod['name'], **result)
        seen.add(pod['name'])
        if not 0 < pod['port'] < 65536:
            module.fail_json(msg='pod %s: port %d is not a TCP port'
                             % (pod['name'], pod['port']), **result)

        # Checked for every pod before anything changes, so bad input changes nothing.
        netns = pod['netns'] or pod['name']
        if (p['state'] == 'present' and pod['workload'] == 'httpd' and not module.check_mode
                and ns_inode(os.path.join(NETNS_DIR, netns)) is None):
            module.fail_json(msg='pod %s: its network namespace %s does not exist in %s'
                             % (pod['name'], netns, NETNS_DIR), **result)

    before, after = {}, {}
    try:
        if not module.check_mode and p['state'] == 'present' and not os.path.isdir(p['run_dir']):
            os.makedirs(p['run_dir'], 0o755)
        for pod in pods:
            before[pod['name']], after[pod['name']] = reconcile(module, pod, p['run_dir'],
                                                                p['state'], result)
        if p['purge'] and os.path.isdir(p['run_dir']):
            for name in sorted(os.listdir(p['run_dir'])):
                if name in seen or not os.path.isdir(os.path.join(p['run_dir'], name)):
                    continue
                result['purged'].append(name)
                stale = dict(name=name, workload='sleep', port=0, netns=None, node=None,
                             content=None)
                before[name], after[name] = reconcile(module, stale, p['run_dir'], 'absent',
                                                      result)
    except (WorkloadError, OSError, IOError) as e:
        module.fail_json(msg=str(e), **result)
    result['changed'] = bool(result['started'] or result['stopped'] or result['files'])
    if module._diff:
        result['diff'] = dict(before=before, after=after)
    module.exit_json(**result)


if __name__ == '__main__':
    main()

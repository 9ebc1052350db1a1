#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: pod_container
short_description: Run lab pods' containers inside their sandboxes and record their states
version_added: 0.2.0
description:
  - A container is a process started inside its pod's sandbox network namespace (it joins
    C(/proc/PAUSE_PID/ns/net), as containers join the pause container), so a pod's
    containers share one IP, one port space and C(localhost). M(k8slab.podnet.pod_sandbox)
    makes the sandbox and the record first.
  - Workloads - C(http) (an HTTP server on O(pods[].containers[].port) whose body names the
    pod, node and container; C(GET /hello) answers C(HELLO <pod>)), C(echo) (TCP and UDP
    echo on the port), C(sleep) (nothing, forever), C(command) (the given argv).
  - Each container runs under a shell shim that keeps its pid (C(CONTAINER.pid)), output
    (C(CONTAINER.log)) and exit status (C(CONTAINER.exit)) in the pod's directory, so a
    container that exits keeps its status and logs. The record (C(pod.json)) says Running or
    Exited (reason C(Completed) or C(Error)) per container and C(ready) n/m per pod.
  - "A container that fails to start does not fail the task (a kubelet does not either); an
    C(http) container on a port another container holds exits with the kernel's
    C(bind() to 0.0.0.0:80 failed (98: Address already in use)), the pod shows 1/2 ready and
    the other container keeps serving. Set O(fail_not_ready) to fail instead."
  - O(pods[].restart_policy) as kubelet's - C(Always) (the default, as for Deployments)
    restarts an exited container on the next run, C(OnFailure) only one that failed,
    C(Never) leaves it exited. A container whose spec changed is restarted; containers no
    longer listed are stopped and dropped from the record.
author: k8slab.podnet developers (@k8slab)
options:
  pods:
    description: The node's pods and their containers.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The pod (its record and sandbox must exist).
        type: str
        required: true
      node:
        description: The node, named in the C(http) body.
        type: str
      restart_policy:
        description: What to do with an exited container on the next run.
        type: str
        choices: [Always, OnFailure, Never]
        default: Always
      containers:
        description: The pod's containers (at least one; names unique in the pod).
        type: list
        elements: dict
        required: true
        suboptions:
          name:
            description: The container.
            type: str
            required: true
          workload:
            description: What the container runs (C(httpd) is an alias of C(http)).
            type: str
            required: true
          port:
            description:
              - The port of C(http) and C(echo) (1-65535), optional for C(command).
              - The run waits for each container it starts, as a kubelet's startup probe
                would - C(http) and C(echo) until they listen on the port (TCP), C(sleep)
                until it has executed, C(command) until it (or a process it started) listens
                on its port (TCP or UDP), or without a port until it has stayed up 0.3 s. A
                container that exits first is reported Exited; one that has not started
                within 10 s is reported as it is then.
            type: int
          command:
            description: The argv of a C(command) container.
            type: list
            elements: str
  runtime_dir:
    description: The runtime's state directory (records in C(RUNTIME_DIR/pods/POD/)).
    type: path
    default: /run/podnet
  fail_not_ready:
    description: Fail when a pod is not ready (n/m with n < m) after the run.
    type: bool
    default: false
  cluster_dns:
    description:
      - The cluster DNS Service's address (kubelet's C(--cluster-dns)). When set, each pod gets
        the resolv.conf kubelet writes for it (C(RUNTIME_DIR/pods/POD/resolv.conf)), and every
        container starts in a mount namespace of its own where that file is bind-mounted over
        C(/etc/resolv.conf), so it is private to the pod. A container already running keeps
        the file it started with until it restarts.
    type: str
  cluster_domain:
    description: The cluster domain (kubelet's C(--cluster-domain)), for the search path.
    type: str
    default: cluster.local
  restart:
    description:
      - Restart every running container of the listed pods - stopped as C(crictl stop) does
        (SIGTERM, SIGKILL after a grace period), then started again - as after a change of
        configuration that a workload reads only when it starts (dnsmasq's). A change when a
        container is restarted; exited ones follow O(pods[].restart_policy) as without it.
    type: bool
    default: false
attributes:
  platform:
    support: full
    platforms: linux
    description: Needs root; the containers' shims run C(/bin/sh).
seealso:
  - module: k8slab.podnet.pod_sandbox
extends_documentation_fragment:
  - k8slab.podnet.attributes
'''

EXAMPLES = r'''
- name: Seed 000's test-pod - two web containers sharing the pod's network
  k8slab.podnet.pod_container:
    pods:
      - name: test-pod
        node: node-2
        containers:
          - {name: lab-web, workload: http, port: 80}
          - {name: lab-web-2, workload: http, port: 8080}

- name: A DNS pod running a real program
  k8slab.podnet.pod_container:
    pods:
      - name: coredns
        containers:
          - {name: dnsmasq, workload: command, command: [dnsmasq, --keep-in-foreground]}

- name: Restart it after its configuration changed (dnsmasq reads it once)
  k8slab.podnet.pod_container:
    pods:
      - name: coredns
        containers:
          - {name: dnsmasq, workload: command, command: [dnsmasq, --keep-in-foreground]}
    restart: true
'''

RETURN = r'''
pods:
  description: Each pod's record after the run (see pod.json in the docs).
  returned: always
  type: list
  elements: dict
  sample: [{name: test-pod, ready: 2/2, sandbox: {id: 3f1c..., pid: 4242, ip: 10.244.2.3/24},
            containers: [{name: lab-web, state: Running, pid: 4250, reason: ''}]}]
started:
  description: Containers (C(POD/CONTAINER)) started or restarted (or that would be).
  returned: always
  type: list
  elements: str
  sample: [test-pod/lab-web]
stopped:
  description: Containers stopped (spec changed, no longer listed, restarted).
  returned: always
  type: list
  elements: str
  sample: []
not_ready:
  description: Pods whose containers are not all running, with their ready n/m.
  returned: always
  type: dict
  sample: {test-pod: 1/2}
'''

import json
import os
import sys
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.k8slab.podnet.plugins.module_utils import pods as P
from ansible_collections.k8slab.podnet.plugins.module_utils.clusterdns import pod_resolv_conf
from ansible_collections.k8slab.podnet.plugins.module_utils.files import read_text, write_atomic
from ansible_collections.k8slab.podnet.plugins.module_utils.netns import NetnsError, interface_ipv4

# The http and echo workloads. A bind() failure is reported as the kernel's errno and text.
WORKLOAD = r'''"""Workloads of k8slab.podnet containers: http PORT POD CONTAINER NODE | echo PORT."""
import os
import socket
import socketserver
import sys
import threading

# Plain HTTP only: without ssl (which http.server's http.client would load) a web container
# stays at ~13 MiB RSS instead of ~17.5 MiB (docs/benchmark.md, memory).
sys.modules['ssl'] = None
import http.server  # noqa: E402  pylint: disable=wrong-import-position


def bind(sock, port):
    try:
        sock.bind(('0.0.0.0', port))
    except OSError as e:
        sys.stderr.write('bind() to 0.0.0.0:%d failed (%d: %s)\n'
                         % (port, e.errno, os.strerror(e.errno)))
        raise SystemExit(1)


def serve_http(port, pod, container, node):
    body = 'Hello from pod %s on node %s, container %s\n' % (pod, node, container)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            text = ('HELLO %s\n' % pod) if self.path == '/hello' else body
            data = text.encode()
            self.send_response(200)
            self.send_header('Content-Type', 'text/plain')
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    class Server(http.server.ThreadingHTTPServer):
        def server_bind(self):  # no getfqdn(): a pod may have no DNS
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            bind(self.socket, port)
            self.server_address = self.socket.getsockname()

    srv = Server(('0.0.0.0', port), Handler, bind_and_activate=False)
    srv.server_bind()
    srv.server_activate()
    sys.stderr.write('listening on 0.0.0.0:%d\n' % port)
    sys.stderr.flush()
    srv.serve_forever()


def serve_echo(port):
    class Tcp(socketserver.BaseRequestHandler):
        def handle(self):
            while True:
                data = self.request.recv(65536)
                if not data:
                    return
                self.request.sendall(data)

    class TcpServer(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

        def server_bind(self):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            bind(self.socket, port)

    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    bind(udp, port)
    tcp = TcpServer(('0.0.0.0', port), Tcp, bind_and_activate=False)
    tcp.server_bind()
    tcp.server_activate()
    threading.Thread(target=tcp.serve_forever, daemon=True).start()
    sys.stderr.write('echo on 0.0.0.0:%d tcp and udp\n' % port)
    sys.stderr.flush()
    while True:
        data, peer = udp.recvfrom(65536)
        udp.sendto(data, peer)


if sys.argv[1] == 'http':
    serve_http(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])
else:
    serve_echo(int(sys.argv[2]))
'''

CONTAINER_OPTIONS = dict(
    name=dict(type='str', required=True),
    workload=dict(type='str', required=True),
    port=dict(type='int'),
    command=dict(type='list', elements='str'),
)
POD_OPTIONS = dict(
    name=dict(type='str', required=True),
    node=dict(type='str'),
    restart_policy=dict(type='str', choices=['Always', 'OnFailure', 'Never'],
                        default='Always'),
    containers=dict(type='list', elements='dict', required=True, options=CONTAINER_OPTIONS),
)
START_TIMEOUT = 10.0
SETTLE = 0.3  # seconds a command container without a port must stay up to count as started
# The workloads need only the standard library: the system's Python when there is one, so a
# container's argv does not point into a virtualenv that may change under it.
SYSTEM_PYTHON = '/usr/bin/python3'
RESOLV_CONF = 'resolv.conf'  # in the pod's directory, as kubelet keeps it per sandbox


class Runtime(object):
    def __init__(self, module):
        self.m = module
        self.runtime_dir = module.params['runtime_dir']
        self.check = module.check_mode
        self.program = os.path.join(self.runtime_dir, 'workload.py')
        self.python = SYSTEM_PYTHON if os.access(SYSTEM_PYTHON, os.X_OK) else sys.executable
        self.result = dict(pods=[], started=[], stopped=[], not_ready={})
        self.started = []  # (entry, files) of the containers this run started

    def argv(self, pod, c):
        workload = P.WORKLOAD_ALIASES.get(c['workload'], c['workload'])
        if workload == 'http':
            return [self.python, self.program, 'http', str(c['port']), pod['name'],
                    c['name'], pod.get('node') or '-']
        if workload == 'echo':
            return [self.python, self.program, 'echo', str(c['port'])]
        if workload == 'sleep':
            return [self.m.get_bin_path('sleep', required=True), 'infinity']
        return list(c['command'])

    def start(self, pod, c, argv, sandbox_pid):
        """Starts one container under its shim and returns at once: (record entry, pid
        still None; its files). wait_started waits for it (pod() before the pod's next
        container, main() for the last containers of all pods at once). One that cannot be
        started comes back with its message and files None."""
        files = P.container_files(self.runtime_dir, pod['name'], c['name'])
        for path in (files['pid'], files['exit']):
            if os.path.exists(path):
                os.unlink(path)
        if os.path.exists(files['log']):
            os.rename(files['log'], files['log'] + '.previous')
        # The pod's resolv.conf, as kubelet mounts it into each container: its own mount
        # namespace (private, so nothing leaks back to the node) with the file over /etc's.
        resolv = os.path.join(P.pod_dir(self.runtime_dir, pod['name']), RESOLV_CONF)
        binds = ([(resolv, '/etc/resolv.conf')]
                 if self.m.params['cluster_dns'] and os.path.exists(resolv) else [])
        workload = P.WORKLOAD_ALIASES.get(c['workload'], c['workload'])
        entry = dict(name=c['name'], workload=workload, port=c.get('port'), argv=argv, pid=None,
                     log=files['log'])
        try:
            # Detached in the sandbox's network namespace (the pause's, as a runtime joins it).
            P.spawn(P.SHIM_ARGV + [files['pid'], files['log'], files['exit']] + argv,
                    '/proc/%d/ns/net' % sandbox_pid, binds=binds)
        except P.PodError as e:
            # As a kubelet reports a container that could not be created: not running, the
            # reason in its record; the run goes on (fail_not_ready makes it fail).
            entry['message'] = str(e)
            return entry, None
        return entry, files

    @staticmethod
    def is_started(entry, elapsed):
        """Whether a live container (entry: a record entry with its pid) has started, after
        elapsed seconds (float) since its start, as a kubelet with a startup probe would judge:
        - http, echo: it listens on its TCP port (a tcpSocket probe; its own socket, so of two
          servers on one port the one that failed to bind is not taken for started);
        - sleep: it has exec'd its argv (/proc/PID/cmdline; sleep cannot fail after that);
        - command with a port: it, or a process it started, listens there, TCP or UDP
          (dnsmasq on 53; a slow server is waited for, so the next container on its port is
          the one that fails);
        - command without one: it has stayed up SETTLE seconds (a bad configuration ends a
          daemon within that)."""
        pid, port = entry['pid'], entry.get('port')
        if entry['workload'] in ('http', 'echo'):
            return P.listens(pid, port)
        if entry['workload'] == 'sleep':
            return P.cmdline(pid) == entry['argv']
        if port:
            return P.listens(pid, port, udp=True, tree=True)
        return elapsed > SETTLE

    @classmethod
    def wait_started(cls, started):
        """Waits for the containers started in this run, all at once (START_TIMEOUT seconds
        in all): each until it has started (is_started) or has exited. started: list of
        (entry, files) from start; fills each entry's pid. One wait for a node's containers,
        not one per container: twenty pods start together."""
        t0 = time.time()
        waiting = list(started)
        while waiting and time.time() < t0 + START_TIMEOUT:
            for item in list(waiting):
                entry, files = item
                entry['pid'] = entry['pid'] or P.read_pid(files['pid'])
                pid = entry['pid']
                if os.path.exists(files['exit']):
                    waiting.remove(item)
                elif pid and P.alive(pid) and cls.is_started(entry, time.time() - t0):
                    waiting.remove(item)
            if waiting:
                time.sleep(0.01)

    def pod(self, pod, before):
        """Stops what must go and starts what must run for one pod, without waiting for
        what it started; returns the state finish() completes once wait_started has run."""
        name = pod['name']
        rec = P.read_record(self.runtime_dir, name)
        spid = P.pause_pid(self.runtime_dir, rec)
        if spid is None and not self.check:
            raise P.PodError('pod %s has no ready sandbox (record %s): run '
                             'k8slab.podnet.pod_sandbox first'
                             % (name, os.path.join(P.pod_dir(self.runtime_dir, name), P.RECORD)))
        rec = rec or dict(name=name, sandbox={}, containers=[])
        resolv_changed = self.resolv_conf(name, rec.get('namespace') or 'default')
        old = dict((c['name'], P.container_status(self.runtime_dir, name, c, spid))
                   for c in rec.get('containers') or [])
        before[name] = dict((n, c['state']) for n, c in old.items())
        wanted = [c['name'] for c in pod['containers']]
        for cname, c in old.items():
            if cname in wanted:
                continue
            if c['state'] == 'Running':
                self.result['stopped'].append('%s/%s' % (name, cname))
            if not self.check:
                files = P.container_files(self.runtime_dir, name, cname)
                if c['state'] == 'Running':
                    P.stop_container(c['pid'])  # its shim done, then clear all
                for path in files.values():
                    for stale in (path, path + '.previous'):
                        if os.path.exists(stale):
                            os.unlink(stale)
        entries, fresh, pending = [], [], []
        for c in pod['containers']:
            argv = self.argv(pod, c)
            cur = old.get(c['name'])
            restarts = int((cur or {}).get('restarts') or 0)
            # A new workload program takes effect on restart, for the containers that run it.
            stale_program = self.program_changed and self.program in argv
            if cur and cur['state'] == 'Running' and cur.get('argv') == argv \
                    and not stale_program and not self.m.params['restart']:
                entries.append(cur)
                continue
            if cur and cur['state'] == 'Running':
                self.result['stopped'].append('%s/%s' % (name, c['name']))
                if not self.check:
                    P.stop_container(cur['pid'])
            elif cur and cur.get('argv') == argv and (
                    pod['restart_policy'] == 'Never' or (
                        pod['restart_policy'] == 'OnFailure' and cur.get('exit_code') == 0)):
                entries.append(cur)  # exited, and the policy leaves it so
                continue
            self.result['started'].append('%s/%s' % (name, c['name']))
            if self.check:
                entries.append(dict(name=c['name'], workload=c['workload'], port=c.get('port'),
                                    argv=argv, state='Running', pid=None))
                continue
            if pending:
                # One pod's containers start in their order, each once the one before has
                # started (so of two servers on one port the second is the one that fails);
                # different pods start together and are waited for at once.
                self.wait_started(pending)
                pending = []
            entry, files = self.start(pod, c, argv, spid)
            entry['restarts'] = restarts + 1 if cur else 0
            if files:
                pending.append((entry, files))
            entries.append(entry)
            fresh.append(entry['name'])
        self.started.extend(pending)
        return dict(name=name, rec=rec, entries=entries, fresh=fresh, spid=spid,
                    changed=resolv_changed)

    def finish(self, state, after):
        """The pod's record from what its started containers did; True when it changed."""
        name, rec, spid = state['name'], state['rec'], state['spid']
        entries = [P.container_status(self.runtime_dir, name, e, spid)
                   if e['name'] in state['fresh'] else e for e in state['entries']]
        rec['containers'] = entries
        rec['ready'] = P.ready_text(entries)
        if spid and not self.check:
            rec['sandbox']['ip'] = self.pod_ip(name)
        if rec['ready'] != '%d/%d' % (len(entries), len(entries)):
            self.result['not_ready'][name] = rec['ready']
        after[name] = dict((c['name'], c['state']) for c in entries)
        changed = json.dumps(rec, sort_keys=True) != json.dumps(
            P.read_record(self.runtime_dir, name), sort_keys=True)
        if changed and not self.check:
            P.write_record(self.runtime_dir, rec)
        self.result['pods'].append(rec)
        return changed or state['changed']

    def resolv_conf(self, name, namespace):
        """Writes the pod's resolv.conf (kubelet's, for dnsPolicy ClusterFirst) when
        cluster_dns is set; True when it changed."""
        if not self.m.params['cluster_dns']:
            return False
        path = os.path.join(P.pod_dir(self.runtime_dir, name), RESOLV_CONF)
        text = pod_resolv_conf(namespace, self.m.params['cluster_dns'],
                               self.m.params['cluster_domain'])
        if read_text(path) == text:
            return False
        if not self.check:
            write_atomic(path, text, makedirs=True)
        return True

    def pod_ip(self, name):
        """eth0's IPv4 address in the pod (what the pod really holds), or None."""
        try:
            return interface_ipv4(name, 'eth0')
        except (NetnsError, OSError):
            return None

    def write_program(self):
        self.program_changed = read_text(self.program) != WORKLOAD
        if self.program_changed and not self.check:
            write_atomic(self.program, WORKLOAD, makedirs=True)
        return self.program_changed


def main():
    module = AnsibleModule(
        argument_spec=dict(
            pods=dict(type='list', elements='dict', options=POD_OPTIONS, required=True),
            runtime_dir=dict(type='path', default=P.RUNTIME_DIR),
            fail_not_ready=dict(type='bool', default=False),
            cluster_dns=dict(type='str'),
            cluster_domain=dict(type='str', default='cluster.local'),
            restart=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    p = module.params
    rt = Runtime(module)
    # All input is checked before anything starts: bad input leaves nothing behind.
    errors = []
    names = [pod['name'] for pod in p['pods']]
    for name in set(n for n in names if names.count(n) > 1):
        errors.append('pods: pod %s is listed twice' % name)
    for pod in p['pods']:
        errors.extend(P.container_errors(pod['name'], pod['containers']))
    if errors:
        module.fail_json(msg='; '.join(errors), errors=errors, **rt.result)
    before, after = {}, {}
    changed = False
    try:
        uses_program = any(P.WORKLOAD_ALIASES.get(c['workload'], c['workload']) in ('http', 'echo')
                           for pod in p['pods'] for c in pod['containers'])
        rt.program_changed = False
        if uses_program:
            changed |= rt.write_program()
        states = [rt.pod(pod, before) for pod in p['pods']]
        rt.wait_started(rt.started)
        for state in states:
            changed |= rt.finish(state, after)
    except (P.PodError, OSError, IOError) as e:
        module.fail_json(msg=str(e), **rt.result)
    changed |= bool(rt.result['started'] or rt.result['stopped'])
    res = dict(rt.result, changed=changed)
    if module._diff:
        res['diff'] = dict(before=before, after=after)
    if p['fail_not_ready'] and rt.result['not_ready']:
        module.fail_json(msg='pods not ready: %s' % ', '.join(
            '%s %s' % kv for kv in sorted(rt.result['not_ready'].items())), **res)
    module.exit_json(**res)


if __name__ == '__main__':
    main()

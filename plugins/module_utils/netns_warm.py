# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""Where a lab's warm module server lives, and how to stop it.

The netns connection (plugins/connection/netns.py) runs pipelined modules through one server
process per lab (plugins/plugin_utils/netns_warm.py), which keeps Ansible's module_utils
imported and forks a child per task that enters the node. Its files, root-only:

  /run/k8slab/<lab>/warm/                 0700
  /run/k8slab/<lab>/warm/<key>.sock       0600, the server's Unix socket
  /run/k8slab/<lab>/warm/<key>.pid        its PID
  /run/k8slab/<lab>/warm/<key>.log        its stderr
  /run/k8slab/<lab>/warm/lock             serializes starting one

<key> names the controller's Python and ansible-core (server_key): a server only runs payloads
built by the ansible-core it imported.

Teardown (netns_lab_nodes state=absent) calls stop_servers before it removes the lab's tree
(all but the one it may run under, which leaves with the tree).
Standard library only (and procfs beside it).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import glob
import hashlib
import os
import signal
import time

from ansible_collections.k8slab.podnet.plugins.module_utils.procfs import ancestors, stat

STATE_DIR = '/run/k8slab'
# A word of the server's command line, so a recycled PID is never signalled.
SERVER_MARK = 'netns_warm'


def warm_dir(lab):
    return os.path.join(STATE_DIR, lab, 'warm')


def server_key(python, ansible_dir, ansible_version, code_dir=''):
    """A short name (str) for a server of one Python executable and ansible-core install,
    keeping compiled code in code_dir (a run with another local_tmp gets its own server)."""
    text = '%s\0%s\0%s' % (os.path.realpath(python), ansible_dir, ansible_version)
    if code_dir:
        text += '\0' + code_dir
    return 'server-' + hashlib.sha256(text.encode()).hexdigest()[:12]


def server_files(lab, key):
    """(socket, pidfile, log) of the lab's server named key."""
    base = os.path.join(warm_dir(lab), key)
    return base + '.sock', base + '.pid', base + '.log'


def lock_file(lab):
    return os.path.join(warm_dir(lab), 'lock')


def server_pids(lab):
    """PIDs (list of int) of the lab's running warm servers."""
    pids = []
    for path in sorted(glob.glob(os.path.join(warm_dir(lab), '*.pid'))):
        pid = _server_pid(path)
        if pid is not None:
            pids.append(pid)
    return pids


def _server_pid(path):
    try:
        with open(path) as f:
            pid = int(f.read().strip())
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            cmdline = f.read()
    except (OSError, ValueError):
        return None
    return pid if SERVER_MARK.encode() in cmdline else None


def stop_servers(lab, check_mode=False):
    """Stop the lab's warm servers (stop_server each). Returns their PIDs (list of int).

    A server this process runs under (the teardown's own module run, through the warm path)
    is left out: stopping it would end this run with it. That server exits by itself once
    the lab's directory is gone and this run's handler has finished (plugin_utils/netns_warm).
    """
    mine = ancestors()
    pids = [pid for pid in server_pids(lab) if pid not in mine]
    if not check_mode:
        for pid in pids:
            stop_server(pid)
    return pids


def stop_server(pid, wait=2.0):
    """SIGTERM a server, then SIGKILL after wait seconds, until it is gone; it removes its
    socket and pidfile itself (they go with the lab's tree anyway)."""
    sig, deadline = signal.SIGTERM, time.monotonic() + wait
    while True:
        try:
            os.kill(pid, sig)
        except OSError:
            return pid
        for _attempt in range(20):
            if not os.path.exists('/proc/%d' % pid) or _zombie(pid):
                return pid
            time.sleep(0.01)
        if time.monotonic() > deadline:
            sig = signal.SIGKILL


def _zombie(pid):
    st = stat(pid)
    return st is None or st[0] == 'Z'

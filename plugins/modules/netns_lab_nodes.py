#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: netns_lab_nodes
short_description: The nodes of the single-host lab (mount and UTS namespaces), and teardown
description:
  - C(state=present) gives every node of lab O(lab) a persistent private mount namespace,
    pinned at C(/run/k8slab/LAB/mnt/NODE) (a private bind mount of that directory, so the
    namespace file can be bound there), and a UTS namespace with the node's host name, pinned
    at C(/run/k8slab/LAB/uts/NODE). Inside the node, C(/run/netns) is its own tmpfs (so
    C(ip netns add) makes a pod only this node sees) and every path of O(private_dirs) is a
    bind mount of C(/run/k8slab/LAB/nodes/NODE/PATH), which the host can read for debugging.
    Copies of other network namespaces' bind mounts are dropped inside the node, so a node
    never keeps another namespace alive.
  - A half-made node (for example after the build was killed) is completed, not recreated.
  - C(state=absent) removes the whole lab - kills every process whose network namespace is
    one of the lab's (named in O(namespaces) or recorded when the lab was built, and the pods
    inside every node) or whose mount namespace is a node's, deletes the pods' namespaces,
    unmounts the nodes, deletes the lab's network namespaces and removes C(/run/k8slab/LAB).
    Directories it had to create on the host (missing mount points, C(/run/netns)) are
    removed when the last lab is gone. A lab that does not exist is no change.
  - C(state=absent) also stops the lab's warm module servers (the M(k8slab.podnet.netns)
    connection's), except one this run goes through, which leaves by itself once the run
    has answered and the lab's directory is gone.
  - The network namespaces themselves are made by M(k8slab.podnet.netns); teardown deletes
    them here because their processes must be killed first, in one step.
options:
  lab:
    description:
      - Name of the lab, the prefix of its namespaces - at most 16 lower-case letters, digits
        and C(-), starting and ending with a letter or digit.
    type: str
    required: true
  nodes:
    description:
      - Node names (the inventory hosts). Teardown also finds nodes on its own.
      - A node's name names its switch ports, so it is 1 to 15 letters, digits, C(_), C(.) or
        C(-), starting and ending with a letter or digit, and not C(vboxnet0).
    type: list
    elements: str
    default: []
  namespaces:
    description:
      - Every network namespace of the lab in the host's C(/run/netns). C(present) records
        them in C(/run/k8slab/LAB/lab.json) so teardown finds them even when the inventory
        changed; C(absent) kills their processes and deletes them.
    type: list
    elements: str
    default: []
  private_dirs:
    description: Paths that are private to each node (besides C(/run/netns)).
    type: list
    elements: path
    default: [/var/lib/cni, /etc/cni, /run/flannel, /run/podnet]
  resolv_conf:
    description:
      - The text of every node's own C(/etc/resolv.conf) (e.g. C(nameserver 10.0.2.3), the NAT
        router's DNS), kept in C(/run/k8slab/LAB/nodes/NODE/resolv.conf) and bind-mounted over
        C(/etc/resolv.conf) inside the node only. Omitted, nodes see the host's file.
    type: str
  state:
    description: C(present) builds the nodes, C(absent) removes the lab.
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    support: full
    description: Reports what would be mounted, killed or removed, changing nothing.
  diff_mode:
    support: full
    description: The commands that run, as the diff's after side.
  platform:
    support: full
    platforms: linux
    description:
      - Needs root and, to tear down, iproute2 and util-linux (C(nsenter), C(umount)). The
        nodes' namespaces are made and set up by system calls in a child of the module (no
        C(unshare) or C(mount) process); RV(commands) names the commands that do the same.
author: k8slab.podnet developers (@k8slab)
'''

EXAMPLES = r'''
- name: Nodes of lab k8slab
  netns_lab_nodes:
    lab: k8slab
    nodes: [controlplane, node-1, node-2]
    namespaces: [k8slab-controlplane, k8slab-node-1, k8slab-node-2, k8slab-hostonly]

- name: Remove the lab
  netns_lab_nodes:
    lab: k8slab
    state: absent
'''

RETURN = r'''
commands:
  description:
    - What was done (or would be in check mode), as the shell commands that do the same - the
      nodes' namespaces and mounts are made by system calls, teardown runs the commands.
  returned: always
  type: list
  elements: str
killed:
  description: Processes killed at teardown, as C(PID COMMAND).
  returned: always
  type: list
  elements: str
'''

import json
import os
import re
import shlex
import signal
import socket
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.k8slab.podnet.plugins.module_utils import command
from ansible_collections.k8slab.podnet.plugins.module_utils.files import read_text, write_atomic
from ansible_collections.k8slab.podnet.plugins.module_utils.netns_lab import (
    HOST_DIRS_FILE, NETNS_DIR, STATE_DIR, host_lock, lab_dir, lab_name_error, mount_ns_dir,
    mount_ns_file, node_dir, node_name_error, pinned, record_file, uts_ns_dir, uts_ns_file)
from ansible_collections.k8slab.podnet.plugins.module_utils.netns import NetnsError
from ansible_collections.k8slab.podnet.plugins.module_utils.netns_warm import stop_servers
from ansible_collections.k8slab.podnet.plugins.module_utils.nschild import (
    CLONE_NEWNS, CLONE_NEWUTS, MNT_DETACH, MS_BIND, MS_PRIVATE, in_child, mount, sethostname,
    umount, umount_stack)

TMPFS_SOURCE = 'k8slab-netns'
TMPFS_OPTIONS = 'mode=0755,size=4m'
OPTION = {CLONE_NEWNS: 'mount', CLONE_NEWUTS: 'uts'}  # unshare's and nsenter's option names


class LabError(Exception):
    pass


def _unescape(field):
    """mountinfo escapes space, tab, newline and backslash as octal."""
    return re.sub(r'\\([0-7]{3})', lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text):
    """/proc/PID/mountinfo as dicts: id, parent, root, target, optional (propagation tags),
    fstype, source."""
    mounts = []
    for line in text.splitlines():
        pre, dummy, post = line.partition(' - ')
        f = pre.split()
        g = post.split()
        mounts.append(dict(id=f[0], parent=f[1], root=_unescape(f[3]), target=_unescape(f[4]),
                           optional=f[6:], fstype=g[0], source=g[1] if len(g) > 1 else ''))
    return mounts


def read_json(path, default):
    try:
        with open(path) as f:
            return json.load(f)
    except (IOError, OSError, ValueError):
        return default


def write_json(path, data):
    write_atomic(path, json.dumps(data, indent=1, sort_keys=True))


def step_argv(step):
    """A setup step (a list: verb, paths) as the command that does the same."""
    verb, args = step[0], step[1:]
    if verb == 'umount-stack':
        return ['sh', '-c', 'while mountpoint -q {0}; do umount -l {0}; done'.format(args[0])]
    if verb == 'umount-lazy':
        return ['sh', '-c', 'umount -l %s 2>/dev/null || true' % shlex.quote(args[0])]
    if verb == 'tmpfs':
        return ['mount', '-t', 'tmpfs', '-o', TMPFS_OPTIONS, TMPFS_SOURCE] + args
    return {'bind': ['mount', '--bind'], 'hostname': ['hostname']}[verb] + args


def setup_node(node, binds, resolv, apply=True):
    """Run inside the node's mount and UTS namespaces: the steps (lists, see step_argv) that
    make them what the node needs - host name; its own tmpfs on /run/netns, with the copies of
    other network namespaces' bind mounts dropped (they would pin those namespaces for as long
    as the node lives); each (source, target) of binds and resolv (or None) bind-mounted -
    each done unless apply is false. Raises LabError naming the step that failed."""
    steps = []
    if socket.gethostname() != node:
        steps.append(['hostname', node])
    with open('/proc/self/mountinfo') as f:
        mounts = parse_mountinfo(f.read())
    if not any(m['target'] == NETNS_DIR and m['fstype'] == 'tmpfs'
               and m['source'] == TMPFS_SOURCE for m in mounts):
        # The whole /run/netns stack first (the host's may be stacked, and what it hides
        # cannot be named), then any other; one that vanished meanwhile is fine.
        steps.append(['umount-stack', NETNS_DIR])
        steps += [['umount-lazy', t] for t in sorted(
            (m['target'] for m in mounts if m['fstype'] == 'nsfs'), key=lambda t: -t.count('/'))]
        steps.append(['tmpfs', NETNS_DIR])
    for src, target in binds + ([resolv] if resolv else []):
        if not any(m['target'] == target and m['root'].endswith(src[len('/run'):])
                   for m in mounts):
            steps.append(['bind', src, target])
    for step in steps if apply else []:
        verb, args = step[0], step[1:]
        try:
            if verb == 'hostname':
                sethostname(args[0])
            elif verb == 'umount-stack':
                umount_stack(args[0])
            elif verb == 'umount-lazy':
                try:
                    umount(args[0], MNT_DETACH)
                except OSError:
                    pass
            elif verb == 'tmpfs':
                mount(TMPFS_SOURCE, args[0], 'tmpfs', 0, TMPFS_OPTIONS)
            else:
                mount(args[0], args[1], flags=MS_BIND)
        except OSError as e:
            raise LabError('%s failed: %s' % (' '.join(step_argv(step)), e.strerror))
    return steps


class Lab(object):
    def __init__(self, module):
        self.module = module
        p = module.params
        self.lab = p['lab']
        self.base = lab_dir(self.lab)
        self.mnt_dir = mount_ns_dir(self.lab)
        self.uts_dir = uts_ns_dir(self.lab)
        self.record = record_file(self.lab)
        self.private_dirs = [os.path.normpath(d) for d in p['private_dirs']]
        self.check = module.check_mode
        self.commands = []
        self.killed = []
        self.changed = False

    # ---- running ---------------------------------------------------------------------
    def note_change(self, argv):
        """Record the change argv makes; True when it is to be made (not check mode)."""
        self.changed = True
        self.commands.append(' '.join(shlex.quote(a) for a in argv))
        return not self.check

    def run(self, argv, change=True, data=None):
        """Run argv; changes are recorded and skipped in check mode."""
        if change and not self.note_change(argv):
            return ''
        rc, out, err = command.run(argv, data=data)
        if rc != 0:
            raise LabError('%s failed (rc=%d): %s' % (' '.join(argv), rc, (err or out).strip()))
        return out

    def mkdir(self, path):
        """``mkdir -p path``, recorded as that command, done without a process."""
        if self.note_change(['mkdir', '-p', path]):
            try:
                os.makedirs(path, exist_ok=True)
            except OSError as e:
                raise LabError('mkdir -p %s: %s' % (path, e.strerror))

    def touch(self, path):
        """``touch path`` (a new empty file), recorded as that command, done without a process."""
        if self.note_change(['touch', path]):
            with open(path, 'a'):
                pass

    def host_mounts(self):
        with open('/proc/self/mountinfo') as f:
            return parse_mountinfo(f.read())

    def node_file(self, node):
        return mount_ns_file(self.lab, node)

    def node_dir(self, node, path=''):
        return node_dir(self.lab, node, path)

    def note_host_dir(self, path):
        """Remember a directory that the lab had to create on the host."""
        if self.check:
            return
        data = read_json(HOST_DIRS_FILE, [])
        if path not in data:
            data.append(path)
            write_json(HOST_DIRS_FILE, data)

    # ---- present ---------------------------------------------------------------------
    def present(self, nodes, namespaces):
        if not os.path.isdir(STATE_DIR) and not self.check:
            os.makedirs(STATE_DIR)
        if not os.path.isdir(NETNS_DIR):
            # `ip netns add` makes it a bind mount; teardown restores a host without it.
            self.note_host_dir(NETNS_DIR)
        for d in [self.mnt_dir, self.uts_dir] + [self.node_dir(n, d) for n in nodes
                                                 for d in self.private_dirs]:
            if not os.path.isdir(d):
                self.mkdir(d)
        old = read_json(self.record, {})
        record = dict(lab=self.lab,
                      nodes=sorted(set(old.get('nodes', [])) | set(nodes)),
                      namespaces=sorted(set(old.get('namespaces', [])) | set(namespaces)))
        if record != old:
            self.changed = True
            self.commands.append('record %s' % self.record)
            if not self.check:
                write_json(self.record, record)

        # The namespace files need a private parent mount (a shared one could loop).
        mine = [m for m in self.host_mounts() if m['target'] == self.mnt_dir]
        try:
            if not mine and self.note_change(['mount', '--bind', self.mnt_dir, self.mnt_dir]):
                mount(self.mnt_dir, self.mnt_dir, flags=MS_BIND)
            if ((not mine or any(o.startswith('shared:') for o in mine[-1]['optional']))
                    and self.note_change(['mount', '--make-private', self.mnt_dir])):
                mount(None, self.mnt_dir, flags=MS_PRIVATE)
        except OSError as e:
            raise LabError('%s: %s' % (self.commands[-1], e.strerror))

        # Mount points the nodes need, made on the host's filesystem before a node mounts.
        for d in [NETNS_DIR] + self.private_dirs:
            if not os.path.isdir(d):
                self.note_host_dir(d)
                self.mkdir(d)
        for node in nodes:
            self.present_node(node)

    def present_node(self, node):
        """The node's mount and UTS namespaces made (or entered) and set up by a forked child
        (module_utils/nschild). A new namespace is pinned only once its setup is done, so a
        failure leaves nothing of it; an existing one is looked at first (a dry pass), so
        RV(commands) names the steps before any is taken."""
        files = {CLONE_NEWNS: self.node_file(node), CLONE_NEWUTS: uts_ns_file(self.lab, node)}
        new = dict((flag, path) for flag, path in files.items() if pinned(path) is None)
        for flag in sorted(new):
            if not os.path.exists(new[flag]):
                self.touch(new[flag])
        unshare = (['unshare'] + ['--%s=%s' % (OPTION[f], new[f]) for f in sorted(new)]
                   + ['--propagation', 'private', 'true'])
        resolv = self.resolv_conf(node)
        if self.check and new:
            self.note_change(unshare)
            if CLONE_NEWNS in new:
                return  # a new node: its setup would all be done
        binds = [(self.node_dir(node, d), d) for d in self.private_dirs]
        enter = dict((flag, path) for flag, path in files.items() if flag not in new)
        try:
            if new and not self.check:
                steps = in_child(lambda: setup_node(node, binds, resolv), enter=enter, new=new)
                self.note_change(unshare)
            else:
                steps = in_child(lambda: setup_node(node, binds, resolv, apply=False),
                                 enter=enter)
                if steps and not self.check:
                    for step in steps:
                        self.note_step(files, step)
                    steps = in_child(lambda: setup_node(node, binds, resolv), enter=enter)
                    return
        except NetnsError as e:
            raise LabError('node %s: %s%s' % (node, e, ' (nothing of it was kept)' if new else ''))
        for step in steps:
            self.note_step(files, step)

    def note_step(self, files, step):
        """Record a setup step as the nsenter command that does the same."""
        flag = CLONE_NEWUTS if step[0] == 'hostname' else CLONE_NEWNS
        self.note_change(['nsenter', '--%s=%s' % (OPTION[flag], files[flag])] + step_argv(step))

    def resolv_conf(self, node):
        """The node's own resolver file written here; (source, target) of its bind mount over
        /etc/resolv.conf inside the node (private to the node; the host's file is never
        written), or None when O(resolv_conf) is not set."""
        text = self.module.params['resolv_conf']
        if text is None:
            return None
        src = self.node_dir(node, '/resolv.conf')
        if read_text(src) != text:
            self.changed = True
            self.commands.append('write %s' % src)
            if not self.check:
                write_atomic(src, text)
        return (src, os.path.realpath('/etc/resolv.conf'))

    # ---- absent ----------------------------------------------------------------------
    def absent(self, nodes, namespaces):
        record = read_json(self.record, {})
        if os.path.isdir(self.mnt_dir):
            nodes = set(nodes) | set(os.listdir(self.mnt_dir))
        nodes = sorted(set(nodes) | set(record.get('nodes', [])))
        namespaces = sorted(set(namespaces) | set(record.get('namespaces', [])))

        net_inodes, mnt_inodes = set(), set()
        for ns in namespaces:
            ino = pinned(os.path.join(NETNS_DIR, ns))
            if ino:
                net_inodes.add(ino)
        pods = {}
        for node in nodes:
            mnt_file = self.node_file(node)
            ino = pinned(mnt_file)
            if not ino:
                continue
            mnt_inodes.add(ino)
            # stat, not find -printf %i: that prints the mount point's own inode, not the
            # namespace's.
            out = self.run(['nsenter', '--mount=' + mnt_file, '/bin/sh', '-c',
                            'for f in %s/*; do [ -e "$f" ] && stat -L -c "%%i %%n" "$f"; done; true'
                            % NETNS_DIR], change=False)
            pods[node] = []
            for line in out.splitlines():
                ino, path = line.split(' ', 1)
                pods[node].append(os.path.basename(path))
                net_inodes.add(int(ino))

        # The netns connection's warm module servers live in the host's namespaces, so the
        # kill below would miss them; they would leave on their own, but not within teardown.
        # The one this run may go through (the netns_lab role's) is left to leave with the
        # lab's directory once this run has answered.
        for pid in stop_servers(self.lab, check_mode=self.check):
            self.changed = True
            self.killed.append('%d %s' % (pid, 'netns_warm'))
            self.commands.append('kill -TERM %d' % pid)
        self.kill(net_inodes, mnt_inodes, self.pidfiles())

        for node in nodes:
            mnt_file = self.node_file(node)
            if pods.get(node):
                self.run(['nsenter', '--mount=' + mnt_file, 'ip', '-all', 'netns', 'delete'])
            for path in (mnt_file, uts_ns_file(self.lab, node)):
                if pinned(path):
                    self.run(['umount', path])
        for ns in namespaces:
            if os.path.exists(os.path.join(NETNS_DIR, ns)):
                self.run(['ip', 'netns', 'delete', ns])
        # Whatever is still mounted below the lab's directory (the private bind mount).
        below = [m['target'] for m in self.host_mounts()
                 if m['target'] == self.base or m['target'].startswith(self.base + '/')]
        for target in sorted(set(below), key=lambda t: -t.count('/')):
            self.run(['umount', target])
        if os.path.isdir(self.base):
            self.run(['rm', '-rf', '--one-file-system', self.base])
        self.remove_host_dirs()

    def pidfiles(self):
        """PIDs in the lab's pidfiles (C(pid) or C(*.pid): pods' workloads in the nodes'
        /run/podnet, the outside's server) that run in a network namespace other than the
        host's - so a process whose namespace already lost its name is found too."""
        host_net = os.stat('/proc/self/ns/net').st_ino
        pids = set()
        for dirpath, dirs, files in os.walk(self.base):
            for name in files:
                if name != 'pid' and not name.endswith('.pid'):
                    continue
                try:
                    with open(os.path.join(dirpath, name)) as f:
                        pid = int(f.read().split()[0])
                    if os.stat('/proc/%d/ns/net' % pid).st_ino != host_net:
                        pids.add(pid)
                except (IOError, OSError, ValueError, IndexError):
                    pass
        return pids

    def kill(self, net_inodes, mnt_inodes, pids=()):
        """TERM, then KILL, every process in one of the namespaces, and pids (until none is
        left)."""
        pids = set(pids)
        if not net_inodes and not mnt_inodes and not pids:
            return
        me = os.getpid()
        deadline = time.time() + 3
        sig = signal.SIGTERM
        pause = 0.005  # most go at once: look again soon, then less often
        while True:
            victims = []
            for pid in os.listdir('/proc'):
                if not pid.isdigit() or int(pid) == me:
                    continue
                try:
                    net = os.stat('/proc/%s/ns/net' % pid).st_ino
                    mnt = os.stat('/proc/%s/ns/mnt' % pid).st_ino
                except OSError:
                    continue  # gone, or a kernel thread
                if net in net_inodes or mnt in mnt_inodes or int(pid) in pids:
                    victims.append(int(pid))
            if not victims:
                return
            for pid in victims:
                entry = '%d %s' % (pid, self.comm(pid))
                if entry not in self.killed:
                    self.killed.append(entry)
                    self.commands.append('kill -%s %d' % (sig.name[3:], pid))
                self.changed = True
                if not self.check:
                    try:
                        os.kill(pid, sig)
                    except OSError:
                        pass
            if self.check:
                return
            time.sleep(pause)
            pause = min(pause * 2, 0.1)
            if time.time() > deadline:
                sig = signal.SIGKILL
            if time.time() > deadline + 5:
                raise LabError('processes %s in the lab namespaces survive SIGKILL' % victims)

    @staticmethod
    def comm(pid):
        try:
            with open('/proc/%d/comm' % pid) as f:
                return f.read().strip()
        except (IOError, OSError):
            return '?'

    def remove_host_dirs(self):
        """Directories created for the labs go when the last lab has gone."""
        if not os.path.isdir(STATE_DIR):
            return
        if [e for e in os.listdir(STATE_DIR) if e != os.path.basename(HOST_DIRS_FILE)]:
            return  # another lab still uses them
        for path in sorted(read_json(HOST_DIRS_FILE, []), key=lambda t: -t.count('/')):
            if not os.path.isdir(path) or os.listdir(path):
                continue
            if path == NETNS_DIR and any(m['target'] == NETNS_DIR for m in self.host_mounts()):
                self.run(['umount', NETNS_DIR])
            self.run(['rmdir', path])
        self.run(['rm', '-rf', '--one-file-system', STATE_DIR])


def validate(lab, nodes, namespaces):
    """Names by the lab's rules (module_utils/netns_lab.py); LabError names the option."""
    error = lab_name_error(lab)
    if error:
        raise LabError('lab: ' + error)
    for node in nodes:
        error = node_name_error(node)
        if error:
            raise LabError('nodes: ' + error)
    for ns in namespaces:
        if '/' in ns or ns in ('.', '..') or not ns or len(ns) > 255:
            raise LabError('namespace name %r is invalid' % (ns,))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            lab=dict(type='str', required=True),
            nodes=dict(type='list', elements='str', default=[]),
            namespaces=dict(type='list', elements='str', default=[]),
            private_dirs=dict(type='list', elements='path',
                              default=['/var/lib/cni', '/etc/cni', '/run/flannel', '/run/podnet']),
            resolv_conf=dict(type='str'),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
        ),
        supports_check_mode=True,
    )
    p = module.params
    lab = Lab(module)
    try:
        validate(p['lab'], p['nodes'], p['namespaces'])
        # Labs share /run/k8slab and its host-dirs.json: one lab at a time makes or removes
        # them, or a lab going away removes what another one is just creating.
        with host_lock():
            if p['state'] == 'present':
                lab.present(p['nodes'], p['namespaces'])
            else:
                lab.absent(p['nodes'], p['namespaces'])
    except LabError as e:
        module.fail_json(msg=str(e), commands=lab.commands, killed=lab.killed)
    result = dict(changed=lab.changed, commands=lab.commands, killed=lab.killed)
    if module._diff:
        result['diff'] = dict(before='', after='\n'.join(lab.commands) + '\n' if lab.commands else '')
    module.exit_json(**result)


if __name__ == '__main__':
    main()

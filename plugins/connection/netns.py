# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: netns
short_description: Run tasks inside a node of the single-host lab
version_added: 0.1.0
description:
  - Makes a node of the single-host lab (C(playbooks/netns_lab_up.yml)) an Ansible host. It is
    the C(local) connection with every command, file transfer and fetch run under
    C(nsenter --mount=MOUNT_NS --uts=UTS_NS --net=/run/netns/NETNS), so a task sees the node's
    own network stack and its private C(/run/netns), C(/var/lib/cni), C(/etc/cni),
    C(/run/flannel) and C(/run/podnet), exactly as on a VM.
  - Files are written and read through C(nsenter) as well, so C(copy), C(template) and
    C(fetch) work on paths that only exist inside the node (for example
    C(/etc/cni/net.d/10-flannel.conflist)).
  - A node that does not exist makes the host unreachable with a message that says to run
    C(playbooks/netns_lab_up.yml) first.
  - With O(on_host) it enters no namespace at all and is the C(local) connection whose
    pipelined modules go through the lab's warm module server too; the C(netns_lab) role
    builds the lab's machines this way.
author: k8slab.podnet developers (@k8slab)
options:
  lab_name:
    description:
      - Name of the lab; the prefix of the node's namespace names.
    type: str
    default: k8slab
    vars:
      - name: lab_name
      - name: k8slab_lab_name
  on_host:
    description:
      - Run on the lab's host itself, in the namespaces of the process that runs Ansible, as
        the C(local) connection does; O(node), O(netns), O(mount_ns) and O(uts_ns) are then
        not used. Pipelined modules still take the warm path (O(warm)) once the lab's
        directory exists (or O(create_lab_dir) makes it), so the tasks that build the lab's
        machines on the host cost what a node's tasks cost.
    type: bool
    default: false
    vars:
      - name: k8slab_on_host
  create_lab_dir:
    description:
      - With O(on_host), make the lab's directory C(/run/k8slab/<lab_name>) when it is
        missing, so that the task's module already goes through the warm server (O(warm))
        instead of a cold Python. The C(netns_lab) role sets it on the first task of a build,
        which makes that directory anyway; teardown removes it with the lab.
      - Never in check mode, and not for an invalid O(lab_name). When the task's module has
        recorded no lab there (C(lab.json)) by its end - it failed first, or built nothing -
        the directory is removed again, so the host keeps nothing of the run.
      - Set it only on the task that builds the lab, with O(lab_name) the name of the lab that
        task builds (as the C(netns_lab) role does). Without it, a module run before the lab's
        directory exists (check mode, a teardown of a lab that is not there) takes the cold
        path.
    type: bool
    default: false
    vars:
      - name: k8slab_create_lab_dir
  node:
    description:
      - Name of the node in the lab.
    type: str
    vars:
      - name: inventory_hostname
      - name: k8slab_node
  netns:
    description:
      - Named network namespace of the node (a file in the host's C(/run/netns)).
      - Defaults to C(<lab_name>-<node>).
    type: str
    vars:
      - name: k8slab_netns
  mount_ns:
    description:
      - File the node's mount namespace is pinned to.
      - Defaults to C(/run/k8slab/<lab_name>/mnt/<node>).
    type: path
    vars:
      - name: k8slab_mount_ns
  uts_ns:
    description:
      - File the node's UTS namespace (its host name) is pinned to. Entered only when a
        namespace is pinned there (a plain file is not), as C(scripts/k8slab exec) does.
      - Defaults to C(/run/k8slab/<lab_name>/uts/<node>).
    type: path
    vars:
      - name: k8slab_uts_ns
  nsenter:
    description:
      - The C(nsenter) program (util-linux) to use.
    type: str
    default: nsenter
    vars:
      - name: k8slab_nsenter
  warm:
    description:
      - Run pipelined Python modules through the lab's warm module server instead of a cold
        C(nsenter ... python) per task. The server (one per lab, started on first use, in
        the host's namespaces) has Ansible's module_utils imported and forks a child per task
        that enters the node's namespaces with C(setns) and runs the module payload - the
        same payload, environment, exit status and output, several times less CPU per task.
      - A module that crashes or hangs costs its own child only; when the task times out or
        is interrupted, the child and its processes are killed.
      - Only for pipelined modules, without privilege escalation, whose interpreter is the
        controller's Python (C(ansible_python_interpreter={{ ansible_playbook_python }}),
        as the lab's inventory sets); everything else (C(raw), file transfers, modules run
        without pipelining) takes the C(nsenter) path. C(false) always takes it.
      - Its socket is C(/run/k8slab/<lab_name>/warm/server-*.sock) (mode 0600, directory
        0700); it exits when idle for O(warm_idle) seconds, when the lab's directory goes,
        or at teardown (M(k8slab.podnet.netns_lab_nodes) C(state=absent)).
      - Its children keep the code they compile out of the payload (by the source's
        SHA-256) in C(k8slab-pycache/) beside Ansible's per-run temporary directories
        (C(~/.ansible/tmp/k8slab-pycache), mode 0700, the newest 2000 entries), so a lab
        built anew does not compile it again.
    type: bool
    default: true
    vars:
      - name: k8slab_warm
    env:
      - name: K8SLAB_WARM
  warm_idle:
    description:
      - Seconds without a task after which the warm module server exits.
    type: int
    default: 30
    vars:
      - name: k8slab_warm_idle
  become_success_timeout:
    description:
      - Seconds to wait for privilege escalation to succeed (as for the C(local) connection).
    type: int
    default: 10
    vars:
      - name: ansible_local_become_success_timeout
  become_strip_preamble:
    description:
      - Strip the privilege escalation output that precedes the command's (as for the
        C(local) connection).
    type: bool
    default: true
    vars:
      - name: ansible_local_become_strip_preamble
extends_documentation_fragment:
  - connection_pipelining
notes:
  - Needs root on the machine that runs Ansible (it enters namespaces); the remote user is
    ignored, as with the C(local) connection.
  - Ansible stages modules in its temporary directory under the user's home, which the node
    shares with the host; with pipelining on (the collection's C(ansible.cfg)) nothing is
    staged at all.
'''

EXAMPLES = r'''
# inventories/netns/hosts.yml
all:
  children:
    k8s_cluster:
      vars:
        ansible_connection: k8slab.podnet.netns
        ansible_python_interpreter: "{{ ansible_playbook_python }}"
      hosts:
        controlplane:
        node-1:

# A task then runs inside the node, with the node's own paths:
# - name: CNI config, private to the node
#   ansible.builtin.template:
#     src: 10-flannel.conflist.j2
#     dest: /etc/cni/net.d/10-flannel.conflist
'''

import fcntl
import os
import re
import shlex
import shutil
import subprocess
import sys

import ansible.constants as C
from ansible import release
from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text
from ansible.plugins.connection import ConnectionBase
from ansible.plugins.connection.local import Connection as LocalConnection
from ansible.utils.display import Display
from ansible.utils.path import unfrackpath
from ansible_collections.k8slab.podnet.plugins.module_utils.netns_lab import (
    NETNS_DIR, STATE_DIR, host_lock, lab_dir, lab_name_error, mount_ns_file, node_netns,
    nsenter_options, pinned, record_file, uts_ns_file)
from ansible_collections.k8slab.podnet.plugins.module_utils.netns_warm import (
    lock_file, server_files, server_key, warm_dir)
from ansible_collections.k8slab.podnet.plugins.plugin_utils import ansiballz_cache, netns_warm

display = Display()

ENV_ASSIGNMENT = re.compile(r'^([A-Za-z_][A-Za-z0-9_]*)=(.*)$', re.S)


def pipelined_python(cmd, shell):
    """(env, interpreter) when cmd is how Ansible starts a pipelined module: SHELL -c
    'NAME=value ... INTERPRETER && sleep 0' (ActionBase._low_level_execute_command); None for
    any other command. env is a dict of the assignments, interpreter a path."""
    try:
        argv = shlex.split(cmd)
        if len(argv) != 3 or argv[0] != shell or argv[1] != '-c':
            return None
        words = shlex.split(argv[2])
    except ValueError:
        return None
    env = {}
    while words and ENV_ASSIGNMENT.match(words[0]):
        name, value = ENV_ASSIGNMENT.match(words.pop(0)).groups()
        env[name] = value
    if len(words) != 4 or words[1:] != ['&&', 'sleep', '0'] or not os.path.isabs(words[0]):
        return None
    return env, words[0]


class Connection(LocalConnection):
    """Local connection that enters a lab node's namespaces for every operation."""

    transport = 'k8slab.podnet.netns'
    has_pipelining = True
    # (lab, whether /run/k8slab was made too) while a lab directory made by create_lab_dir
    # is not yet known to hold a lab
    _made_lab_dir = None

    def _node_paths(self):
        lab = self.get_option('lab_name')
        node = self.get_option('node') or self._play_context.remote_addr
        netns = self.get_option('netns') or node_netns(lab, node)
        mount_ns = self.get_option('mount_ns') or mount_ns_file(lab, node)
        uts_ns = self.get_option('uts_ns') or uts_ns_file(lab, node)
        return node, os.path.join(NETNS_DIR, netns), mount_ns, uts_ns

    def _connect(self):
        if not self._connected and self.get_option('on_host'):
            self._enter, self._ns_files = [], []
        elif not self._connected:
            node, netns_file, mount_ns, uts_ns = self._node_paths()
            missing = [p for p in (netns_file, mount_ns) if pinned(p) is None]
            if missing:
                raise AnsibleConnectionFailure(
                    'lab node %r does not exist (%s is not a pinned namespace): run '
                    'playbooks/netns_lab_up.yml first' % (node, ', '.join(missing)))
            nsenter = shutil.which(self.get_option('nsenter')) or self.get_option('nsenter')
            # The same options as `k8slab exec`: one function decides on the UTS namespace.
            self._enter = [nsenter] + nsenter_options(mount_ns, netns_file, uts_ns)
            # setns(2) order for the warm path: mount last, since it changes what paths mean.
            options = dict(o[2:].split('=', 1) for o in self._enter[1:])
            self._ns_files = [options[k] for k in ('net', 'uts', 'mount') if k in options]
            display.vvv('ENTER LAB NODE %s: %s' % (node, ' '.join(self._enter)),
                        host=self._play_context.remote_addr)
        return super(Connection, self)._connect()

    def exec_command(self, cmd, in_data=None, sudoable=True):
        """Run cmd as the local connection would, but inside the node."""
        self._connect()
        shell = C.DEFAULT_EXECUTABLE.split()[0] if C.DEFAULT_EXECUTABLE else '/bin/sh'
        warm = self._warm_command(cmd, in_data, sudoable, shell)
        if warm:
            try:
                result = self._warm_exec(warm[0], in_data)
            finally:
                self._remove_unbuilt_lab_dir()
            if result is not None:
                return result
        if not self._enter:
            return super(Connection, self).exec_command(cmd, in_data=in_data, sudoable=sudoable)
        argv = self._enter + ['--', shell, '-c', to_text(cmd)]
        wrapped = ' '.join(shlex.quote(a) for a in argv)
        return super(Connection, self).exec_command(wrapped, in_data=in_data, sudoable=sudoable)

    def _in_node(self, script, args, stdin=None, stdout=subprocess.PIPE):
        """Run a small sh script in the node's mount namespace (files only need that one)."""
        argv = [self._enter[0], self._enter[1], '--', '/bin/sh', '-c', script, 'sh'] + args
        return subprocess.run(argv, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, check=False)

    def put_file(self, in_path, out_path):
        """Copy a file of the controller to a path as the node sees it."""
        self._connect()
        if not self._enter:
            super(Connection, self).put_file(in_path, out_path)
            return
        ConnectionBase.put_file(self, in_path, out_path)
        in_path = unfrackpath(in_path, basedir=self.cwd)
        out_path = unfrackpath(out_path, basedir=self.cwd)
        display.vvv(u'PUT {0} TO {1}'.format(in_path, out_path),
                    host=self._play_context.remote_addr)
        if not os.path.exists(to_bytes(in_path, errors='surrogate_or_strict')):
            raise AnsibleFileNotFound('file or module does not exist: %s' % to_native(in_path))
        with open(to_bytes(in_path, errors='surrogate_or_strict'), 'rb') as src:
            proc = self._in_node('cat > "$1"', [out_path], stdin=src)
        if proc.returncode != 0:
            raise AnsibleError('failed to transfer file to %r in the lab node: %s'
                               % (out_path, to_text(proc.stderr).strip()))

    def fetch_file(self, in_path, out_path):
        """Copy a file as the node sees it to the controller."""
        self._connect()
        if not self._enter:
            super(Connection, self).fetch_file(in_path, out_path)
            return
        ConnectionBase.fetch_file(self, in_path, out_path)
        display.vvv(u'FETCH {0} TO {1}'.format(in_path, out_path),
                    host=self._play_context.remote_addr)
        in_path = unfrackpath(in_path, basedir=self.cwd)
        out_path = unfrackpath(out_path, basedir=self.cwd)
        with open(to_bytes(out_path, errors='surrogate_or_strict'), 'wb') as dst:
            proc = self._in_node('exec cat -- "$1"', [in_path], stdout=dst)
        if proc.returncode != 0:
            os.unlink(to_bytes(out_path, errors='surrogate_or_strict'))
            raise AnsibleFileNotFound('failed to fetch %r from the lab node: %s'
                                      % (in_path, to_text(proc.stderr).strip()))

    # ---- the warm path (plugins/plugin_utils/netns_warm.py) ----------------------------------
    def _warm_command(self, cmd, in_data, sudoable, shell):
        """(env, interpreter) when the warm server can run cmd, else None."""
        if not self.get_option('warm') or in_data is None:
            return None
        if self.become is not None and sudoable:
            return None
        parsed = pipelined_python(to_text(cmd), shell)
        if parsed is None or os.path.realpath(parsed[1]) != os.path.realpath(sys.executable):
            return None
        return parsed

    def _warm_exec(self, env_assignments, in_data):
        """(rc, stdout, stderr) of the pipelined payload in_data, run by the lab's warm server
        (started when none answers); None when no server can be had (the caller then takes
        the nsenter path)."""
        lab = self.get_option('lab_name')
        code_dir = ansiballz_cache.beside_local_tmp(C.DEFAULT_LOCAL_TMP, netns_warm.CODE_DIR)
        key = server_key(sys.executable, os.path.dirname(release.__file__), release.__version__,
                         code_dir)
        sock, pidfile, log = server_files(lab, key)
        env = dict(os.environ)
        env.update(env_assignments)
        payload = to_bytes(in_data, errors='surrogate_or_strict')
        host = self._play_context.remote_addr
        display.vvv('WARM EXEC %s via %s' % (' '.join(self._ns_files), sock), host=host)
        for attempt in (1, 2):
            try:
                return netns_warm.request(sock, self._ns_files, env, payload)
            except OSError as e:
                if attempt == 2:
                    display.vvv('warm server unreachable (%s): nsenter path' % e, host=host)
                    return None
            except netns_warm.ProtocolError as e:
                raise AnsibleConnectionFailure('lab %s warm module server broke off: %s'
                                               % (lab, e))
            try:
                self._start_warm_server(lab, sock, pidfile, log, code_dir)
            except OSError as e:
                display.vvv('cannot start the warm server (%s): nsenter path' % e, host=host)
                return None
        return None

    def _remove_unbuilt_lab_dir(self):
        """A lab directory made for this task's server, when the task recorded no lab in it
        (it failed first, or built nothing): removed, with /run/k8slab if it was made too, so
        the host keeps nothing of the run; the server leaves with the directory."""
        made, self._made_lab_dir = self._made_lab_dir, None
        if made is None:
            return
        with host_lock():
            # Looked at under the lock: another run may have built the lab meanwhile.
            if os.path.exists(record_file(made[0])):
                return
            shutil.rmtree(lab_dir(made[0]), ignore_errors=True)
            if made[1]:
                try:
                    os.rmdir(STATE_DIR)
                except OSError:
                    pass  # another lab's, meanwhile

    def _may_create_lab_dir(self, lab):
        """True when this task may make the lab's directory for its server (create_lab_dir)."""
        return bool(self.get_option('on_host') and self.get_option('create_lab_dir')
                    and not self._play_context.check_mode and lab_name_error(lab) is None)

    def _start_warm_server(self, lab, sock, pidfile, log, code_dir):
        """Start the lab's warm server unless another task just did (under the lab's lock)."""
        directory = warm_dir(lab)
        if not os.path.isdir(lab_dir(lab)):
            if not self._may_create_lab_dir(lab):
                raise OSError('lab directory %s is missing' % lab_dir(lab))
            # Under the labs' host lock: the last lab's teardown removes /run/k8slab itself.
            with host_lock():
                made_state_dir = not os.path.isdir(STATE_DIR)
                os.makedirs(lab_dir(lab), exist_ok=True)
            self._made_lab_dir = (lab, made_state_dir)
        if not os.path.isdir(directory):
            try:
                os.mkdir(directory, 0o700)
            except FileExistsError:
                pass
        os.chmod(directory, 0o700)
        fd = os.open(lock_file(lab), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                probe = netns_warm.socket.socket(netns_warm.socket.AF_UNIX)
                probe.connect(sock)
                probe.close()
                return
            except OSError:
                pass
            pid = netns_warm.start_server(sock, pidfile, lab_dir(lab), self.get_option('warm_idle'),
                                          log, code_dir=code_dir)
            display.vvv('started warm module server %d for lab %s' % (pid, lab))
        finally:
            os.close(fd)

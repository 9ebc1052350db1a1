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
author: k8slab.podnet developers (@k8slab)
options:
  lab_name:
    description:
      - Name of the lab; the prefix of the node's namespace names.
    type: str
    default: k8slab
    vars:
      - name: lab_name
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

import os
import shlex
import shutil
import subprocess

import ansible.constants as C
from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text
from ansible.plugins.connection import ConnectionBase
from ansible.plugins.connection.local import Connection as LocalConnection
from ansible.utils.display import Display
from ansible.utils.path import unfrackpath
from ansible_collections.k8slab.podnet.plugins.module_utils.netns_lab import (
    NETNS_DIR, mount_ns_file, node_netns, nsenter_options, pinned, uts_ns_file)

display = Display()


class Connection(LocalConnection):
    """Local connection that enters a lab node's namespaces for every operation."""

    transport = 'k8slab.podnet.netns'
    has_pipelining = True

    def _node_paths(self):
        lab = self.get_option('lab_name')
        node = self.get_option('node') or self._play_context.remote_addr
        netns = self.get_option('netns') or node_netns(lab, node)
        mount_ns = self.get_option('mount_ns') or mount_ns_file(lab, node)
        uts_ns = self.get_option('uts_ns') or uts_ns_file(lab, node)
        return node, os.path.join(NETNS_DIR, netns), mount_ns, uts_ns

    def _connect(self):
        if not self._connected:
            node, netns_file, mount_ns, uts_ns = self._node_paths()
            missing = [p for p in (netns_file, mount_ns) if pinned(p) is None]
            if missing:
                raise AnsibleConnectionFailure(
                    'lab node %r does not exist (%s is not a pinned namespace): run '
                    'playbooks/netns_lab_up.yml first' % (node, ', '.join(missing)))
            nsenter = shutil.which(self.get_option('nsenter')) or self.get_option('nsenter')
            # The same options as `k8slab exec`: one function decides on the UTS namespace.
            self._enter = [nsenter] + nsenter_options(mount_ns, netns_file, uts_ns)
            display.vvv('ENTER LAB NODE %s: %s' % (node, ' '.join(self._enter)),
                        host=self._play_context.remote_addr)
        return super(Connection, self)._connect()

    def exec_command(self, cmd, in_data=None, sudoable=True):
        """Run cmd as the local connection would, but inside the node."""
        self._connect()
        shell = C.DEFAULT_EXECUTABLE.split()[0] if C.DEFAULT_EXECUTABLE else '/bin/sh'
        argv = self._enter + ['--', shell, '-c', to_text(cmd)]
        wrapped = ' '.join(shlex.quote(a) for a in argv)
        return super(Connection, self).exec_command(wrapped, in_data=in_data, sudoable=sudoable)

    def _in_node(self, script, args, stdin=None, stdout=subprocess.PIPE):
        """Run a small sh script in the node's mount namespace (files only need that one)."""
        argv = [self._enter[0], self._enter[1], '--', '/bin/sh', '-c', script, 'sh'] + args
        return subprocess.run(argv, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, check=False)

    def put_file(self, in_path, out_path):
        """Copy a file of the controller to a path as the node sees it."""
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

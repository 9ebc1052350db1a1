# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""Where a single-host lab lives on the host: the one layout shared by the module that makes
it (netns_lab_nodes), the connection plugin that enters its nodes (netns) and scripts/k8slab.
Standard library only, so the command-line tool can import it without Ansible.

  /run/netns/<lab>-<node>         the node's network namespace (ip netns)
  /run/k8slab/<lab>/mnt/<node>    the node's mount namespace, pinned by a bind mount
  /run/k8slab/<lab>/uts/<node>    the node's UTS namespace (its hostname)
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

STATE_DIR = '/run/k8slab'
NETNS_DIR = '/run/netns'


def lab_dir(lab):
    return os.path.join(STATE_DIR, lab)


def node_netns(lab, node):
    return '%s-%s' % (lab, node)


def mount_ns_file(lab, node):
    return os.path.join(STATE_DIR, lab, 'mnt', node)


def uts_ns_file(lab, node):
    return os.path.join(STATE_DIR, lab, 'uts', node)


def pinned(path):
    """The inode of the namespace pinned (bind-mounted) at path, or None for a plain file
    or nothing. Namespace files all live on the nsfs device."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino if st.st_dev == os.stat('/proc/self/ns/net').st_dev else None

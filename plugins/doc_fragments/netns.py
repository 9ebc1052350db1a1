# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""The O(netns) option of the modules that manage network state (k8slab.podnet.netns)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r'''
options:
  netns:
    description:
      - Named network namespace to work in, as C(ip -n NETNS); default is the namespace the
        module runs in. Names are looked up in C(/var/run/netns) of the mount namespace the
        module runs in.
      - With O(state=present) it must exist and be a namespace (a leftover C(/var/run/netns)
        entry with no namespace mounted on it is refused, naming the file). With
        O(state=absent) a namespace that is gone counts as already clean.
    type: str
'''

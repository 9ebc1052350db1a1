# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""The attributes every k8slab.podnet module shares (extends_documentation_fragment)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # A module that changes state: k8slab.podnet.attributes
    DOCUMENTATION = r'''
attributes:
  check_mode:
    support: full
    description: Runs every check and reports what would change (and the commands that would run),
      changing nothing.
  diff_mode:
    support: full
    description: Shows the managed state before and after.
  idempotent:
    support: full
    description: A second run with the same arguments reports no change.
'''

    # A module that only reads: k8slab.podnet.attributes.info
    INFO = r'''
attributes:
  check_mode:
    support: full
    description: Only reads, so it runs in check mode too.
  diff_mode:
    support: full
    description: Nothing changes, so there is never a difference to show.
  idempotent:
    support: full
    description: Only reads; it never reports a change.
'''

    # Modules driving iproute2: k8slab.podnet.attributes.iproute2
    IPROUTE2 = r'''
attributes:
  platform:
    support: full
    platforms: linux
    description: Needs iproute2 with JSON output (C(ip -j)) and root (or CAP_NET_ADMIN).
'''

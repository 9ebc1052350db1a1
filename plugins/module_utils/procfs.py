# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""Processes as /proc/PID/stat (proc(5)) tells them: the state and the parent of a process,
its ancestors and the processes below it. Standard library only (the netns connection imports
it through module_utils/netns_warm)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os


def stat(pid):
    """(state, parent) of pid - state one letter of proc(5) ('R', 'S', 'Z', ...), parent an
    int - or None when pid is gone or /proc cannot tell. The command name before them is in
    parentheses and may hold spaces and ')', so the fields are read after the last ')'."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            fields = f.read().rsplit(')', 1)[1].split()
        return fields[0], int(fields[1])
    except (OSError, IndexError, ValueError):
        return None


def ancestors(pid=None):
    """The PIDs above pid (default: this process) up to init: a set of int, empty when /proc
    cannot tell."""
    found = set()
    pid = pid or os.getpid()
    while pid > 1:
        st = stat(pid)
        if st is None or st[1] in found:
            break
        pid = st[1]
        found.add(pid)
    return found


def descendants(pid):
    """The PIDs of every process below pid (its children, theirs, ...): a list of int, empty
    when pid has none or is gone. One pass over /proc."""
    children = {}
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            st = stat(int(entry))
            if st is not None:
                children.setdefault(st[1], []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.append(child)
                todo.append(child)
    return found

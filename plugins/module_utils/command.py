# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""Run a program to completion for a module: the collection's one process runner."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess

from ansible_collections.k8slab.podnet.plugins.module_utils.netns import InNetns


def run(argv, data=None, env=None, binary=False, netns=None):
    """Run ``argv`` and wait for it: ``(rc, stdout, stderr)``.

    argv: list of str (no shell). data: str or bytes for its stdin, None for /dev/null (a
    module's own stdin is never handed on). env: dict of variables added to this process's
    environment; ``LC_ALL=C`` is always set, so the messages callers match on are the C
    locale's. binary: stdout and stderr as bytes; otherwise str (UTF-8, undecodable bytes as
    surrogate escapes). A program that cannot be started gives rc 127 with the OSError as
    stderr (the shell's "not found" status), so callers handle it like any failure. netns:
    a named network namespace (/run/netns/NAME) to run it in - the calling thread enters it
    for the fork (netns.InNetns), so no ``ip netns exec`` process runs; NetnsError, naming
    it, when it cannot be entered.

    Why not ``AnsibleModule.run_command``: its read loop (ansible-core 2.17 to 2.19) tests
    ``poll()`` twice once both pipes are at EOF; when the child exits between those two calls
    neither branch leaves the loop and ``select(1)`` on the now empty selector sleeps a full
    second. On this project's machines 1 to 5 % of short commands hit it (``cat
    /proc/self/mountinfo``: 3 runs in 60), which cost the lab's modules 1-2 s per run. The
    standard library's ``communicate()`` waits on the child's pipes and exit without that
    window.
    """
    environ = dict(os.environ)
    environ.update(env or {})
    environ['LC_ALL'] = 'C'
    if isinstance(data, str):
        data = data.encode('utf-8')
    try:
        with InNetns(netns):
            proc = subprocess.run(argv, input=data, env=environ, capture_output=True,
                                  check=False, stdin=subprocess.DEVNULL if data is None else None)
    except OSError as e:
        err = 'cannot run %s: %s' % (argv[0], e)
        return 127, (b'' if binary else ''), (err.encode('utf-8') if binary else err)
    if binary:
        return proc.returncode, proc.stdout, proc.stderr
    return (proc.returncode, proc.stdout.decode('utf-8', 'surrogateescape'),
            proc.stderr.decode('utf-8', 'surrogateescape'))


def run_ok(module, argv, data=None):
    """stdout (str) of ``run(argv, data)``; any other exit status ends the module with
    ``fail_json`` naming the command, its status and stderr (``run_command``'s check_rc)."""
    rc, out, err = run(argv, data=data)
    if rc != 0:
        module.fail_json(msg='%s failed (rc=%d): %s' % (' '.join(argv), rc, (err or out).strip()),
                         rc=rc, stdout=out, stderr=err, cmd=argv)
    return out

#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""Verification at scale (issue 14 section 1), as root - not a CI test, minutes per size:

    scripts/scale-check.py                       # 12x2 and 10x20, three runs each
    scripts/scale-check.py --sizes 12x2 --runs 3 --lab hmscale

For each size (NxM: N nodes x M pods per node, the benchmark's topology: bench/topology.py)
it builds a lab with site.yml (whose verification is run 1), verifies it again with
playbooks/verify.yml until --runs runs are done, and tears it down. A size passes when every
run passes every check; the exit status is 1 otherwise. Prints one line per run and writes the
runs as JSON (--json). Results: docs/scale.md.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_PYTHON = os.path.join(REPO, '.venv', 'bin', 'python')
if __name__ == '__main__' and os.path.exists(VENV_PYTHON) and \
        os.path.realpath(sys.prefix) != os.path.realpath(os.path.join(REPO, '.venv')):
    # Run under the project's virtualenv (PyYAML, the same ansible-core) however invoked.
    os.execv(VENV_PYTHON, [VENV_PYTHON] + sys.argv)
sys.path.insert(0, os.path.join(REPO, 'bench'))

import topology  # noqa: E402  pylint: disable=wrong-import-position

PLAYBOOK = os.path.join(REPO, '.venv', 'bin', 'ansible-playbook')


def playbook(path, inventory, lab, reports, log):
    """Run a playbook against the scaled lab; returns (rc, wall seconds)."""
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, 'ansible.cfg'),
               K8SLAB_REPORT_DIR=reports)
    start = time.monotonic()
    with open(log, 'ab') as out:
        rc = subprocess.call([PLAYBOOK, '-i', inventory, path, '-e', json.dumps({'lab_name': lab})],
                             cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    return rc, time.monotonic() - start


def report(reports, lab):
    path = os.path.join(reports, lab, 'verify.json')
    if not os.path.exists(path):
        return dict(checks=0, failed=None, failures=['no report'])
    with open(path) as f:
        data = json.load(f)
    os.unlink(path)
    return dict(checks=data['checks'], failed=data['failed'],
                failures=[r['failure'] for r in data['results'] if not r['passed']][:20])


def check_size(size, runs, lab, workdir):
    """Build, verify `runs` times, tear down; returns the list of runs (dicts)."""
    data, label = topology.topology(REPO, size)
    inventory = topology.write_inventory(REPO, data, lab, os.path.join(workdir, 'inv-' + size))
    reports = os.path.join(workdir, 'reports')
    log = os.path.join(workdir, '%s.log' % size)
    results = []
    try:
        for n in range(1, runs + 1):
            what = 'site.yml' if n == 1 else os.path.join('playbooks', 'verify.yml')
            rc, wall = playbook(what, inventory, lab, reports, log)
            run = dict(size=size, label=label, run=n, playbook=what, rc=rc,
                       seconds=round(wall, 1))
            run.update(report(reports, lab))
            results.append(run)
            print('%-6s run %d (%s): rc %d, %d checks, %s failed, %.0f s%s' % (
                size, n, what, rc, run['checks'], run['failed'], wall,
                ''.join('\n    ' + f for f in run['failures'])), flush=True)
            if run['checks'] == 0:
                break
    finally:
        playbook(os.path.join('playbooks', 'netns_lab_down.yml'), inventory, lab, reports, log)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', default='12x2,10x20', help='comma-separated NxM sizes')
    parser.add_argument('--runs', type=int, default=3, help='verification runs per size')
    parser.add_argument('--lab', default='kscale', help='lab name (namespace prefix)')
    parser.add_argument('--json', help='write the runs here as JSON')
    parser.add_argument('--keep', action='store_true', help='keep the logs directory')
    args = parser.parse_args(argv)
    workdir = tempfile.mkdtemp(prefix='%s-' % args.lab)
    results = []
    try:
        for size in args.sizes.split(','):
            results += check_size(size.strip(), args.runs, args.lab, workdir)
    finally:
        if args.keep:
            print('logs: %s' % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=2)
    bad = [r for r in results if r['rc'] != 0 or r['failed'] != 0]
    print('%d runs, %d not green' % (len(results), len(bad)))
    return 1 if bad or not results else 0


if __name__ == '__main__':
    sys.exit(main())

# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""k8slab drill list | k8slab drill NAME: break a live lab the way real pod networks break,
verify it, and show which checks fail, at which hop, and how a person finds the fault.

A drill is data, one YAML file per drill in drills/ at the collection's root
(docs/drills.md): title, summary, requires, fault (commands per node), expect_fail (regular
expressions on check names: exactly the checks they match fail), explain, find (commands a
person runs to find it), heal (the playbooks that re-converge what the fault touched; `k8slab
heal` always runs site.yml). Commands may name lab facts resolved on the live lab:
{veth:POD} (the node end of the pod's veth, on the command's node) and {ip:NODE/POD}.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile

from ansible_collections.k8slab.podnet.plugins.plugin_utils.k8slab_cli.lab import (
    ROOT, Lab, Subcommand, ansible_bin, ansible_env, fail, pick_lab)

DRILL_DIR = os.path.join(ROOT, 'drills')
FIELDS = ('title', 'summary', 'requires', 'fault', 'expect_fail', 'explain', 'find', 'heal')
# What a drill may require of the lab, and how to tell the lab has it.
REQUIREMENTS = ('services',)
PLACEHOLDER = re.compile(r'\{(veth|ip):([^{}\s]+)\}')


class DrillError(Exception):
    """A drill file that does not parse or lacks a field; a placeholder that does not resolve."""


def _yaml():
    try:
        import yaml  # pylint: disable=import-outside-toplevel
    except ImportError:
        fail('drills need PyYAML (it comes with Ansible: run `make deps`)')
    return yaml


def load(name=None, directory=DRILL_DIR):
    """Every drill (a list of dicts, by name), or the one called name. Each dict has FIELDS
    plus name; requires, find and heal default to empty lists. Raises DrillError for an
    unknown name or a bad file (naming the file and the field)."""
    yaml = _yaml()
    drills = []
    for fname in sorted(os.listdir(directory)):
        if not fname.endswith('.yml'):
            continue
        path = os.path.join(directory, fname)
        with open(path) as f:
            data = yaml.safe_load(f)
        if not isinstance(data, dict):
            raise DrillError('%s: not a mapping' % path)
        data.setdefault('requires', [])
        data.setdefault('find', [])
        data.setdefault('heal', ['site.yml'])
        for field in FIELDS:
            if field not in data:
                raise DrillError('%s: no %s' % (path, field))
        unknown = set(data) - set(FIELDS)
        bad = [r for r in data['requires'] if r not in REQUIREMENTS]
        if unknown or bad:
            raise DrillError('%s: unknown %s' % (path, ', '.join(sorted(unknown) + bad)))
        for pattern in data['expect_fail']:
            try:
                re.compile(pattern)
            except re.error as e:
                raise DrillError('%s: expect_fail %r: %s' % (path, pattern, e))
        data['name'] = fname[:-len('.yml')]
        drills.append(data)
    if name is None:
        return drills
    for d in drills:
        if d['name'] == name:
            return d
    raise DrillError('no drill %r (drills: %s)' % (name, ', '.join(d['name'] for d in drills)))


# ---- the live lab -----------------------------------------------------------------------
def node_run(lab, target, command, check=True):
    """Run a shell command in a node or NODE/POD of a live lab; returns (rc, output)."""
    node, dummy, pod = target.partition('/')
    argv = lab.enter(node) + (['ip', 'netns', 'exec', pod] if pod else []) + ['sh', '-c', command]
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and out.returncode != 0:
        raise DrillError('%s: `%s` failed (%d): %s' % (
            target, command, out.returncode, (out.stderr or out.stdout).strip()))
    return out.returncode, (out.stdout + out.stderr).rstrip()


def pod_veth(lab, node, pod):
    """The node end of a pod's veth: the node's link whose index the pod's eth0 links to."""
    dummy, out = node_run(lab, node, 'ip -n %s -j link show dev eth0' % pod)
    index = json.loads(out)[0]['link_index']
    dummy, out = node_run(lab, node, 'ip -j link show')
    for link in json.loads(out):
        if link['ifindex'] == index:
            return link['ifname']
    raise DrillError('node %s has no link with index %s (the veth of pod %s)' % (node, index, pod))


def pod_ip(lab, node, pod):
    dummy, out = node_run(lab, node, 'ip -n %s -j -4 addr show dev eth0' % pod)
    return json.loads(out)[0]['addr_info'][0]['local']


def resolve(lab, target, text):
    """text with {veth:POD} (a pod on target's node) and {ip:NODE/POD} replaced."""
    node = target.partition('/')[0]

    def one(m):
        if m.group(1) == 'veth':
            return pod_veth(lab, node, m.group(2))
        where, dummy, pod = m.group(2).partition('/')
        return pod_ip(lab, where, pod)
    return PLACEHOLDER.sub(one, text)


def has_services(lab):
    """Whether the lab runs Services: kube-proxy's KUBE-SERVICES chain on its first node."""
    nodes = lab.nodes()
    if not nodes:
        return False
    rc, out = node_run(lab, nodes[0], 'iptables-save -t nat', check=False)
    return rc == 0 and ':KUBE-SERVICES ' in out


def missing(lab, drill):
    """The drill's requirements this lab lacks (a list; empty: the drill can run)."""
    return [r for r in drill['requires'] if r == 'services' and not has_services(lab)]


def inject(lab, drill):
    """Run the drill's fault commands; returns the commands as run (placeholders resolved)."""
    done = []
    for step in drill['fault']:
        command = resolve(lab, step['node'], step['run'])
        node_run(lab, step['node'], command)
        done.append((step['node'], command))
    return done


def verify(lab_name, inventory, only='', kinds=None, report_dir=None, retries=1):
    """playbooks/verify.yml against the lab, never failing the play; returns the report's rows
    (verify.json's results). A broken lab fails many probes, each retried (verify_retries):
    one retry keeps a drill quick. Raises DrillError (with the play's tail) when no report
    came."""
    own = report_dir is None
    report_dir = report_dir or tempfile.mkdtemp(prefix='k8slab-drill-')
    try:
        extra = dict(lab_name=lab_name, verify_fail=False, verify_only=only,
                     verify_kinds=kinds or [], verify_retries=retries)
        env = ansible_env()
        env['K8SLAB_REPORT_DIR'] = report_dir
        out = subprocess.run([ansible_bin('ansible-playbook'), '-i', inventory,
                              os.path.join('playbooks', 'verify.yml'), '-e', json.dumps(extra)],
                             cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        # verify_report writes <dir>/<lab>/verify[-<selection>].json
        where = os.path.join(report_dir, lab_name)
        reports = sorted(os.path.join(where, f) for f in os.listdir(where)
                         if f.endswith('.json')) if os.path.isdir(where) else []
        if out.returncode != 0 or not reports:
            raise DrillError('verification did not run (rc %d):\n%s' % (
                out.returncode, '\n'.join(out.stdout.splitlines()[-30:])))
        with open(reports[0]) as f:
            return json.load(f)['results']
    finally:
        if own:
            shutil.rmtree(report_dir, ignore_errors=True)


def expected(drill, names):
    """The check names (of names) the drill expects to fail: those any expect_fail matches."""
    patterns = [re.compile(p) for p in drill['expect_fail']]
    return [n for n in names if any(p.search(n) for p in patterns)]


def compare(drill, rows):
    """(unexpected failures, expected failures that passed), each a sorted list of names."""
    failed = set(r['name'] for r in rows if not r['passed'])
    want = set(expected(drill, [r['name'] for r in rows]))
    return sorted(failed - want), sorted(want - failed)


# ---- output -----------------------------------------------------------------------------
def where(row):
    """Where a failed check broke, in a few words: the hop for a path, else the reason."""
    reason = row.get('reason') or ''
    m = re.match(r'hop (\d+): expected (\S+), observed (.*)', reason)
    if m:
        return 'hop %s: expected %s, got %s' % m.groups()
    return reason or 'expected %s; observed %s' % (row['expected'], row['observed'])


def show_failures(rows, drill=None):
    failed = [r for r in rows if not r['passed']]
    print('%d checks: %d passed, %d failed' % (len(rows), len(rows) - len(failed), len(failed)))
    for r in failed:
        print('  FAIL %-48s %s' % (r['name'], where(r)))
    if drill is not None:
        unexpected, passed = compare(drill, rows)
        if not unexpected and not passed:
            print('These are exactly the checks this drill breaks.')
        for name in unexpected:
            print('  (not expected to fail: %s)' % name)
        for name in passed:
            print('  (expected to fail but passed: %s)' % name)


def exec_line(target, command):
    """The k8slab command a reader can paste to run command (a shell line) in target (NODE or
    NODE/POD) as the drill ran it: wrapped in ``sh -c '...'`` when it holds shell syntax, so
    the reader's own shell neither splits a loop nor redirects on the host."""
    if re.search(r'[;&|<>$`(){}*?~#!\\"\'\n]', command):
        command = 'sh -c ' + shlex.quote(command)
    return 'k8slab exec %s -- %s' % (target, command)


def show_find(lab, drill):
    for step in drill['find']:
        try:
            command = resolve(lab, step['node'], step['run'])
            dummy, out = node_run(lab, step['node'], command, check=False)
        except DrillError as e:
            command, out = step['run'], str(e)
        print('\n$ ' + exec_line(step['node'], command))
        print('\n'.join(out.splitlines()[:12]))
        if step.get('look'):
            print('  ^ look for: %s' % resolve(lab, step['node'], step['look']))


def run(args):
    try:
        if args.name == 'list':
            for d in load():
                need = ' [needs %s]' % ', '.join(d['requires']) if d['requires'] else ''
                print('%-24s %s%s' % (d['name'], d['summary'], need))
            return 0
        drill = load(args.name)
        lab = Lab(pick_lab(args))
        if not lab.up:
            fail('lab %s is not up; `k8slab --lab %s up` builds it' % (lab.name, lab.name))
        lacks = missing(lab, drill)
        if lacks:
            print('drill %s needs %s, which lab %s does not have: skipped'
                  % (drill['name'], ', '.join(lacks), lab.name))
            return 0
        print('== drill %s: %s\n%s\n' % (drill['name'], drill['title'], drill['summary']))
        for node, command in inject(lab, drill):
            print('fault: ' + exec_line(node, command))
        if not args.no_verify:
            print('\nverifying ...')
            show_failures(verify(lab.name, args.inventory), drill)
        print('\nWhat broke:\n' + drill['explain'].rstrip())
        print('\nHow to find it:')
        show_find(lab, drill)
        print('\n`k8slab heal` re-converges the lab (site.yml) and verifies it green.')
    except DrillError as e:
        fail(str(e))
    return 0


def arguments(parser):
    parser.add_argument('name', metavar='NAME|list')
    parser.add_argument('--no-verify', action='store_true',
                        help='inject the fault and explain it, without verifying')


DRILL = Subcommand(
    'drill', 'break the live lab on purpose (a named fault drill)',
    ['k8slab drill list                 the fault drills',
     'k8slab drill NAME                 inject one, verify, show what fails and how to find it'],
    run, arguments)

#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""Benchmark the single-host lab (docs/benchmark.md), as root:

    scripts/bench.py                          # everything, 3 repeats (make bench)
    scripts/bench.py --sizes ref,3x2 --repeat 5 --parts lab

For each size (`ref`: the reference lab of inventories/netns; `NxM`: N nodes x M pods each) it
generates an inventory in a temporary directory (lab name `kebench`) and times, per repeat:
  build       validate.yml + netns_lab_up.yml + cluster.yml in one ansible-playbook run
  verify      playbooks/verify.yml on the fresh lab
  idempotent  site.yml again on the built lab (and counts the tasks it reports changed)
  check       site.yml --check on the built lab
  teardown    playbooks/netns_lab_down.yml
  site        site.yml on no lab at all: build + verify in one run, as `make lab` does
  (then teardown again)
and, for the same topology, the command-per-step playbook (`cmd`, lab prefix `kbcmd`) and the
plain shell script (`shell`, prefix `kbsh`) from bench/baseline.py, each proven with a ping.
A step whose lab is not in the state it measures gets an untimed build or teardown first
(lab_plan): `--lab-steps idempotent` alone times a rerun, not a first build.
Wall time and CPU time (user + system of every waited-for child process) are reported as
min/median; a table is printed and the raw samples are written as JSON. Each run of a step that
verifies records its report's number of checks (the verify-time curve: verify wall against
checks, with a least-squares line), and after each `build` and `site` the lab's processes are
measured (RSS and PSS of every sandbox, container, shim and the lab's other processes, from
/proc: bench/memory.py). A size whose lab needs more IPv4 neighbour entries than the host's
gc_thresh3 is skipped with the count, as the lab would refuse it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import configparser
import fcntl
import glob
import importlib.util
import json
import os
import platform
import re
import shutil
import statistics
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

import baseline  # noqa: E402  pylint: disable=wrong-import-position
import curve  # noqa: E402  pylint: disable=wrong-import-position
import memory  # noqa: E402  pylint: disable=wrong-import-position
import topology  # noqa: E402  pylint: disable=wrong-import-position

LAB_NAME = 'kebench'
CMD_PREFIX = 'kbcmd'
SHELL_PREFIX = 'kbsh'
BIN = os.path.join(REPO, '.venv', 'bin')
RECAP_RE = re.compile(r'^\S+\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)',
                      re.M)
LAB_STEPS = ['build', 'verify', 'idempotent', 'check', 'teardown', 'site']
# Steps after which the lab's processes are measured (the lab has just been built).
MEMORY_STEPS = ('build', 'site')
GC_THRESH3 = '/proc/sys/net/ipv4/neigh/default/gc_thresh3'


def neigh_limit(lab):
    """None when the lab fits the host's IPv4 neighbour table, else why not (the lab's own
    check, plugins/filter/neigh.py, refuses it before building anything)."""
    spec = importlib.util.spec_from_file_location(
        'k8slab_neigh', os.path.join(REPO, 'plugins', 'filter', 'neigh.py'))
    neigh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(neigh)
    need = neigh.neigh_entries(list(lab['lab_nodes']), lab.get('lab_pods'))
    with open(GC_THRESH3) as f:
        limit = int(f.read())
    if need['entries'] <= limit:
        return None
    return ("%d nodes, %d pods need %d IPv4 neighbour entries, more than this host's "
            'net.ipv4.neigh.default.gc_thresh3 = %d: the lab refuses it before building'
            % (need['nodes'], need['pods'], need['entries'], limit))


def warm_server_cpu(lab):
    """{pid: CPU seconds} of the lab's warm module servers, their reaped children included
    (utime + stime + cutime + cstime of /proc/PID/stat)."""
    result = {}
    for pidfile in glob.glob('/run/k8slab/%s/warm/*.pid' % lab):
        try:
            with open(pidfile) as f:
                pid = int(f.read())
            with open('/proc/%d/stat' % pid) as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except (OSError, ValueError):
            continue
        result[pid] = sum(int(x) for x in fields[11:15]) / os.sysconf('SC_CLK_TCK')
    return result


def lab_plan(steps, repeat):
    """The lab steps to run: [(repeat, n, step, timed)]. Each repeat takes the asked ``steps``
    in the order of LAB_STEPS (with ``teardown`` asked, a second one after ``site``, of the
    lab site.yml made);
    an untimed build or teardown goes before a step whose lab is not in the state the step
    measures - build and site start from no lab, verify, idempotent, check and teardown from
    a built one - so that, say, ``idempotent`` asked alone is a rerun and not a first build."""
    sequence = [s for s in LAB_STEPS if s in steps]
    if 'site' in sequence and 'teardown' in sequence:
        sequence.append('teardown')
    plan, built, n = [], False, 0
    for rep in range(1, repeat + 1):
        for what in sequence:
            need = what not in ('build', 'site')
            if built != need:
                plan.append((rep, n, 'build' if need else 'teardown', False))
                n += 1
            plan.append((rep, n, what, True))
            n += 1
            built = what != 'teardown'
    return plan


class BenchError(Exception):
    """A measured command failed; the message says which and where its log is."""


def timed(argv, log, env=None):
    """Run argv with output to `log`; return (wall seconds, cpu seconds, output)."""
    with open(log, 'wb') as out:
        start = time.monotonic()
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT)
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    with open(log, errors='replace') as f:
        output = f.read()
    if proc.returncode != 0:
        raise BenchError('%s failed (rc=%d), see %s:\n%s'
                         % (' '.join(argv), proc.returncode, log, output[-2000:]))
    return wall, usage.ru_utime + usage.ru_stime, output


def recap(output):
    """(ok, changed, failed) summed over the PLAY RECAP lines of ansible-playbook output."""
    rows = RECAP_RE.findall(output)
    return tuple(sum(int(r[i]) for r in rows) for i in (0, 1, 3))


def cfg_callbacks():
    """The callbacks the collection's ansible.cfg enables (list of names)."""
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(REPO, 'ansible.cfg'))
    return [n.strip() for n in cfg.get('defaults', 'callbacks_enabled', fallback='').split(',')
            if n.strip()]


class Bench:
    """Runs the measurements of one benchmark invocation and collects the samples."""

    def __init__(self, args, workdir):
        self.args = args
        self.workdir = workdir
        self.results = []
        self.env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, 'ansible.cfg'),
                        ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0',
                        K8SLAB_REPORT_DIR=os.path.join(workdir, 'reports'),
                        # Per-task wall times (bench/callback_plugins/bench_profile.py).
                        ANSIBLE_CALLBACK_PLUGINS=os.path.join(REPO, 'bench', 'callback_plugins'),
                        # The variable replaces ansible.cfg's list: keep what it enables.
                        ANSIBLE_CALLBACKS_ENABLED=','.join(['bench_profile'] + cfg_callbacks()),
                        PATH=BIN + os.pathsep + os.environ.get('PATH', ''))

    def record(self, size, label, what, rep, wall, cpu, **extra):
        sample = dict(size=size, label=label, what=what, repeat=rep, wall=round(wall, 3),
                      cpu=round(cpu, 3), **extra)
        self.results.append(sample)
        notes = ''.join('  %s=%s' % kv for kv in sorted(extra.items())
                        if kv[0] not in ('profile', 'memory'))
        if extra.get('memory'):
            mem = memory.summarize(extra['memory'])
            notes += '  memory: %d processes, RSS %s, PSS %s' % (
                mem['processes'], memory.mib(mem['rss_total']), memory.mib(mem['pss_total']))
        print('  %-6s %-11s #%d  wall %7.2f s  cpu %7.2f s%s' % (size, what, rep, wall, cpu, notes),
              flush=True)

    def playbook(self, inv, playbooks, log, *extra):
        """Run ansible-playbook: (wall, cpu, output, profile of the tasks)."""
        argv = [os.path.join(BIN, 'ansible-playbook'), '-i', inv] + list(extra) + [
            os.path.join(REPO, p) for p in playbooks]
        profile = log + '.profile'
        before = warm_server_cpu(LAB_NAME)
        wall, cpu, out = timed(argv, log, env=dict(self.env, K8SLAB_BENCH_PROFILE=profile))
        # The netns connection's warm module server outlives the run, so wait4 does not count
        # it: add what its processes used during the run (a server that left is not counted).
        cpu += sum(t - before.get(pid, 0.0) for pid, t in warm_server_cpu(LAB_NAME).items())
        tasks = []
        if os.path.exists(profile):
            with open(profile) as f:
                runs = [json.loads(line) for line in f if line.strip()]
            for run in runs:
                tasks.extend(run['tasks'])
            # What the process spent outside the plays: interpreter, imports, inventory.
            tasks.insert(0, ['(process start-up and exit)',
                             round(wall - sum(r['total'] for r in runs), 3)])
        return wall, cpu, out, tasks

    # -- the lab ---------------------------------------------------------------------------

    def lab(self, size, label, lab):
        inv = topology.write_inventory(REPO, lab, LAB_NAME,
                                       os.path.join(self.workdir, 'inv-%s' % size))
        down = ['playbooks/netns_lab_down.yml']
        build = ['playbooks/validate.yml', 'playbooks/netns_lab_up.yml', 'playbooks/cluster.yml']
        self.playbook(inv, down, self.log(size, 'pre-teardown'))
        playbooks = dict(build=build, verify=['playbooks/verify.yml'], idempotent=['site.yml'],
                         check=['site.yml'], teardown=down, site=['site.yml'])
        try:
            for rep, n, what, timed in lab_plan(self.args.lab_steps, self.args.repeat):
                extra = ('--check',) if what == 'check' else ()
                log = self.log(size, '%s-%d-%d' % (what, rep, n) if timed else
                               'untimed-%s-%d-%d' % (what, rep, n))
                if not timed:
                    self.playbook(inv, playbooks[what], log)
                    continue
                report = self.clear_verify_report()
                wall, cpu, out, tasks = self.playbook(inv, playbooks[what], log, *extra)
                ok, changed, _failed = recap(out)
                more = dict(tasks=ok, changed=changed, profile=tasks)
                more.update(read_verify_report(report))
                if what in MEMORY_STEPS:
                    more['memory'] = memory.lab_processes(LAB_NAME)
                self.record(size, label, what, rep, wall, cpu, **more)
        finally:
            self.playbook(inv, down, self.log(size, 'final-teardown'))

    def clear_verify_report(self):
        """Remove the lab's last verification report, so that one found after a step is the
        step's own; return its path."""
        path = os.path.join(self.env['K8SLAB_REPORT_DIR'], LAB_NAME, 'verify.json')
        if os.path.exists(path):
            os.remove(path)
        return path

    # -- the baselines ---------------------------------------------------------------------

    def baseline(self, size, label, lab, kind):
        prefix = CMD_PREFIX if kind == 'cmd' else SHELL_PREFIX
        if kind == 'cmd':
            path = os.path.join(self.workdir, 'baseline-%s.yml' % size)
            text = baseline.playbook(lab, prefix)
        else:
            path = os.path.join(self.workdir, 'baseline-%s.sh' % size)
            text = baseline.shell_script(lab, prefix)
        with open(path, 'w') as f:
            f.write(text)
        commands = len(baseline.steps(lab, prefix))
        names = baseline.all_namespaces(lab, prefix)
        remove_namespaces(names)
        try:
            repeat = self.args.repeat if kind == 'shell' else self.args.cmd_repeat
            for rep in range(1, repeat + 1):
                log = self.log(size, '%s-%d' % (kind, rep))
                if kind == 'cmd':
                    wall, cpu, _out = timed([os.path.join(BIN, 'ansible-playbook'), '-i',
                                             'localhost,', path], log, env=self.env)
                else:
                    wall, cpu, _out = timed(['sh', path], log, env=self.env)
                proven = prove(lab, prefix)
                self.record(size, label, kind, rep, wall, cpu, commands=commands, ping=proven)
                remove_namespaces(names)
        finally:
            remove_namespaces(names)

    def log(self, size, name):
        return os.path.join(self.workdir, 'logs', '%s-%s.log' % (size, name))

    def run(self):
        os.makedirs(os.path.join(self.workdir, 'logs'), exist_ok=True)
        for size in self.args.sizes:
            lab, label = topology.topology(REPO, size)
            print('%s: %s' % (size, label), flush=True)
            too_big = neigh_limit(lab) if 'lab' in self.args.parts else None
            for part in self.args.parts:
                if part == 'lab' and too_big:
                    print('  %s lab SKIPPED: %s' % (size, too_big), flush=True)
                    self.results.append(dict(size=size, label=label, what=part, skipped=too_big))
                    continue
                try:
                    if part == 'lab':
                        self.lab(size, label, lab)
                    else:
                        self.baseline(size, label, lab, part)
                except BenchError as exc:
                    print('  %s %s FAILED: %s' % (size, part, exc), flush=True)
                    self.results.append(dict(size=size, label=label, what=part, error=str(exc)))
                    if not self.args.keep_going:
                        return False
        return not any('error' in r for r in self.results)


def read_verify_report(path):
    """{checks, checks_failed} of a verify.json report (verify_report's format), {} if none."""
    try:
        with open(path) as f:
            report = json.load(f)
    except (OSError, ValueError):
        return {}
    return dict(checks=report.get('checks'), checks_failed=report.get('failed'))


def prove(lab, prefix):
    """Ping across nodes in a baseline lab: True when the pod network works."""
    target = baseline.probe(lab, prefix)
    if target is None:
        return None
    source, address = target
    return subprocess.call(['ip', 'netns', 'exec', source, 'ping', '-c', '1', '-W', '2',
                            address], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0


def remove_namespaces(names):
    """Delete those of `names` that exist (a node's veths go with it)."""
    present = set(os.listdir('/run/netns')) if os.path.isdir('/run/netns') else set()
    batch = ''.join('netns del %s\n' % n for n in names if n in present)
    if batch:
        subprocess.run(['ip', '-force', '-batch', '-'], input=batch.encode(), check=False)


def summary(results):
    """Rows of (size, label, what, n, wall min, wall median, cpu min, cpu median, extra)."""
    groups = {}
    for r in results:
        if 'error' not in r and 'skipped' not in r:
            groups.setdefault((r['size'], r['what']), []).append(r)
    rows = []
    for (size, what), samples in groups.items():
        walls = [s['wall'] for s in samples]
        cpus = [s['cpu'] for s in samples]
        rows.append(dict(size=size, label=samples[0]['label'], what=what, n=len(samples),
                         wall_min=min(walls), wall_median=statistics.median(walls),
                         cpu_min=min(cpus), cpu_median=statistics.median(cpus),
                         changed=max(s.get('changed', 0) for s in samples),
                         tasks=samples[0].get('tasks'), commands=samples[0].get('commands'),
                         ping=all(s.get('ping', True) is not False for s in samples)))
        checks = [s['checks'] for s in samples if s.get('checks') is not None]
        if checks:
            rows[-1].update(checks=statistics.median(checks),
                            checks_failed=max(s.get('checks_failed') or 0 for s in samples))
        if any(s.get('memory') for s in samples):
            rows[-1]['memory'] = memory.pooled([s.get('memory') for s in samples])
        median = sorted(samples, key=lambda s: s['wall'])[(len(samples) - 1) // 2]
        if median.get('profile'):
            rows[-1]['profile'] = sorted(median['profile'], key=lambda t: -t[1])[:8]
    return rows


def ratios(rows):
    """Per size: how many times slower the baselines are than the lab's build (median wall)."""
    by = dict(((r['size'], r['what']), r) for r in rows)
    out = {}
    for size in sorted(set(r['size'] for r in rows)):
        build = by.get((size, 'build'))
        site = by.get((size, 'site'))
        entry = {}
        for kind in ('cmd', 'shell'):
            base = by.get((size, kind))
            if base and build:
                entry['%s_over_build' % kind] = round(base['wall_median'] / build['wall_median'], 2)
                entry['%s_over_build_cpu' % kind] = round(base['cpu_median'] / build['cpu_median'],
                                                          2)
            if base and site:
                entry['%s_over_site' % kind] = round(base['wall_median'] / site['wall_median'], 2)
        if entry:
            out[size] = entry
    return out


def table(rows, order):
    lines = ['| size | what | n | wall min | wall median | CPU min | CPU median | notes |',
             '|---|---|---|---|---|---|---|---|']
    whats = LAB_STEPS + ['cmd', 'shell']
    for r in sorted(rows, key=lambda r: (order.index(r['size']), whats.index(r['what']))):
        notes = []
        if r['what'] in ('idempotent', 'check'):
            notes.append('changed=%d' % r['changed'])
        if r.get('checks'):
            notes.append('%g checks, %d failed' % (r['checks'], r['checks_failed']))
        if r['commands']:
            notes.append('%d ip commands' % r['commands'])
        if r['what'] in ('cmd', 'shell'):
            notes.append('ping ok' if r['ping'] else 'PING FAILED')
        lines.append('| %s | %s | %d | %.2f s | %.2f s | %.2f s | %.2f s | %s |'
                     % (r['size'], r['what'], r['n'], r['wall_min'], r['wall_median'],
                        r['cpu_min'], r['cpu_median'], ', '.join(notes)))
    return '\n'.join(lines)


def memory_table(rows, order):
    """Markdown: per size, the lab's processes after the build (the `build` samples, else
    `site`): median and max RSS of a pod's sandbox and of its containers by workload, the rest
    of the lab by role, and the totals."""
    lines = ['| size | pods | processes | sandbox RSS median (max) | sandbox PSS median '
             '| containers RSS median / max | shims RSS median | rest of the lab (RSS) '
             '| total RSS | total PSS |',
             '|---|---|---|---|---|---|---|---|---|---|']
    chosen = {}
    for r in rows:
        if r.get('memory') and (r['size'] not in chosen or r['what'] == 'build'):
            chosen[r['size']] = r['memory']
    for size in [s for s in order if s in chosen]:
        mem = chosen[size]
        stats = mem['sandbox'] or {}
        pss = mem['sandbox_pss'] or {}
        per_lab = mem.get('samples') or 1  # pooled over that many builds
        containers = '; '.join(
            '%s x %g: %s / %s' % (w, st['n'] / per_lab, memory.mib(st['median']),
                                  memory.mib(st['max']))
            for w, st in sorted(mem['containers'].items()) if st)
        roles = mem['roles']
        rest = '; '.join('%s %g x %s' % (role, e['n'], memory.mib(e['rss'] / e['n']))
                         for role, e in sorted(roles.items())
                         if role not in ('sandbox', 'container', 'shim') and e['n'])
        lines.append('| %s | %s | %s | %s (%s) | %s | %s | %s | %s | %s | %s |' % (
            size, _num(mem['pods']), _num(mem['processes']), memory.mib(stats.get('median')),
            memory.mib(stats.get('max')), memory.mib(pss.get('median')), containers or '-',
            memory.mib((mem['shim'] or {}).get('median')),
            rest or '-', memory.mib(mem['rss_total']), memory.mib(mem['pss_total'])))
    return '\n'.join(lines)


def _num(value):
    return '-' if value is None else '%g' % value


def verify_curve(rows):
    """The `verify` step's median wall and CPU against its checks, per size, and the
    least-squares line through them: {points: [{size, checks, wall, cpu, checks_per_s}],
    fit: {intercept_s, s_per_check, r2} or None}."""
    points = [dict(size=r['size'], checks=r['checks'], wall=r['wall_median'], cpu=r['cpu_median'],
                   checks_per_s=round(r['checks'] / r['wall_median'], 1))
              for r in rows if r['what'] == 'verify' and r.get('checks')]
    points.sort(key=lambda p: p['checks'])
    fit = curve.linear_fit([(p['checks'], p['wall']) for p in points])
    return dict(points=points, fit=None if fit is None else dict(
        intercept_s=round(fit[0], 3), s_per_check=round(fit[1], 5), r2=round(fit[2], 4)))


def curve_table(result, skipped=()):
    """Markdown of verify_curve(): one line per size, the fit, and the sizes not built."""
    lines = ['| size | checks | verify wall median | verify CPU median | checks/s (wall) '
             '| ms per check (wall) |', '|---|---|---|---|---|---|']
    for p in result['points']:
        lines.append('| %s | %d | %.2f s | %.2f s | %.1f | %.1f |' % (
            p['size'], p['checks'], p['wall'], p['cpu'], p['checks_per_s'],
            1000.0 * p['wall'] / p['checks']))
    for size, why in skipped:
        lines.append('| %s | - | not built | | | %s |' % (size, why))
    if result['fit']:
        lines.append('')
        lines.append('least squares over %d sizes: wall = %.2f s + %.1f ms x checks (r^2 = %.3f)'
                     % (len(result['points']), result['fit']['intercept_s'],
                        1000 * result['fit']['s_per_check'], result['fit']['r2']))
    return '\n'.join(lines)


def skipped_sizes(results):
    return [(r['size'], r['skipped']) for r in results if 'skipped' in r]


def machine():
    with open('/proc/cpuinfo') as f:
        models = [line.split(':', 1)[1].strip() for line in f if line.startswith('model name')]
    ansible = subprocess.run([os.path.join(BIN, 'ansible-playbook'), '--version'],
                             capture_output=True, text=True, check=False).stdout.split('\n')[0]
    return dict(kernel=platform.release(), cpus=os.cpu_count(), cpu_model=models[0] if models else '',
                python=platform.python_version(), ansible=ansible.strip(),
                loadavg=os.getloadavg(), date=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()))


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--sizes', default='ref,3x2,5x10,10x20',
                        help="comma-separated: 'ref' and/or NxM (default: %(default)s)")
    parser.add_argument('--parts', default='lab,cmd,shell',
                        help='comma-separated from lab, cmd, shell (default: %(default)s)')
    parser.add_argument('--lab-steps', default=','.join(LAB_STEPS),
                        help='lab steps to time (default: %(default)s)')
    parser.add_argument('--repeat', type=int, default=3, help='repeats (default: %(default)s)')
    parser.add_argument('--cmd-repeat', type=int,
                        help='repeats of the command-per-step playbook (default: --repeat)')
    parser.add_argument('--json', default=os.path.join(REPO, 'reports', 'bench.json'),
                        help='where to write the results (default: %(default)s)')
    parser.add_argument('--keep', action='store_true', help='keep the work dir (logs, inventories)')
    parser.add_argument('--keep-going', action='store_true', help='go on after a failure')
    parser.add_argument('--merge', nargs='+', metavar='JSON',
                        help='measure nothing: combine the samples of earlier runs into one report')
    args = parser.parse_args(argv)
    args.sizes = [s for s in args.sizes.split(',') if s]
    for size in args.sizes:
        topology.topology(REPO, size)  # fails early on a bad size
    args.parts = [p for p in args.parts.split(',') if p]
    args.lab_steps = [s for s in args.lab_steps.split(',') if s]
    bad = set(args.parts) - {'lab', 'cmd', 'shell'} | set(args.lab_steps) - set(LAB_STEPS)
    if bad:
        parser.error('unknown part or step: %s' % ', '.join(sorted(bad)))
    if args.cmd_repeat is None:
        args.cmd_repeat = args.repeat
    return args


def merge(args, argv):
    """Combine earlier reports (e.g. a long baseline run and the lab runs) into one."""
    samples, commands, order = [], [], []
    for path in args.merge:
        with open(path) as f:
            report = json.load(f)
        samples.extend(report['samples'])
        commands.append(report['command'])
        order.extend(s['size'] for s in report['samples'] if s['size'] not in order)
    report = make_report(argv, samples, commands=commands)
    with open(args.json, 'w') as f:
        json.dump(report, f, indent=2)
    order = [s for s in args.sizes if s in order] + [s for s in order if s not in args.sizes]
    print_report(report, order)
    return 0


def make_report(argv, samples, **extra):
    """The JSON report of samples: the command, the machine, the summary rows (with their
    memory), the ratios, the verification curve, the sizes not built, and every sample."""
    rows = summary(samples)
    return dict(command=' '.join(['scripts/bench.py'] + argv), machine=machine(),
                summary=rows, ratios=ratios(rows), verify_curve=verify_curve(rows),
                skipped=skipped_sizes(samples), samples=samples, **extra)


def print_report(report, order):
    rows = report['summary']
    print(table(rows, order))
    for r in rows:
        if r['what'] in ('build', 'site') and r.get('profile'):
            print('%s %s, slowest tasks of the median run: %s' % (
                r['size'], r['what'], '; '.join('%s %.1f s' % (n, t) for n, t in r['profile'])))
    for size, entry in report['ratios'].items():
        print('%s: %s' % (size, ', '.join('%s %.2fx' % kv for kv in sorted(entry.items()))))
    if any(r.get('memory') for r in rows):
        print()
        print('Memory of the lab after the build:')
        print(memory_table(rows, order))
    if report['verify_curve']['points'] or report['skipped']:
        print()
        print('Verification time against checks:')
        print(curve_table(report['verify_curve'], report['skipped']))


def main(argv):
    args = parse_args(argv)
    if args.merge:
        return merge(args, argv)
    if os.geteuid() != 0:
        sys.exit('scripts/bench.py builds network namespaces: run it as root')
    # Two runs would build and delete the same kebench/kbcmd/kbsh namespaces under each other.
    lock = open('/run/k8slab-bench.lock', 'w')  # pylint: disable=consider-using-with
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        sys.exit('another scripts/bench.py is running (it holds /run/k8slab-bench.lock)')
    workdir = tempfile.mkdtemp(prefix='k8slab-bench-')
    bench = Bench(args, workdir)
    started = time.monotonic()
    load_start = os.getloadavg()
    try:
        ok = bench.run()
    finally:
        report = make_report(argv, bench.results, loadavg_start=load_start,
                             seconds=round(time.monotonic() - started, 1))
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=2)
        print()
        print_report(report, args.sizes)
        print('load average at the start %s, at the end %s' % (
            ' '.join('%.2f' % x for x in load_start),
            ' '.join('%.2f' % x for x in report['machine']['loadavg'])))
        print('JSON: %s' % args.json)
        if args.keep:
            print('work dir: %s' % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))

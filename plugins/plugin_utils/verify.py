# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""Verification on the controller: derive the lab's checks from the registered kinds, select
them (kinds, tags, a name pattern), hand each node its probes, merge the results into a
report (table, JSON rows, JUnit XML). Used by the k8slab.podnet verify filters and by the
verify_report action plugin; raises VerifyError with a message ready for the user."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import re
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence

from ansible_collections.k8slab.podnet.plugins.module_utils.probe import PROBES, evaluate
# Importing the kinds registers them.
from ansible_collections.k8slab.podnet.plugins.plugin_utils import verify_kinds  # noqa: F401 pylint: disable=unused-import
from ansible_collections.k8slab.podnet.plugins.plugin_utils.verify_registry import (
    COMMON_KEYS, KINDS, Lab)

# Every kind must have its module side too.
for _name in KINDS:
    if _name not in PROBES:
        raise ImportError('check kind %r has no probe in module_utils/probe.py' % _name)

DEFAULT_OPTIONS = dict(nat_address='10.0.2.15/24', nat_isolated=True, outside_ip='',
                       http_port=80,
                       http_body='pod {pod} on node {node}, container {container}')
# Run tags that mean "everything" rather than a choice of kinds.
ALL_TAGS = ('all', 'verify')


class VerifyError(Exception):
    pass


def kind_names():
    """The registered kinds, in registration (report) order."""
    return list(KINDS)


def kind_tags():
    """{tag: [kind names]}: every tag that selects kinds."""
    tags = {}
    for kind in KINDS.values():
        for tag in kind.all_tags():
            tags.setdefault(tag, []).append(kind.name)
    return tags


def wanted_kinds(kinds=None, run_tags=None, skip_tags=None):
    """The kinds to verify: ``kinds`` (empty: every registered kind), narrowed by the play's
    tags (``ansible_run_tags``: tags naming kinds choose those; tags naming neither a kind,
    ``verify`` nor ``all`` choose none - the role's tasks are tagged ``always`` and must stay
    quiet in a run about other roles) and ``ansible_skip_tags`` (``verify`` skips all)."""
    unknown = [k for k in kinds or [] if k not in KINDS]
    if unknown:
        raise VerifyError('verify_kinds: %s not one of the check kinds %s'
                          % (', '.join(map(str, unknown)), ', '.join(KINDS)))
    chosen = [k for k in KINDS if not kinds or k in kinds]
    tags = kind_tags()
    run = set(run_tags or [])
    if run:
        named = set(k for t in run & set(tags) for k in tags[t])
        if named:
            chosen = [k for k in chosen if k in named]
        elif not run & set(ALL_TAGS):
            chosen = []
    skip = set(skip_tags or [])
    if skip & set(ALL_TAGS):
        return []
    skipped = set(k for t in skip & set(tags) for k in tags[t])
    return [k for k in chosen if k not in skipped]


def checks(lab, facts=None, options=None, extra=None, kinds=None):
    """Every check of a lab: the default checks of ``kinds`` (default: every registered
    kind), derived for every node, ordered node pair and pod, then the ``extra`` hand-written
    checks {name, kind, source, target, ...expectation}, resolved the same way.

    lab: {nodes: lab_nodes, node_order, pods: lab_pods, public_iface, nat_iface, cni_bridge,
    hostonly_cidr, cni_mtu}; facts: {node: k8slab.podnet.node_info result}; options:
    nat_address (eth0's address on every node, '' to skip), nat_isolated (bool), outside_ip
    ('' to skip), http_port, http_body (str.format with {pod} and {node})."""
    if not isinstance(lab, dict) or not isinstance(lab.get('nodes'), dict):
        raise VerifyError('verify_checks: lab must be a dict with nodes (lab_nodes)')
    # The verify role does not validate lab_pods per node (the topology role does, once);
    # playbooks/verify.yml alone still gets a clear error for a bad one.
    pods = lab.get('pods') or []
    if not isinstance(pods, list) or not all(isinstance(p, dict) for p in pods):
        raise VerifyError('verify_checks: pods (lab_pods) must be a list of dicts, got %r'
                          % (pods,))
    opts = dict(DEFAULT_OPTIONS)
    opts.update(options or {})
    view = Lab(lab, facts)
    out = []
    for name in KINDS:
        if kinds is None or name in kinds:
            out.extend(KINDS[name].checks(view, opts))
    for c in extra or []:
        c = dict(c)
        try:
            name, kind, source = c.pop('name'), c.pop('kind'), c.pop('source')
        except KeyError as e:
            raise VerifyError('verify_checks: extra check %r has no %s' % (c, e))
        if kind not in KINDS:
            raise VerifyError('verify_checks: check %r: kind %r is not one of %s'
                              % (name, kind, ', '.join(KINDS)))
        if str(source).split('/', 1)[0] not in view.nodes:
            raise VerifyError('verify_checks: check %r: source %r is not a node or '
                              'node/pod of the lab' % (name, source))
        if kinds is None or kind in kinds:
            out.append(view.check(name, kind, source, c.pop('target', None), **c))
    seen, dups = set(), set()
    for c in out:
        (dups if c['name'] in seen else seen).add(c['name'])
    if dups:
        raise VerifyError('verify_checks: check names must be unique: %s'
                          % ', '.join(sorted(dups)))
    return out


def select(checks_, kinds=None, only='', run_tags=None, skip_tags=None):
    """The checks to run: of the wanted kinds (see ``wanted_kinds``), names matching the
    regular expression ``only``."""
    chosen = set(wanted_kinds(kinds, run_tags, skip_tags))
    pattern = re.compile(only) if only else None
    return [c for c in checks_ if c['kind'] in chosen
            and (not pattern or pattern.search(c['name']))]


def probe_of(check):
    """The k8slab.podnet.probe ``probes`` entry of a check."""
    keys = COMMON_KEYS + KINDS[check['kind']].keys
    probe = dict((k, check[k]) for k in keys if check.get(k) is not None)
    if check.get('netns'):
        probe['netns'] = check['netns']
    return probe


def probes(checks_, node):
    """k8slab.podnet.probe ``probes`` for one node: its checks that can run."""
    return [probe_of(c) for c in checks_ if c.get('node') == node and not c.get('error')]


def plan(lab, facts=None, options=None, extra=None, kinds=None, only=''):
    """The checks to run and every node's probes, built once for the whole play (linear in
    checks): {checks: [...], probes: {node: [probe, ...]}}. kinds: the wanted kinds (see
    ``wanted_kinds``); only: a regular expression on check names."""
    kinds = list(kinds) if kinds is not None else list(KINDS)
    chosen = select(checks(lab, facts, options, extra, kinds), kinds, only)
    by_node = dict((n, []) for n in lab.get('node_order') or lab['nodes'])
    for c in chosen:
        if not c.get('error'):
            by_node.setdefault(c['node'], []).append(probe_of(c))
    return dict(checks=chosen, probes=by_node)


def read_plan(task_vars, var, pick, template, option='plan.var'):
    """``pick(plan)`` - the part of the plan (as ``plan`` makes it: {checks: [...], probes:
    {node: [...]}}) an action needs - from the variable named ``var`` of the task's variables
    (dict), read as it is: a fact that set_fact made is data already, and templating it again
    as a task argument copies every check and probe (at 10 nodes x 20 pods ~0.2 s of CPU per
    node). What still holds a template goes through ``template`` (the action's templar), as an
    argument would: a plan that is not one as it is (a play or inventory variable holding its
    template), and a picked part with ``{{``/``{%`` in it. ``pick`` may raise VerifyError.
    Raises VerifyError naming ``option`` and the value when the variable is missing or is not
    a plan."""
    if not isinstance(var, str) or not var:
        raise VerifyError('%s must name a variable, got %r' % (option, var))
    if var not in (task_vars or {}):
        raise VerifyError('%s %r: no such variable (set it with the k8slab.podnet.verify_plan '
                          'filter, for example in set_fact)' % (option, var))
    value = task_vars[var]
    if not _is_plan(value):
        value = template(value)
    if not _is_plan(value):
        raise VerifyError('%s %r is not a plan made by the k8slab.podnet.verify_plan filter '
                          '(a dict with checks and probes), got %s'
                          % (option, var, 'null' if value is None else _type_name(value)))
    part = pick(value)
    return template(part) if _has_template(part) else part


def _is_plan(value):
    return (isinstance(value, Mapping) and _is_list(value.get('checks'))
            and isinstance(value.get('probes'), Mapping))


def _is_list(value):
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _type_name(value):
    """The YAML-ish name of a value's type (Ansible's tagged types are subclasses)."""
    for kind, name in ((Mapping, 'dict'), (str, 'str'), (bool, 'bool'), (int, 'int'),
                       (float, 'float')):
        if isinstance(value, kind):
            return name
    return 'list' if _is_list(value) else type(value).__name__


def _has_template(value):
    """Whether a string anywhere in value (nested dicts and lists) looks like a template. Not
    Templar.is_template: in ansible-core 2.19 it runs the value through the templating engine,
    which costs what templating it would."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if '{{' in item or '{%' in item:
                return True
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif _is_list(item):
            stack.extend(item)
    return False


def registered(hostvars, var, hosts):
    """The probe ``results`` the hosts (inventory names) registered as ``var``, in host order
    (a registration of a looped task gives each item's). Read from the hosts' variables as
    they are (HostVars.raw_get: not templated, which copied every result: ~0.5 s for the 3475
    results of 10 nodes x 20 pods); a variable that holds a template is read templated, in its
    host's context. A host that is not in the inventory, has no such variable or whose task
    was skipped adds none. Raises VerifyError for a record without a name."""
    results = []
    raw_get = getattr(hostvars, 'raw_get', None) or (lambda host: hostvars[host])
    for host in hosts:
        if hostvars is None or host not in hostvars:
            continue
        found = raw_get(host)
        probed = found.get(var) if isinstance(found, Mapping) else None
        if probed is not None and (not isinstance(probed, Mapping) or _has_template(probed)):
            probed = hostvars[host].get(var)  # HostVars templates it for that host
        records = probed.get('results') if isinstance(probed, Mapping) else None
        for record in records if _is_list(records) else []:
            if isinstance(record, Mapping) and _is_list(record.get('results')) \
                    and 'name' not in record:
                results.extend(record['results'])  # one item of a looped task
            else:
                results.append(record)
    for record in results:
        if not isinstance(record, Mapping) or 'name' not in record:
            raise VerifyError('registered.var %r holds a result that is not a probe result '
                              '(no name): %.200r' % (var, record))
    return results


def _expected_text(check):
    """The expectation as the probe module words it (for checks that never ran)."""
    probe = probe_of(check)
    probe.setdefault('status', 200)
    return evaluate(probe, {'error': 'not probed'})[1]


def report(checks_, results):
    """Checks merged with the probe results (a list of every node's ``results``), in check
    order. A check without a result failed: it could not be resolved or its node did not run."""
    by_name = dict((r['name'], r) for r in results or [])
    rows = []
    for c in checks_:
        r = by_name.get(c['name'])
        row = dict(name=c['name'], kind=c['kind'], source=c['source'], target=c['to'],
                   address=c.get('target'))
        if r is None:
            row.update(passed=False, expected=_expected_text(c), observed='not probed',
                       reason=c.get('error') or 'node %s returned no result' % c['node'],
                       attempts=0, duration=0.0)
        else:
            row.update(passed=bool(r['passed']), expected=r.get('expected', ''),
                       observed=r.get('observed', ''), reason=r.get('reason', ''),
                       attempts=r.get('attempts', 1), duration=r.get('duration', 0.0))
            if 'hops' in r:
                row['hops'] = r['hops']
        if not row['passed']:
            # One line for the play's failure message: the check, expected and observed.
            row['failure'] = '%s: expected %s; observed %s' % (row['name'], row['expected'],
                                                               row['observed'])
            if row['reason'] and row['reason'] not in row['observed'] \
                    and not row['reason'].startswith('expected '):
                row['failure'] += ' (%s)' % row['reason']
        rows.append(row)
    return rows


# The table's width when none is given and $COLUMNS is unset (not exported by most shells).
DEFAULT_WIDTH = 100
TABLE_HEAD = ('check', 'source', 'target', 'expected', 'observed', 'result')
# Columns left when the whole table does not fit: the check's name holds source and target.
NARROW = (0, 3, 4, 5)
MIN_COLUMN = 8


def table_width(width=None):
    """The table's width in characters: width if given (> 0), else $COLUMNS, else
    DEFAULT_WIDTH."""
    for value in (width, os.environ.get('COLUMNS')):
        try:
            if int(value) > 0:
                return int(value)
        except (TypeError, ValueError):
            pass
    return DEFAULT_WIDTH


def _fit(cells, room):
    """Column widths (list of int) for columns of cells (a list of lists of str) summing to at
    most room: each column first asks for the width of nine in ten of its cells - the first
    column (the check's name) up to half the room, the others sharing the rest, the widest
    asks giving way first (none below MIN_COLUMN); room left over then goes to the columns
    whose longest cells still wrap."""
    natural = [max(len(c) for c in column) for column in cells]
    usual = [sorted(len(c) for c in column)[(len(column) - 1) * 9 // 10] for column in cells]
    usual[0] = min(usual[0], room // 2)
    cap = max(usual[1:] or [0])
    while cap > MIN_COLUMN and usual[0] + sum(min(w, cap) for w in usual[1:]) > room:
        cap -= 1
    usual = usual[:1] + [min(w, cap) for w in usual[1:]]
    cap = max(usual)
    while cap > MIN_COLUMN and sum(min(w, cap) for w in usual) > room:
        cap -= 1
    widths = [min(w, cap) for w in usual]
    for i in sorted(range(len(widths)), key=lambda i: natural[i] - widths[i]):
        widths[i] += max(0, min(natural[i] - widths[i], room - sum(widths)))
    return widths


def table(rows, width=None):
    """The report as a text table no wider than table_width(width) (a string): check, source,
    target, expected, observed, result when they fit, else check, expected, observed, result
    with long cells wrapped onto further lines (nothing is cut: the full values are also in
    the JSON and JUnit reports); then a count per kind and the total."""
    width = table_width(width)
    cells = [(r['name'], r['source'], '%s%s' % (r['target'], ' (%s)' % r['address']
                                                if r.get('address') and r['address'] != r['target']
                                                else ''),
              str(r['expected']), str(r['observed']), 'PASS' if r['passed'] else 'FAIL')
             for r in rows]
    by_column = [[TABLE_HEAD[i]] + [row[i] for row in cells] for i in range(len(TABLE_HEAD))]
    natural = [max(len(c) for c in column) for column in by_column]
    columns = list(range(len(TABLE_HEAD)))
    if sum(natural) + 2 * (len(columns) - 1) > width:
        columns = list(NARROW)
    gaps = 2 * (len(columns) - 1)
    # The result column never wraps; the others share the rest.
    widths = _fit([by_column[i] for i in columns[:-1]], width - gaps - natural[-1]) + [natural[-1]]

    def lines(values):
        wrapped = [textwrap.wrap(str(values[i]), w, break_on_hyphens=False) or ['']
                   for i, w in zip(columns, widths)]
        out = []
        for n in range(max(len(c) for c in wrapped)):
            out.append('  '.join((c[n] if n < len(c) else '').ljust(w)
                                 for c, w in zip(wrapped, widths)).rstrip())
        return out

    out = lines(TABLE_HEAD) + ['  '.join('-' * w for w in widths)]
    for row in cells:
        out += lines(row)
    per_kind = []
    for kind in KINDS:
        mine = [r for r in rows if r['kind'] == kind]
        if mine:
            per_kind.append('%s %d/%d' % (kind, sum(1 for r in mine if r['passed']), len(mine)))
    if per_kind:
        out += textwrap.wrap('by kind (passed/checks): ' + ', '.join(per_kind), width,
                             subsequent_indent='  ')
    passed = sum(1 for r in rows if r['passed'])
    out.append('%d checks: %d passed, %d failed' % (len(rows), passed, len(rows) - passed))
    return '\n'.join(out)


def report_name(kinds=None, only=''):
    """The reports' file name without extension: 'verify' for a run of every kind, else
    'verify-' and the selection (the kinds joined by '+', 'only-' and a hash of the name
    pattern), so a selective run never overwrites the full report."""
    parts = []
    if kinds and set(kinds) != set(KINDS):
        parts.append('+'.join(k for k in KINDS if k in kinds) or 'none')
    if only:
        parts.append('only-' + hashlib.sha1(only.encode('utf-8')).hexdigest()[:8])
    return '-'.join(['verify'] + parts)


def report_paths(dest, lab='', kinds=None, only=''):
    """(JSON path, JUnit XML path) of a run's reports: dest/<lab>/<report_name>.json and .xml
    (no lab directory without a lab name), so two labs never overwrite each other's."""
    where = os.path.join(dest, lab) if lab else dest
    name = report_name(kinds, only)
    return os.path.join(where, name + '.json'), os.path.join(where, name + '.xml')


def junit(rows, suite='k8slab.podnet verify'):
    """The report as JUnit XML (one testcase per check, classname verify.<kind>), so CI
    systems list every path and probe."""
    failures = [r for r in rows if not r['passed']]
    root = ET.Element('testsuites', name=suite, tests=str(len(rows)),
                      failures=str(len(failures)))
    ts = ET.SubElement(root, 'testsuite', name=suite, tests=str(len(rows)),
                       failures=str(len(failures)), errors='0', skipped='0',
                       time='%.3f' % max([float(r.get('duration') or 0) for r in rows] or [0]))
    for r in rows:
        case = ET.SubElement(ts, 'testcase', classname='verify.%s' % r['kind'], name=r['name'],
                             time='%.3f' % float(r.get('duration') or 0))
        target = r['target'] if not r.get('address') or r['address'] == r['target'] \
            else '%s (%s)' % (r['target'], r['address'])
        text = 'source: %s\ntarget: %s\nexpected: %s\nobserved: %s\nattempts: %s' % (
            r['source'], target, r['expected'], r['observed'], r.get('attempts'))
        if not r['passed']:
            failure = ET.SubElement(case, 'failure', type=r['kind'],
                                    message=r.get('reason') or 'failed')
            failure.text = text
        else:
            ET.SubElement(case, 'system-out').text = text
    return ET.tostring(root, encoding='unicode')

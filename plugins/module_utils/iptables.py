# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""Owned iptables chains kept with one ``iptables-restore --noflush`` run.

Used by k8slab.podnet.kube_proxy (chains ``KUBE-*``) and k8slab.podnet.flannel_ipmasq
(``FLANNEL-*``). State is read with ``iptables-save`` and parsed rule by rule; a rule is kept
as the text after ``-A <chain> `` exactly as iptables-save prints it, so the desired rules are
written in that canonical form and comparing them with the saved ones is a string comparison.

A module owns, in each table it names:
- every user-defined chain whose name starts with its prefix (stale ones are flushed and
  deleted), and
- every rule of a built-in chain that jumps to an owned chain (the entry points, such as
  ``-A PREROUTING ... -j KUBE-SERVICES``); missing ones are inserted at the top of the
  built-in chain, as kube-proxy and flanneld prepend them, extra copies are deleted.
Everything else in every table is left alone. ``iptables-restore --noflush`` applies a table's
changes in one transaction: either all of them or, on any error, none.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import shlex

from ansible_collections.k8slab.podnet.plugins.module_utils import command
from ansible_collections.k8slab.podnet.plugins.module_utils.iproute import (
    netns_missing, netns_problem)
from ansible_collections.k8slab.podnet.plugins.module_utils.netns import NetnsError

BUILTIN = {
    'filter': ('INPUT', 'FORWARD', 'OUTPUT'),
    'nat': ('PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'),
    'mangle': ('PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'),
    'raw': ('PREROUTING', 'OUTPUT'),
}


class IptablesError(Exception):
    """A failure with a message ready for fail_json."""


def parse_save(text):
    """Parse ``iptables-save`` output.

    Returns ``{table: {'chains': [chain names in file order], 'rules': {chain: [spec, ...]}}}``
    where ``spec`` is the rule text after ``-A <chain> ``, in chain order.
    """
    tables = {}
    cur = None
    for line in text.splitlines():
        if not line or line.startswith('#'):
            continue
        if line.startswith('*'):
            cur = tables.setdefault(line[1:].strip(), {'chains': [], 'rules': {}})
        elif line.startswith(':') and cur is not None:
            name = line[1:].split()[0]
            cur['chains'].append(name)
            cur['rules'].setdefault(name, [])
        elif line.startswith('-A ') and cur is not None:
            chain, _sep, spec = line[3:].partition(' ')
            cur['rules'].setdefault(chain, []).append(spec)
        elif line == 'COMMIT':
            cur = None
    return tables


def target(spec):
    """The ``-j`` target of a rule spec, or None."""
    try:
        words = shlex.split(spec)
    except ValueError:
        return None
    for i, w in enumerate(words[:-1]):
        if w in ('-j', '--jump', '-g', '--goto'):
            return words[i + 1]
    return None


def owned_view(saved, table, prefix):
    """What the owner of ``prefix`` has in ``table`` of a parsed save.

    Returns ``{'chains': {chain: [spec]}, 'jumps': {builtin chain: [spec]}}``.
    """
    t = saved.get(table, {'chains': [], 'rules': {}})
    chains = dict((c, list(t['rules'].get(c, []))) for c in t['chains'] if c.startswith(prefix))
    jumps = {}
    for c in BUILTIN.get(table, ()):
        mine = [s for s in t['rules'].get(c, []) if (target(s) or '').startswith(prefix)]
        if mine:
            jumps[c] = mine
    return {'chains': chains, 'jumps': jumps}


def listing(view, table):
    """An owned view as iptables-save-like lines (chains sorted as iptables-save sorts them)."""
    lines = ['*' + table]
    for c in sorted(view['chains']):
        lines.append(':%s - [0:0]' % c)
    for c in BUILTIN.get(table, ()):
        lines += ['-A %s %s' % (c, s) for s in view['jumps'].get(c, [])]
    for c in sorted(view['chains']):
        lines += ['-A %s %s' % (c, s) for s in view['chains'][c]]
    return lines


def same(a, b):
    """Two owned views hold the same rules (an entry point's position does not matter)."""
    return a['chains'] == b['chains'] and all(
        sorted(a['jumps'].get(c, [])) == sorted(b['jumps'].get(c, []))
        for c in set(a['jumps']) | set(b['jumps']))


def restore_table(current, desired, table):
    """The ``iptables-restore --noflush`` lines that turn ``current`` into ``desired``
    (both owned views of ``table``), or [] when they are equal.

    Every desired chain is declared (which creates or flushes it) and refilled; stale chains
    are declared (flushed) then deleted after the entry points to them are gone.
    """
    if same(current, desired):
        return []
    lines = ['*' + table]
    stale = sorted(set(current['chains']) - set(desired['chains']))
    for c in sorted(desired['chains']) + stale:
        lines.append(':%s - [0:0]' % c)
    for c in BUILTIN.get(table, ()):
        have = list(current['jumps'].get(c, []))
        want = desired['jumps'].get(c, [])
        # Delete jumps that are not wanted, or wanted fewer times than they appear.
        for spec in list(have):
            if have.count(spec) > want.count(spec):
                have.remove(spec)
                lines.append('-D %s %s' % (c, spec))
    for c in sorted(desired['chains']):
        lines += ['-A %s %s' % (c, s) for s in desired['chains'][c]]
    for c in BUILTIN.get(table, ()):
        have = current['jumps'].get(c, [])
        missing = [s for s in desired['jumps'].get(c, []) if s not in have]
        for spec in reversed(missing):
            lines.append('-I %s 1 %s' % (c, spec))
    for c in stale:
        lines.append('-X %s' % c)
    lines.append('COMMIT')
    return lines


def _run(netns, argv, data=None):
    """command.run of argv inside the named network namespace netns (None: this one), entered
    without ``ip netns exec`` (and its /sys remount, which iptables does not need)."""
    try:
        return command.run(argv, data=data, netns=netns)
    except NetnsError as e:
        raise IptablesError(str(e))


def save(netns, tables):
    """Parsed ``iptables-save`` of the tables named (``{table: parse_save's entry}``; a table
    the namespace does not have yet is empty). One ``iptables-save`` for all of them: without
    ``-t`` it prints every table the namespace has. Raises IptablesError when it fails, or
    when one of the tables holds nft rules iptables cannot show (iptables-nft prints such a
    table as a comment only)."""
    rc, out, err = _run(netns, ['iptables-save'])
    if rc != 0:
        raise IptablesError('iptables-save failed (rc=%d): %s' % (rc, err.strip()))
    # A table that nft made with what iptables cannot show is printed as this comment alone:
    # read as empty, a restore would add to rules it cannot see. Refuse before any change.
    for table in re.findall(r"^# Table .(\w+)' is incompatible", out, re.M):
        if table in tables:
            raise IptablesError(
                'the %s table%s holds rules iptables cannot read (made with nft; iptables-save: '
                '"Table `%s\' is incompatible, use \'nft\' tool"): nothing was changed'
                % (table, ' of netns %s' % netns if netns else '', table))
    saved = parse_save(out)
    return dict((t, saved[t]) for t in tables if t in saved)


def restore(netns, lines):
    """Run one ``iptables-restore --noflush`` with ``lines``; raise IptablesError on failure
    (the kernel then has none of the changes)."""
    data = '\n'.join(lines) + '\n'
    rc, out, err = _run(netns, ['iptables-restore', '--noflush'], data=data)
    if rc != 0:
        raise IptablesError('iptables-restore --noflush failed (rc=%d): %s\ninput:\n%s'
                            % (rc, err.strip(), data))


def sync(module, netns, prefix, desired):
    """Make the tables' owned state equal ``desired`` (``{table: owned view}``).

    Returns ``(changed, before, after, restore_lines)`` where before/after are
    iptables-save-like listings (lists of lines) of the owned state; in check mode nothing is
    applied and ``after`` is the desired listing. After a real run ``after`` is read back from
    the kernel, and an IptablesError is raised if it differs from the desired state.
    """
    tables = sorted(desired)
    saved = save(netns, tables)
    current = dict((t, owned_view(saved, t, prefix)) for t in tables)
    lines = []
    for t in tables:
        lines += restore_table(current[t], desired[t], t)
    before = [x for t in tables for x in listing(current[t], t)]
    after = [x for t in tables for x in listing(desired[t], t)]
    if lines and not module.check_mode:
        restore(netns, lines)
        saved = save(netns, tables)
        got = dict((t, owned_view(saved, t, prefix)) for t in tables)
        for t in tables:
            if not same(got[t], desired[t]):
                raise IptablesError(
                    'after iptables-restore the %s table reads differently from what was '
                    'written (a rule not in iptables-save canonical form?):\nwanted:\n%s\ngot:\n%s'
                    % (t, '\n'.join(listing(desired[t], t)), '\n'.join(listing(got[t], t))))
        after = [x for t in tables for x in listing(got[t], t)]
    return bool(lines), before, after, lines


def sync_module(module, prefix, desired, **fields):
    """The end of an iptables module's run (kube_proxy, flannel_ipmasq): sync the ``prefix``
    chains to ``desired`` ({table: owned view}) in the namespace O(netns) and exit with
    changed, rules, restore, the diff of the owned rules, and ``fields``.

    O(netns) as the netns doc fragment words it: with O(state=absent) a namespace that is gone
    took its rules with it (unchanged, no rules); otherwise a missing namespace or a leftover
    /var/run/netns entry fails naming it, before anything is read."""
    netns = module.params['netns']
    missing = netns_missing([netns])
    if missing and module.params['state'] == 'absent':
        module.exit_json(changed=False, rules=[], restore=[], **fields)
    if missing:
        module.fail_json(msg=netns_problem(netns, missing[netns]))
    try:
        changed, before, after, lines = sync(module, netns, prefix, desired)
    except IptablesError as e:
        module.fail_json(msg=str(e))
    header = '%s* rules' % prefix
    module.exit_json(changed=changed, rules=after, restore=lines,
                     diff=dict(before='\n'.join(before) + '\n', after='\n'.join(after) + '\n',
                               before_header=header, after_header=header), **fields)

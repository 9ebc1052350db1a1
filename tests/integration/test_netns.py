"""k8slab.podnet.netns against real named namespaces (needs root)."""

import os

import pytest

from conftest import ipj, run_module, run_tasks, sh

M = 'k8slab.podnet.netns'


def call(args, check=False, diff=False):
    """The module's result for one call."""
    return run_module(M, args, check=check, diff=diff)[0]


def names_now():
    return set(n['name'] for n in ipj('netns list'))


def run_netns_entries():
    """The names in /run/netns (none when a lab's teardown elsewhere removed it)."""
    return os.listdir('/run/netns') if os.path.isdir('/run/netns') else []


@pytest.fixture
def ns(uid, netns_cleanup):
    """Three unique names, registered for cleanup; none exists yet."""
    names = ['ka%s%s' % (uid, s) for s in ('a', 'b', 'c')]
    netns_cleanup.extend(names)
    return names


def test_create_idempotent_absent(ns):
    a, b = ns[:2]
    res = call({'name': [a, b]})
    assert res['changed'] is True, res
    assert res['created'] == [a, b]
    assert res['commands'] == ['ip netns add %s' % a, 'ip netns add %s' % b]
    assert {a, b} <= names_now()
    # a real, usable namespace (not just a file under /run/netns)
    assert [l['ifname'] for l in ipj('-n %s link show' % a)] == ['lo']

    res = call({'names': [b, a]})
    assert res['changed'] is False and res['commands'] == [], res

    res = call({'name': [a, b], 'state': 'absent'})
    assert res['changed'] is True and res['removed'] == [a, b], res
    assert not {a, b} & names_now()
    res = call({'name': [a, b], 'state': 'absent'})
    assert res['changed'] is False, res


def test_check_mode_and_diff(ns):
    a, b = ns[:2]
    sh('ip netns add %s' % a)
    res = call({'name': [a, b]}, check=True, diff=True)
    assert res['changed'] is True, res
    assert res['commands'] == ['ip netns add %s' % b]
    assert res['diff'] == {'before': {a: 'present', b: 'absent'},
                           'after': {a: 'present', b: 'present'}}
    assert b not in names_now(), 'check mode created a namespace'

    # nothing to do: check mode must not report changed (community.general's module does)
    res = call({'name': [a]}, check=True)
    assert res['changed'] is False and res['commands'] == [], res

    res = call({'name': [a, b], 'state': 'absent'}, check=True, diff=True)
    assert res['changed'] is True and res['removed'] == [a], res
    assert res['diff']['after'] == {a: 'absent', b: 'absent'}
    assert a in names_now(), 'check mode deleted a namespace'


def test_exact_name_matching(ns, netns_cleanup):
    mario = ns[0]
    mario2 = mario + '2'
    netns_cleanup.append(mario2)
    sh('ip netns add %s' % mario2)
    res = call({'name': [mario]}, check=True)
    assert res['changed'] is True, 'prefix %s taken as present because %s exists' % (mario, mario2)
    res = call({'name': [mario]})
    assert res['created'] == [mario]
    res = call({'name': [mario], 'state': 'absent'})
    assert res['removed'] == [mario]
    assert mario2 in names_now() and mario not in names_now()
    # and the other way round: mario2 absent must not touch mario
    sh('ip netns add %s' % mario)
    res = call({'name': [mario + '22'], 'state': 'absent'})
    assert res['changed'] is False
    assert {mario, mario2} <= names_now()


BAD = ['ka/x', '..', 'ka..x', '.', 'ka x', '']


def test_bad_names_leave_nothing(ns, uid):
    good = ns[0]
    results = run_tasks(M, [{'name': [good, bad]} for bad in BAD])
    for bad, res in zip(BAD, results):
        assert res.get('failed') is True, res
        assert repr(bad) in res['msg'], res['msg']
        assert res['commands'] == []
    assert good not in names_now(), 'a valid name of a failed call was created'
    # nothing of this run under /run/netns (other runs may work in parallel: only our prefix)
    assert [n for n in run_netns_entries() if uid in n or n.startswith('ka.')] == []


# ---- issue 16: inputs and drift people hit in the field ------------------------------

def test_stale_entry_is_recreated_or_removed(uid, netns_cleanup):
    """A /run/netns entry with no namespace behind it (a runtime crashed, a mount was lost)
    is listed by `ip netns list` but unusable: present recreates it, absent removes it."""
    a = 'he%ss' % uid
    netns_cleanup.append(a)
    sh('mkdir -p /run/netns && touch /run/netns/%s' % a)
    assert a in names_now()
    res = call({'name': [a]}, check=True)
    assert res['changed'] is True and res['before'] == {a: 'stale'}, res
    res = call({'name': [a]})
    assert res['changed'] is True and res['created'] == [a], res
    assert res['commands'] == ['ip netns del %s' % a, 'ip netns add %s' % a]
    assert [l['ifname'] for l in ipj('-n %s link show' % a)] == ['lo']  # usable again
    assert call({'name': [a]})['changed'] is False
    sh('umount /run/netns/%s' % a)  # stale again: the file stays, the namespace is gone
    res = call({'name': [a], 'state': 'absent'})
    assert res['changed'] is True and res['removed'] == [a], res
    assert not os.path.lexists('/run/netns/%s' % a)
    assert call({'name': [a], 'state': 'absent'})['changed'] is False


@pytest.mark.parametrize('bad, word', [
    ('he-nl\n', "'he-nl\\n'"),              # a YAML `|` block: `$` matched before the newline
    (['he-list'], "name[0] must be a single value, not a list: ['he-list']"),
])
def test_bad_names_refused_creating_nothing(bad, word):
    def ours():  # others may add namespaces meanwhile
        return [n for n in run_netns_entries() if n.startswith('he-')]
    before = ours()
    res = call({'name': [bad]})
    assert res.get('failed') is True and word in res['msg'], res
    assert ours() == before

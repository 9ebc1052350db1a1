"""playbooks/examples/classic_exercise.yml end to end: build, ping, idempotence, teardown."""

from conftest import ipj, root_changes, run_playbook

PLAYBOOK = 'playbooks/examples/classic_exercise.yml'
SUFFIXES = ('client', 'server', 'client1', 'server1', 'switch')


def test_classic_exercise(uid, netns_cleanup, root_snapshot):
    prefix = 'ka%s' % uid
    names = ['%s-%s' % (prefix, s) for s in SUFFIXES]
    netns_cleanup.extend(names)
    root = root_snapshot()

    first = run_playbook(PLAYBOOK, extra_vars={'classic_prefix': prefix})
    assert first.rc == 0 and first.failed == 0, first
    assert first.changed == 4, first   # namespaces, pair, bridge, bridge ports
    pings = first.task('Ping across the pair and across the bridge')
    assert [r['rc'] for r in pings['results']] == [0] * 6, pings
    existing = set(n['name'] for n in ipj('netns list'))
    assert set(names) <= existing
    # the bridge is in its own namespace, with both ports
    ports = [l['ifname'] for l in ipj('-n %s link show master br0' % names[4])]
    assert sorted(ports) == ['client1-veth-br', 'server1-veth-br']

    second = run_playbook(PLAYBOOK, extra_vars={'classic_prefix': prefix})
    assert second.rc == 0 and second.changed == 0, second

    down = run_playbook(PLAYBOOK, extra_vars={'classic_prefix': prefix, 'classic_state': 'absent'})
    assert down.rc == 0 and down.changed == 1, down
    assert not set(names) & set(n['name'] for n in ipj('netns list'))
    assert root_changes(root, root_snapshot(), [uid, 'veth', 'br0', '10.0.0.', '172.30.']) == []

"""Every fault drill (drills/*.yml, docs/drills.md) on one live lab: inject the fault as
`k8slab drill` does, run the whole verification, and require that exactly the checks the
drill names fail; then heal (the drill's own playbooks - the layers it touched, quicker than
site.yml, which `k8slab heal` runs) and require those checks green again. The last test
verifies the whole lab after all the drills.

Drills that require Services skip while the lab has none (kube-proxy's chains absent).
"""

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile

import pytest

from conftest import ROOT, run_playbook, sh

sys.path.insert(0, os.path.join(ROOT, '.collections'))
from ansible_collections.k8slab.podnet.plugins.plugin_utils.k8slab_cli import drill  # noqa: E402
from ansible_collections.k8slab.podnet.plugins.plugin_utils.k8slab_cli.lab import Lab  # noqa: E402

INVENTORY = os.path.join(ROOT, 'inventories', 'netns')
PREFIX = os.environ.get('K8SLAB_TEST_PREFIX', 'kd')
DRILLS = drill.load()


@pytest.fixture(scope='module')
def lab():
    name = PREFIX + secrets.token_hex(3)
    reports = tempfile.mkdtemp(prefix='%s-drills-' % PREFIX)
    try:
        res = run_playbook('site.yml', inventory=INVENTORY, extra_vars={'lab_name': name},
                           env={'K8SLAB_REPORT_DIR': reports})
        assert res.rc == 0, res
        yield Lab(name)
    finally:
        run_playbook('playbooks/netns_lab_down.yml', inventory=INVENTORY,
                     extra_vars={'lab_name': name})
        shutil.rmtree(reports, ignore_errors=True)
        assert not [n for n in sh('ip netns list').split() if n.startswith(name + '-')]


def failed(rows):
    return sorted(r['name'] for r in rows if not r['passed'])


@pytest.mark.parametrize('d', DRILLS, ids=[d['name'] for d in DRILLS])
def test_drill_fails_exactly_its_checks_and_heals(lab, d):
    lacks = drill.missing(lab, d)
    if lacks:
        pytest.skip('needs %s' % ', '.join(lacks))
    drill.inject(lab, d)
    try:
        rows = drill.verify(lab.name, INVENTORY)
        want = drill.expected(d, [r['name'] for r in rows])
        assert want, 'drill %s expects no check of this lab to fail' % d['name']
        assert failed(rows) == sorted(want), [(r['name'], r['observed'])
                                              for r in rows if not r['passed']]
    finally:
        for playbook in d['heal']:
            res = run_playbook(playbook, inventory=INVENTORY, extra_vars={'lab_name': lab.name})
            assert res.rc == 0, res
    # The checks the fault broke pass again.
    rows = drill.verify(lab.name, INVENTORY, only='|'.join('(%s)' % p for p in d['expect_fail']))
    assert sorted(r['name'] for r in rows) == sorted(want)
    assert failed(rows) == []


def test_the_cli_lists_drills_and_explains_one_without_verifying(lab):
    k8slab = [os.path.join(ROOT, 'scripts', 'k8slab'), '--lab', lab.name]
    out = subprocess.run(k8slab + ['drill', 'list'], capture_output=True, text=True, check=True)
    assert [line.split()[0] for line in out.stdout.splitlines()] == [d['name'] for d in DRILLS]
    out = subprocess.run(k8slab + ['drill', 'ip-forward-off', '--no-verify'],
                         capture_output=True, text=True, check=False)
    try:
        assert out.returncode == 0, out.stderr
        # Pasteable: the redirection runs in the node, not on the reader's host.
        assert ("fault: k8slab exec node-1 -- sh -c 'echo 0 > /proc/sys/net/ipv4/ip_forward'"
                in out.stdout)
        # the finding commands ran on the live lab and show the fault
        assert '$ k8slab exec node-1 -- sysctl net.ipv4.ip_forward\nnet.ipv4.ip_forward = 0' \
            in out.stdout
    finally:
        res = run_playbook('playbooks/cluster.yml', inventory=INVENTORY,
                           extra_vars={'lab_name': lab.name})
        assert res.rc == 0, res
    assert json.loads(sh('ip netns exec %s cat /proc/sys/net/ipv4/ip_forward'
                         % lab.netns('node-1'))) == 1


def test_the_lab_is_green_after_every_drill(lab):
    rows = drill.verify(lab.name, INVENTORY)
    assert len(rows) > 60 and failed(rows) == []

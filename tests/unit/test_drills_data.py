"""The fault drills are data (drills/*.yml, docs/drills.md): every file loads, names only
nodes and pods of the reference lab, and its expectations select checks of the reference
lab's verification (or of Services, for drills that require them). No root needed."""

import os
import re
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, '.collections'))

from ansible_collections.k8slab.podnet.plugins.plugin_utils.k8slab_cli import drill  # noqa: E402

with open(os.path.join(ROOT, 'inventories', 'netns', 'group_vars', 'all', 'lab.yml')) as f:
    LAB = yaml.safe_load(f)
PODS = dict((p['name'], p['node']) for p in LAB['lab_pods'])
DRILLS = drill.load()
REQUIRED = {'hostgw-route-deleted', 'nat-address-gateway', 'pod-veth-down', 'hairpin-off',
            'bridge-port-moved', 'eth1-mtu-mismatch', 'masquerade-missing', 'ip-forward-off'}


def test_the_issue_s_drills_are_all_there():
    assert REQUIRED <= set(d['name'] for d in DRILLS)
    assert [d['name'] for d in DRILLS if d['requires']] == [
        'hairpin-off', 'kube-mark-masq-missing', 'masquerade-missing']


@pytest.mark.parametrize('d', DRILLS, ids=[d['name'] for d in DRILLS])
def test_a_drill_names_the_reference_lab(d):
    for step in d['fault'] + d['find']:
        node, dummy, pod = step['node'].partition('/')
        assert node in LAB['lab_nodes'], step
        assert not pod or PODS[pod] == node, step
        for kind, arg in drill.PLACEHOLDER.findall(step['run'] + step.get('look', '')):
            if kind == 'veth':
                assert PODS[arg] == node, step
            else:
                assert PODS[arg.split('/')[1]] == arg.split('/')[0], step
    assert d['expect_fail'] and d['explain'].strip() and d['find']
    for playbook in d['heal']:
        assert os.path.isfile(os.path.join(ROOT, playbook)), playbook


def test_expectations_select_checks_by_name():
    d = drill.load('hostgw-route-deleted')
    names = ['route node-2 -> node-1/httpd', 'route node-1 -> node-2/client-2',
             'path node-2/client-2 -> node-1/httpd', 'path node-2 -> node-1 eth1',
             'reach node-1/client-1 -> node-2/client-2']
    assert drill.expected(d, names) == [names[0], names[2], names[4]]
    rows = [dict(name=n, passed=n not in (names[0], names[1])) for n in names]
    # names[1] failed unexpectedly; names[2] and names[4] should have failed and did not
    assert drill.compare(d, rows) == ([names[1]], [names[2], names[4]])


def test_a_bad_drill_file_is_refused_naming_file_and_field(tmp_path):
    (tmp_path / 'x.yml').write_text('title: t\nsummary: s\nfault: []\nexplain: e\n')
    with pytest.raises(drill.DrillError, match=r'x\.yml: no expect_fail'):
        drill.load(directory=str(tmp_path))
    (tmp_path / 'x.yml').write_text('title: t\nsummary: s\nfault: []\nexplain: e\n'
                                    'expect_fail: ["("]\n')
    with pytest.raises(drill.DrillError, match=re.escape("expect_fail '('")):
        drill.load(directory=str(tmp_path))
    (tmp_path / 'x.yml').write_text('title: t\nsummary: s\nfault: []\nexplain: e\n'
                                    'expect_fail: [a]\nrequires: [gpu]\n')
    with pytest.raises(drill.DrillError, match='unknown gpu'):
        drill.load(directory=str(tmp_path))
    with pytest.raises(drill.DrillError, match='no drill'):
        drill.load('nope')


def test_where_names_the_hop():
    row = dict(reason='hop 2: expected 192.168.56.11, observed 10.0.2.2', expected='', observed='')
    assert drill.where(row) == 'hop 2: expected 192.168.56.11, got 10.0.2.2'


def test_printed_commands_paste_into_a_shell_as_the_drill_ran_them():
    import shlex
    line = 'for i in 1 2; do curl -s http://10.109.117.159/hello || echo "(no answer)"; done'
    shown = drill.exec_line('node-1/app-3', line)
    assert shown.startswith('k8slab exec node-1/app-3 -- sh -c ')
    assert shlex.split(shown)[-3:] == ['sh', '-c', line]  # one word, the loop intact
    assert drill.exec_line('node-1', 'echo 0 > /proc/sys/net/ipv4/ip_forward') == \
        "k8slab exec node-1 -- sh -c 'echo 0 > /proc/sys/net/ipv4/ip_forward'"
    assert drill.exec_line('node-2', 'ip route show root 10.244.0.0/16') == \
        'k8slab exec node-2 -- ip route show root 10.244.0.0/16'

"""Negative drills: break a throwaway single-host lab the way real labs break and prove that the
verification catches it, at the right check and the right hop.

One lab (lab_name kg<hex>) is built with site.yml - whose verify play must pass - and torn
down after the module, passed or failed. Each drill breaks one thing with plain ip commands,
runs playbooks/verify.yml (only the checks that matter, to stay fast), reads the JSON report
and repairs what it broke.
"""

import json
import os
import secrets
import shutil
import tempfile

import pytest

from conftest import run_playbook, sh

INVENTORY = 'inventories/netns'
# Names start with this (K8SLAB_TEST_PREFIX lets parallel sessions tell theirs apart).
PREFIX = os.environ.get('K8SLAB_TEST_PREFIX', 'kg')


class Lab(object):
    def __init__(self, name, reports):
        self.name = name
        self.reports = reports

    def netns(self, node):
        return '%s-%s' % (self.name, node)

    def in_node(self, node, cmd):
        """Run a command inside a node (its network and mount namespaces, so the pods'
        namespaces are visible as on a VM)."""
        return sh('nsenter --mount=/run/k8slab/%s/mnt/%s --net=/run/netns/%s %s'
                  % (self.name, node, self.netns(node), cmd))

    def verify(self, only='', **extra):
        """playbooks/verify.yml against this lab; returns (playbook result, report rows by
        check name)."""
        # Reports go to <dir>/<lab>/, named by the selection (verify-<kinds>-only-<hash>.json).
        where = os.path.join(self.reports, self.name)
        for old in os.listdir(where):
            os.unlink(os.path.join(where, old))
        extra_vars = dict(lab_name=self.name, verify_only=only, verify_retries=1)
        extra_vars.update(extra)
        res = run_playbook('playbooks/verify.yml', inventory=INVENTORY, extra_vars=extra_vars,
                           env={'K8SLAB_REPORT_DIR': self.reports})
        report, = [os.path.join(where, f) for f in os.listdir(where) if f.endswith('.json')]
        with open(report) as f:
            data = json.load(f)
        return res, dict((r['name'], r) for r in data['results'])


@pytest.fixture(scope='module')
def lab():
    name = PREFIX + secrets.token_hex(3)
    reports = tempfile.mkdtemp(prefix='kg-verify-')
    try:
        res = run_playbook('site.yml', inventory=INVENTORY, extra_vars={'lab_name': name},
                           env={'K8SLAB_REPORT_DIR': reports})
        assert res.rc == 0, res
        with open(os.path.join(reports, name, 'verify.json')) as f:
            report = json.load(f)
        assert report['failed'] == 0 and report['checks'] > 40, report
        with open(os.path.join(reports, name, 'verify.xml')) as f:
            xml = f.read()
        assert '<testsuites name="k8slab.podnet verify" tests="%d" failures="0"' \
            % report['checks'] in xml
        yield Lab(name, reports)
    finally:
        run_playbook('playbooks/netns_lab_down.yml', inventory=INVENTORY,
                     extra_vars={'lab_name': name})
        shutil.rmtree(reports, ignore_errors=True)
        assert not [n for n in sh('ip netns list').split() if n.startswith(name + '-')]


def failure_message(res):
    """The message of the failed verify_report task."""
    report = [t for t in res.tasks('controlplane') if 'failed_checks' in t]
    assert report and report[0].get('failed'), res
    return report[0]['msg']


def test_missing_hostgw_route_fails_the_cross_node_path_at_hop_two(lab):
    node2 = lab.netns('node-2')
    before = json.loads(sh('ip -n %s -j route show 10.244.1.0/24' % node2))
    assert before and before[0]['gateway'] == '192.168.56.11'
    sh('ip -n %s route del 10.244.1.0/24' % node2)
    try:
        res, rows = lab.verify(only='node-2.* -> node-1/httpd')
    finally:
        sh('ip -n %s route add 10.244.1.0/24 via 192.168.56.11 dev eth1' % node2)
    assert res.rc != 0
    path = rows['path node-2/client-2 -> node-1/httpd']
    assert not path['passed']
    # Hop 1 is still node-2's cni0; then the packet takes node-2's default route into the NAT
    # network instead of node-1's eth1, and nothing answers as 192.168.56.11.
    assert path['hops'][0] == '10.244.2.1'
    assert path['reason'].startswith('hop 2: expected 192.168.56.11, observed '), path
    route = rows['route node-2 -> node-1/httpd']
    assert not route['passed'] and route['observed'].startswith('dev eth0'), route
    assert 'path node-2/client-2 -> node-1/httpd: expected 10.244.2.1 192.168.56.11 ' \
        in failure_message(res)
    # Only the broken direction fails.
    assert rows['reach node-2/client-2 -> node-1/httpd']['passed'] is False
    assert all(r['passed'] for n, r in rows.items() if not n.startswith(('path node-2/',
               'route node-2 ', 'reach node-2/', 'http node-2/')))


def test_pod_veth_down_fails_its_reach_checks(lab):
    # The node end of client-1's veth: the link whose ifindex the pod's eth0 points at.
    pod_eth0 = json.loads(lab.in_node('node-1', 'ip -n client-1 -j link show dev eth0'))[0]
    links = json.loads(sh('ip -n %s -j link show' % lab.netns('node-1')))
    veth = next(l['ifname'] for l in links if l['ifindex'] == pod_eth0['link_index'])
    assert next(l for l in links if l['ifname'] == veth).get('master') == 'cni0'
    sh('ip -n %s link set dev %s down' % (lab.netns('node-1'), veth))
    try:
        res, rows = lab.verify(only='^reach ', verify_kinds=['reach'])
    finally:
        sh('ip -n %s link set dev %s up' % (lab.netns('node-1'), veth))
    assert res.rc != 0
    failed = sorted(n for n, r in rows.items() if not r['passed'])
    # Every reach check from client-1 fails, and every one towards it; nothing else.
    assert failed and all('client-1' in n for n in failed), failed
    assert 'reach node-1/client-1 -> node-2/client-2' in failed
    assert 'reach node-1/httpd -> node-1/client-1' in failed
    assert rows['reach node-1/client-1 -> node-2/client-2']['observed'] != 'reply from 10.244.2.2'
    assert all(r['passed'] for n, r in rows.items() if 'client-1' not in n)


def test_route_pointed_at_10_0_2_15_fails_the_path_check(lab):
    # The VirtualBox pitfall: flannel picks eth0, whose address is 10.0.2.15 on every node,
    # as the peer's address - node-2's route to node-1's pods goes to 10.0.2.15 over eth0.
    node2 = lab.netns('node-2')
    sh('ip -n %s route replace 10.244.1.0/24 via 10.0.2.15 dev eth0' % node2)
    try:
        res, rows = lab.verify(only='(path|route) node-2.* -> node-1/httpd')
    finally:
        sh('ip -n %s route replace 10.244.1.0/24 via 192.168.56.11 dev eth1' % node2)
    assert res.rc != 0
    path = rows['path node-2/client-2 -> node-1/httpd']
    assert not path['passed'] and path['hops'][0] == '10.244.2.1'
    assert path['reason'].startswith('hop 2: expected 192.168.56.11, observed '), path
    route = rows['route node-2 -> node-1/httpd']
    assert 'leaves via eth0, not eth1' in route['reason'], route
    assert 'forbidden dev eth0' in route['reason'], route


def test_mtu_changed_on_one_pod_or_one_eth1_fails_exactly_its_mtu_check(lab):
    # The mtu kind (added through the check-kind registry alone): one pod's eth0 changed
    # without its veth end, and node-2's eth1 out of step with the other nodes.
    lab.in_node('node-1', 'ip -n client-1 link set dev eth0 mtu 1400')
    sh('ip -n %s link set dev eth1 mtu 1400' % lab.netns('node-2'))
    try:
        res, rows = lab.verify(verify_kinds=['mtu'])
    finally:
        lab.in_node('node-1', 'ip -n client-1 link set dev eth0 mtu 1500')
        sh('ip -n %s link set dev eth1 mtu 1500' % lab.netns('node-2'))
    assert res.rc != 0
    assert set(r['kind'] for r in rows.values()) == {'mtu'}
    failed = sorted(n for n, r in rows.items() if not r['passed'])
    assert failed == ['mtu node-1/client-1 eth0 1500', 'mtu node-2 eth1 1500'], failed
    pod = rows['mtu node-1/client-1 eth0 1500']
    assert pod['observed'].startswith('eth0 1400, veth') and pod['reason'] == 'eth0 has mtu 1400'
    assert 'mtu node-2 eth1 1500: expected mtu 1500; observed eth1 1400' in failure_message(res)


def test_repaired_lab_verifies_again(lab):
    # After the drills the repaired lab passes again: the failures above were the drills'.
    res, rows = lab.verify(only='node-2|client-1')
    assert 'mtu node-1/client-1 eth0 1500' in rows
    assert res.rc == 0, [r for r in rows.values() if not r['passed']]
    assert rows and all(r['passed'] for r in rows.values())

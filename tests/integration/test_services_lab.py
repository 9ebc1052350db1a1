"""Services, cluster DNS and the way out, wired into the single-host lab (issue 13), end to end.

One lab (lab_name hk<hex>) is built with site.yml, whose verification (service, nodeport,
dns, outside among the rest) must pass, and torn down after the module. The root namespace's
iptables-save and the host's /etc/resolv.conf must be the same before and after. Drills break
kube-proxy's masquerade and show that exactly the checks that need it fail; others change the
inventory (an endpoint pod removed, a service whose selector matches nothing) and show the
next run's rules and checks follow.
"""

import glob
import json
import os
import re
import secrets
import shutil
import tempfile

import pytest
import yaml

from conftest import ROOT, run_playbook, sh

INVENTORY = 'inventories/netns'
PREFIX = os.environ.get('K8SLAB_TEST_PREFIX', 'hk')
NODES = ('controlplane', 'node-1', 'node-2')
SERVICE_KINDS = ['service', 'nodeport', 'dns', 'outside']
HAIRPIN = {'service node-1/app-3 -> test001/app-svc-clusterip:80 (hairpin)',
           'service node-1/app-3 -> test001/app-svc-nodeport:80 (hairpin)'}
NODEPORT = {'nodeport host -> %s:30080 (test001/app-svc-nodeport:80)' % n for n in NODES}


def topology():
    with open(os.path.join(ROOT, 'inventories', 'topology.yml')) as f:
        return yaml.safe_load(f)


def root_iptables():
    """The root namespace's rules, without the comment lines (they carry a timestamp) and the
    chains' packet counters (the host's own traffic moves them)."""
    return [re.sub(r'\[\d+:\d+\]', '', line) for line in sh('iptables-save').splitlines()
            if not line.startswith('#')]


class Lab(object):
    def __init__(self, name, reports):
        self.name = name
        self.reports = reports

    def in_node(self, node, cmd, check=True):
        return sh('nsenter --mount=/run/k8slab/%s/mnt/%s --net=/run/netns/%s-%s %s'
                  % (self.name, node, self.name, node, cmd), check=check)

    def in_pod(self, node, pod, cmd):
        """Inside a container of the pod: its network and its own mount namespace."""
        rec = json.loads(self.in_node(node, 'cat /run/podnet/pods/%s/pod.json' % pod))
        pid = rec['containers'][0]['pid']
        return sh('nsenter -t %d -n -m %s' % (pid, cmd))

    def nat(self, node):
        return self.in_node(node, 'iptables-save -t nat')

    def cluster(self, **extra):
        extra_vars = dict(lab_name=self.name)
        extra_vars.update(extra)
        res = run_playbook('playbooks/cluster.yml', inventory=INVENTORY, extra_vars=extra_vars)
        assert res.rc == 0, res
        return res

    def verify(self, kinds=None, **extra):
        """playbooks/verify.yml against this lab: report rows by check name."""
        # Reports go to <dir>/<lab>/, named by the kinds a run selects (verify-<kinds>.json).
        where = os.path.join(self.reports, self.name)
        for old in glob.glob(os.path.join(where, '*.json')):
            os.unlink(old)
        extra_vars = dict(lab_name=self.name, verify_retries=1, verify_fail=False,
                          verify_kinds=kinds or SERVICE_KINDS)
        extra_vars.update(extra)
        res = run_playbook('playbooks/verify.yml', inventory=INVENTORY, extra_vars=extra_vars,
                           env={'K8SLAB_REPORT_DIR': self.reports})
        assert res.rc == 0, res
        (report,) = glob.glob(os.path.join(where, '*.json'))
        with open(report) as f:
            return dict((r['name'], r) for r in json.load(f)['results'])


def failed(rows):
    return set(name for name, r in rows.items() if not r['passed'])


@pytest.fixture(scope='module')
def lab():
    name = PREFIX + secrets.token_hex(3)
    reports = tempfile.mkdtemp(prefix='hk-verify-')
    before = root_iptables()
    with open('/etc/resolv.conf') as f:
        resolv = f.read()
    try:
        res = run_playbook('site.yml', inventory=INVENTORY, extra_vars={'lab_name': name},
                           env={'K8SLAB_REPORT_DIR': reports})
        assert res.rc == 0, res
        with open(os.path.join(reports, name, 'verify.json')) as f:
            report = json.load(f)
        assert report['failed'] == 0, report
        kinds = set(r['kind'] for r in report['results'])
        assert set(SERVICE_KINDS) <= kinds, kinds
        yield Lab(name, reports)
    finally:
        run_playbook('playbooks/netns_lab_down.yml', inventory=INVENTORY,
                     extra_vars={'lab_name': name})
        shutil.rmtree(reports, ignore_errors=True)
        assert not [n for n in sh('ip netns list').split() if n.startswith(name + '-')]
        # The root namespace is never touched.
        assert root_iptables() == before
        with open('/etc/resolv.conf') as f:
            assert f.read() == resolv


def test_iptables_save_on_a_node_reads_like_seed_002(lab):
    nat = lab.nat('node-1')
    for chain in ('KUBE-SVC-F657HDVWWTO5ELQA', 'KUBE-SVC-CFVXM4HF2HSCB2P5'):
        rules = [l for l in nat.splitlines() if l.startswith('-A %s ' % chain)]
        assert len(rules) == 3, rules
        assert '--probability 0.33332999982' in rules[0]
        assert '--probability 0.50000000000' in rules[1]
        assert 'statistic' not in rules[2]
    assert ('-A KUBE-NODEPORTS -p tcp -m comment --comment "test001/app-svc-nodeport:" '
            '-m tcp --dport 30080 -j KUBE-SVC-CFVXM4HF2HSCB2P5') in nat
    assert '-d 10.96.0.10/32 -p udp -m comment --comment "kube-system/kube-dns:dns cluster IP"' \
        in nat
    # flannel's ip-masq (FLANNEL_IPMASQ=true is now true), this node's subnet in it.
    assert '-A FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d 10.244.1.0/24' in nat


def test_resolv_conf_private_to_pod_and_node(lab):
    assert lab.in_pod('node-2', 'app-1', 'cat /etc/resolv.conf') == (
        'search test001.svc.cluster.local svc.cluster.local cluster.local\n'
        'nameserver 10.96.0.10\noptions ndots:5\n')
    assert 'search default.svc' in lab.in_pod('node-1', 'client-1', 'cat /etc/resolv.conf')
    assert lab.in_node('node-1', 'cat /etc/resolv.conf') == 'nameserver 10.0.2.3\n'
    # By name, through the search path and the kube-dns ClusterIP, to the service.
    assert lab.in_pod('node-1', 'client-1',
                      'curl -s -m 5 http://app-svc-clusterip.test001/hello').startswith('HELLO app-')


def test_drill_mark_masq_only_hairpin_needs_it(lab):
    # Without the mark nothing is masqueraded by kube-proxy: a pod reaching itself through its
    # service gets its own reply from the wrong address. A NodePort from 192.168.56.1 still
    # works: flannel's ip-masq masquerades traffic from outside the pod network to pods.
    for node in NODES:
        lab.in_node(node, 'iptables -t nat -F KUBE-MARK-MASQ')
    try:
        assert failed(lab.verify()) == HAIRPIN
    finally:
        for node in NODES:
            lab.in_node(node, 'iptables -t nat -A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000')


def test_drill_postrouting_masquerade(lab):
    rule = ('KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" '
            '-j MASQUERADE --random-fully')
    for node in NODES:
        lab.in_node(node, 'iptables -t nat -D %s' % rule)
    assert failed(lab.verify()) == HAIRPIN
    # Without flannel's ip-masq too, the NodePort (endpoints on other nodes) and the way out
    # fail as well; the DNS and pod -> service checks still pass (pod sources need no NAT).
    for node in NODES:
        lab.in_node(node, 'iptables -t nat -F FLANNEL-POSTRTG')
    rows = lab.verify()
    outside = set(n for n in rows if n.startswith('outside '))
    assert len(outside) == 3
    assert failed(rows) == HAIRPIN | NODEPORT | outside, failed(rows)
    lab.cluster()  # the next run puts both back
    assert failed(lab.verify()) == set()


def test_endpoint_pod_removed_then_back(lab):
    pods = [p for p in topology()['lab_pods'] if p['name'] != 'app-2']
    lab.cluster(lab_pods=pods)
    svc = [l for l in lab.nat('node-1').splitlines()
           if l.startswith('-A KUBE-SVC-F657HDVWWTO5ELQA ')]
    assert len(svc) == 2 and '--probability 0.50000000000' in svc[0], svc
    rows = lab.verify(kinds=['service'], lab_pods=pods)
    assert not failed(rows)
    spread = rows['service node-2/client-2 -> test001/app-svc-clusterip:80']['observed']
    assert 'app-2' not in spread and 'app-1' in spread and 'app-3' in spread
    lab.cluster()
    svc = [l for l in lab.nat('node-1').splitlines()
           if l.startswith('-A KUBE-SVC-F657HDVWWTO5ELQA ')]
    assert len(svc) == 3


def test_selector_matching_nothing_is_rejected_and_reported(lab):
    services = topology()['lab_services'] + [dict(
        namespace='test001', name='nobody', clusterIP='10.96.100.100', selector={'app': 'none'},
        ports=[dict(port=80, targetPort=8080)])]
    res = lab.cluster(lab_services=services)
    # kube_proxy reports it, and the play says so.
    proxy = res.task('k8slab.podnet.services : Keep kube-proxy\'s rules for every Service '
                     '(one iptables-restore)',
                     'node-1')
    assert proxy['no_endpoints'] == ['test001/nobody:'], proxy['no_endpoints']
    assert 'no endpoints: test001/nobody:' in res.stdout
    filt = lab.in_node('node-1', 'iptables-save -t filter')
    assert re.search(r'-A KUBE-SERVICES -d 10\.96\.100\.100/32 .*-j REJECT', filt), filt
    rows = lab.verify(kinds=['service'], lab_services=services)
    row = rows['service node-1/httpd -> test001/nobody:80']
    assert row['passed'] and 'no endpoints' in row['observed'], row
    lab.cluster()  # the stale service goes
    assert '10.96.100.100' not in lab.in_node('node-1', 'iptables-save')


def test_bad_services_fail_validation_before_anything_is_built():
    services = [dict(namespace='test001', name='Bad_Name', clusterIP='10.0.0.1',
                     selector={'app': 'lab-web'}, ports=[dict(port=80, targetPort=9999)])]
    res = run_playbook('playbooks/validate.yml', inventory=INVENTORY,
                       extra_vars={'lab_services': services})
    assert res.rc != 0
    msg = res.task("k8slab.podnet.topology : Check the lab's Services before anything is "
                   'built')['msg']
    for value in ('Bad_Name', '10.0.0.1', '9999'):
        assert value in msg, msg

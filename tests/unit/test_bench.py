"""The benchmark's pure parts (bench/memory.py, bench/curve.py, scripts/bench.py's tables):
memory read from this process's real /proc, a lab's processes found from pod records and
pidfiles laid out as a lab lays them out, and the verification-time curve."""

import importlib.util
import json
import os
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, 'bench'))

import curve  # noqa: E402
import memory  # noqa: E402
import topology  # noqa: E402

SPEC = importlib.util.spec_from_file_location('bench_script',
                                              os.path.join(REPO, 'scripts', 'bench.py'))
bench = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bench)

STATUS = 'Name:\tsleep\nVmPeak:\t    3776 kB\nVmRSS:\t    2008 kB\nRssAnon:\t     140 kB\n'
ROLLUP = ('5559c8c74000-7fff211c8000 ---p 00000000 00:00 0   [rollup]\n'
          'Rss:                1692 kB\nPss:                 198 kB\nPss_Anon:   112 kB\n')


def test_kib_field():
    assert memory.kib_field(STATUS, 'VmRSS') == 2008
    assert memory.kib_field(ROLLUP, 'Pss') == 198   # not Pss_Anon
    assert memory.kib_field(ROLLUP, 'Rss') == 1692
    assert memory.kib_field(STATUS, 'VmSwap') is None
    assert memory.kib_field('VmRSS:\n', 'VmRSS') is None


def test_memory_of_this_process():
    mem = memory.memory(os.getpid())
    with open('/proc/self/status') as f:
        assert 'VmRSS' in f.read()
    # A Python with pytest loaded: some MiB resident, PSS at most RSS.
    assert 1024 < mem['rss'] < 4 * 1024 * 1024
    if os.path.exists('/proc/self/smaps_rollup'):
        assert 0 < mem['pss'] <= mem['rss']


def test_memory_of_no_process():
    proc = subprocess.Popen(['true'])
    proc.wait()
    assert memory.memory(proc.pid) is None
    assert memory.memory(2 ** 22 + 7) is None   # above any pid_max


def test_processes_sees_this_one():
    table = memory.processes()
    me = table[os.getpid()]
    assert me['ppid'] == os.getppid()
    assert me['net'] is not None
    assert me['net'] == memory.ns_id('/proc/self/ns/net')
    assert me['mnt'] == memory.ns_id('/proc/self/ns/mnt')


def test_workload_name():
    assert memory.workload_name({'workload': 'http'}) == 'http'
    assert memory.workload_name({'workload': 'command', 'argv': ['/usr/sbin/dnsmasq', '-k']}) \
        == 'command:dnsmasq'
    assert memory.workload_name({'workload': 'command'}) == 'command'


@pytest.fixture
def fake_lab(tmp_path, monkeypatch):
    """A lab tree under tmp_path as /run/k8slab/<lab> has it, whose pod runs real processes:
    a pause (sleep), a container (sleep) under its shim (sh), a node resolver pidfile, an
    outside HTTP pidfile pointing at a process that has ended."""
    monkeypatch.setattr(memory.netns_lab, 'STATE_DIR', str(tmp_path))
    monkeypatch.setattr(memory.netns_warm, 'STATE_DIR', str(tmp_path))
    pause = subprocess.Popen(['sleep', '60'])
    shim = subprocess.Popen(['sh', '-c', 'sleep 60 & echo $! > "$0"; wait', str(tmp_path / 'c')])
    gone = subprocess.Popen(['true'])
    gone.wait()
    for _attempt in range(100):
        if (tmp_path / 'c').exists() and (tmp_path / 'c').read_text().strip():
            break
        time.sleep(0.05)
    container = int((tmp_path / 'c').read_text())
    pods = tmp_path / 'lab1' / 'nodes' / 'node-1' / 'run' / 'podnet' / 'pods' / 'web'
    pods.mkdir(parents=True)
    (pods / 'pod.json').write_text(json.dumps({
        'name': 'web', 'sandbox': {'pid': pause.pid},
        'containers': [{'name': 'c1', 'workload': 'http', 'pid': container},
                       {'name': 'c2', 'workload': 'sleep', 'pid': None}]}))
    (pods.parent / 'broken').mkdir()
    (pods.parent / 'broken' / 'pod.json').write_text('{not json')
    dns = tmp_path / 'lab1' / 'dns' / 'node-1'
    dns.mkdir(parents=True)
    (dns / 'dnsmasq.pid').write_text('%d\n' % shim.pid)   # claimed first as the shim
    (tmp_path / 'lab1' / 'outside').mkdir()
    (tmp_path / 'lab1' / 'outside' / 'http.pid').write_text('%d\n' % gone.pid)
    yield dict(pause=pause.pid, shim=shim.pid, container=container)
    for proc in (pause, shim):
        proc.kill()
        proc.wait()
    os.kill(container, 9)


def test_lab_processes(fake_lab):
    rows = memory.lab_processes('lab1')
    by_pid = dict((r['pid'], r) for r in rows)
    assert set(by_pid) == {fake_lab['pause'], fake_lab['shim'], fake_lab['container']}
    assert by_pid[fake_lab['pause']]['role'] == 'sandbox'
    assert by_pid[fake_lab['pause']]['comm'] == 'sleep'
    assert by_pid[fake_lab['container']]['role'] == 'container'
    assert by_pid[fake_lab['container']]['workload'] == 'http'
    assert by_pid[fake_lab['shim']]['role'] == 'shim'
    assert by_pid[fake_lab['shim']]['container'] == 'c1'
    assert all(r['node'] == 'node-1' and r['pod'] == 'web' and r['rss'] > 0 for r in rows)
    assert memory.lab_processes('no-such-lab') == []


def row(role, rss, pss, pod=None, workload=None):
    return dict(pid=0, role=role, rss=rss, pss=pss, node='n' if pod else None, pod=pod,
                workload=workload, container=None, comm='x')


ROWS = [row('sandbox', 1000, 100, 'a'), row('sandbox', 1200, 120, 'b'),
        row('shim', 1500, 150, 'a'), row('container', 18000, 10000, 'a', 'http'),
        row('container', 1700, 160, 'b', 'sleep'), row('container', 1900, 170, 'b', 'sleep'),
        row('warm-server', 25000, 16000)]


def test_summarize():
    mem = memory.summarize(ROWS)
    assert mem['processes'] == 7 and mem['pods'] == 2
    assert mem['rss_total'] == 50300 and mem['pss_total'] == 26700
    assert mem['sandbox'] == dict(n=2, median=1100, max=1200, min=1000)
    assert mem['sandbox_pss']['median'] == 110
    assert mem['shim']['median'] == 1500
    assert mem['per_pod'] == dict(n=2, median=(20500 + 4800) / 2, max=20500, min=4800)
    assert mem['containers']['sleep'] == dict(n=2, median=1800, max=1900, min=1700)
    assert mem['containers']['http']['max'] == 18000
    assert mem['roles']['warm-server'] == dict(n=1, rss=25000, pss=16000)
    # One process without PSS (no smaps_rollup): no PSS total rather than a short one.
    assert memory.summarize(ROWS + [row('other', 10, None)])['pss_total'] is None


def test_pooled():
    assert memory.pooled([]) is None
    mem = memory.pooled([ROWS, ROWS[:2], ROWS])
    assert mem['samples'] == 3
    assert mem['rss_total'] == 50300          # the median of 50300, 2200, 50300
    assert mem['sandbox']['n'] == 6
    # A pod's RSS is one measurement's (not its processes of every measurement summed).
    assert mem['per_pod'] == dict(n=6, median=4800, max=20500, min=1000)
    assert mem['roles']['sandbox']['n'] == 2  # per measurement
    assert mem['roles']['warm-server']['rss'] == pytest.approx(25000 * 2 / 3)


def test_mib():
    assert memory.mib(1536) == '1.5 MiB'
    assert memory.mib(None) == '-'


def test_linear_fit():
    intercept, slope, r2 = curve.linear_fit([(10, 2.5), (20, 3.0), (40, 4.0)])
    assert intercept == pytest.approx(2.0) and slope == pytest.approx(0.05)
    assert r2 == pytest.approx(1.0)
    _i, _s, r2 = curve.linear_fit([(1, 1.0), (2, 3.0), (3, 2.0)])
    assert 0 < r2 < 1
    assert curve.linear_fit([(1, 1.0)]) is None
    assert curve.linear_fit([(5, 1.0), (5, 2.0)]) is None


def summary_row(size, what, wall, cpu, **extra):
    return dict(dict(size=size, what=what, wall_median=wall, cpu_median=cpu), **extra)


def test_verify_curve_and_tables():
    rows = [summary_row('3x2', 'verify', 4.0, 5.0, checks=100),
            summary_row('ref', 'verify', 3.0, 4.0, checks=50),
            summary_row('ref', 'build', 9.0, 8.0, memory=memory.summarize(ROWS)),
            summary_row('5x10', 'verify', 9.0, 9.0)]          # no report: not a point
    result = bench.verify_curve(rows)
    assert [p['size'] for p in result['points']] == ['ref', '3x2']
    assert result['points'][0]['checks_per_s'] == pytest.approx(16.7)
    assert result['fit'] == dict(intercept_s=2.0, s_per_check=0.02, r2=1.0)
    text = bench.curve_table(result, [('20x20', 'too big')])
    assert '| ref | 50 | 3.00 s | 4.00 s | 16.7 | 60.0 |' in text
    assert '| 20x20 | - | not built |' in text
    assert 'over 2 sizes: wall = 2.00 s + 20.0 ms x checks (r^2 = 1.000)' in text
    mem = bench.memory_table(rows, ['ref', '3x2'])
    line = mem.splitlines()[2]
    assert line.startswith('| ref | 2 | 7 | 1.1 MiB (1.2 MiB) | 0.1 MiB |')
    assert 'http x 1: 17.6 MiB / 17.6 MiB; sleep x 2: 1.8 MiB / 1.9 MiB' in line
    assert 'warm-server 1 x 24.4 MiB' in line
    assert line.endswith('| 49.1 MiB | 26.1 MiB |')


def test_neigh_limit():
    with open(bench.GC_THRESH3) as f:
        limit = int(f.read())
    lab, _label = topology.topology(REPO, '3x2')
    assert bench.neigh_limit(lab) is None
    lab, _label = topology.topology(REPO, '20x20')
    why = bench.neigh_limit(lab)
    if limit >= 2084:
        assert why is None
    else:
        assert why == ("20 nodes, 401 pods need 2084 IPv4 neighbour entries, more than this "
                       "host's net.ipv4.neigh.default.gc_thresh3 = %d: the lab refuses it "
                       "before building" % limit)


def test_read_verify_report(tmp_path):
    path = tmp_path / 'verify.json'
    assert bench.read_verify_report(str(path)) == {}
    path.write_text(json.dumps({'checks': 142, 'failed': 1, 'results': []}))
    assert bench.read_verify_report(str(path)) == dict(checks=142, checks_failed=1)


def test_scaled_topology_keeps_the_cluster_dns():
    lab, label = topology.topology(REPO, '3x2')
    assert label == '3 nodes x 2 pods (+ kube-dns)'
    pods = lab['lab_pods']
    assert [p['name'] for p in pods[:6]] == ['n0p0', 'n0p1', 'n1p0', 'n1p1', 'n2p0', 'n2p1']
    assert pods[2]['workload'] == 'httpd'
    dns = pods[6:]
    assert [(p['name'], p['node'], p['namespace']) for p in dns] == \
        [('kube-dns', 'controlplane', 'kube-system')]
    assert dns[0]['containers'][0]['command'][0] == 'dnsmasq'
    ref, _label = topology.topology(REPO, 'ref')
    assert [p for p in ref['lab_pods'] if p['name'] == 'kube-dns'][0] == dns[0]


def test_the_benchmark_keeps_the_callbacks_ansible_cfg_enables():
    # ANSIBLE_CALLBACKS_ENABLED replaces ansible.cfg's list: the benchmark adds its own to it.
    assert 'k8slab.podnet.warm' in bench.cfg_callbacks()


def test_lab_plan_times_each_step_on_the_lab_it_measures():
    # idempotent and teardown asked without build: an untimed build first, every repeat.
    plan = bench.lab_plan(['site', 'idempotent', 'teardown'], 2)
    assert [(w, t) for _r, _n, w, t in plan] == [
        ('build', False), ('idempotent', True), ('teardown', True), ('site', True),
        ('teardown', True)] * 2
    assert [n for _r, n, _w, _t in plan] == list(range(10))
    # The full sequence needs nothing untimed; build twice without teardown tears down first.
    assert all(step[3] for step in bench.lab_plan(bench.LAB_STEPS, 3))
    assert [(w, t) for _r, _n, w, t in bench.lab_plan(['build', 'verify'], 2)] == [
        ('build', True), ('verify', True), ('teardown', False), ('build', True),
        ('verify', True)]
    # site alone: its lab is torn down untimed before the next one.
    assert [(w, t) for _r, _n, w, t in bench.lab_plan(['site'], 2)] == [
        ('site', True), ('teardown', False), ('site', True)]

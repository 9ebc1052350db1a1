"""Seed 000's story on a built lab, and the k8slab CLI that shows it (issue 12 §3, §4). Needs
root; builds its own lab named hlr<4 hex> (pods wired by the modules) and tears it down.

- the port-conflict drill: test-pod's second container moved onto the taken port 80 fails with
  EADDRINUSE, the pod shows 1/2 Error, lab-web keeps serving, the pod's IP does not change, and
  verification fails exactly the checks of the container that cannot serve;
- the sandbox killed: `k8slab pods` shows SandboxNotReady, the next run makes a new sandbox
  (new id, the address host-local gives) and every check passes again, its store file
  holding the new id;
- pod_netns fails for a container whose process is not in the sandbox's namespace;
- `k8slab pods [-o wide|json]`, `logs`, `exec -c` (the container's namespaces, the prompt),
  `status` (ready n/m), and their errors.
"""

import json
import os
import secrets
import signal
import subprocess
import sys
import time

import pytest
import yaml

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, '.collections'))
from ansible_collections.k8slab.podnet.plugins.module_utils import pods as P  # noqa: E402

K8SLAB = os.path.join(ROOT, 'scripts', 'k8slab')
BIND_ERROR = 'bind() to 0.0.0.0:80 failed (98: Address already in use)'


def k8slab(*args, **kw):
    return subprocess.run([K8SLAB] + list(args), capture_output=True, text=True, check=False,
                          timeout=1200, **kw)


def runtime(lab, node):
    return '/run/k8slab/%s/nodes/%s/run/podnet' % (lab, node)


def up(lab, reports, *extra):
    """k8slab up; returns (the run, the verification report's rows by name)."""
    env = dict(os.environ, K8SLAB_REPORT_DIR=str(reports))
    r = k8slab('--lab', lab, 'up', *extra, env=env)
    with open(os.path.join(str(reports), lab, 'verify.json')) as f:
        rows = dict((row['name'], row) for row in json.load(f)['results'])
    return r, rows


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    name = 'hlr' + secrets.token_hex(2)
    reports = tmp_path_factory.mktemp('hlr-reports')
    try:
        r, rows = up(name, reports)
        assert r.returncode == 0 and rows and all(x['passed'] for x in rows.values()), \
            r.stdout[-4000:]
        yield dict(name=name, reports=reports, tmp=tmp_path_factory.mktemp('hlr'))
    finally:
        k8slab('--lab', name, 'down')


def seed_pods(port):
    """The inventory's lab_pods with test-pod's lab-web-2 on ``port``."""
    with open(os.path.join(ROOT, 'inventories', 'topology.yml')) as f:
        pods = yaml.safe_load(f)['lab_pods']
    for p in pods:
        if p['name'] == 'test-pod':
            p['containers'][1]['port'] = port
    return pods


def pods_rows(lab, *args):
    r = k8slab('--lab', lab['name'], 'pods', '-o', 'json', *args)
    assert r.returncode == 0, r.stderr
    return dict((row['name'], row) for row in json.loads(r.stdout))


def test_cli_pods_logs_exec_and_status(lab):
    name = lab['name']
    table = k8slab('--lab', name, 'pods').stdout.splitlines()
    assert table[0].split() == ['NAMESPACE', 'NAME', 'READY', 'STATUS', 'RESTARTS', 'IP', 'NODE',
                                'POD', 'ID']
    line = [x for x in table if ' test-pod ' in x][0].split()
    rows = pods_rows(lab, 'node-2')
    seed = rows['test-pod']
    assert line == ['default', 'test-pod', '2/2', 'Running', '0', seed['ip'], 'node-2',
                    seed['sandbox_id'][:13]]
    assert sorted(rows) == ['app-1', 'app-2', 'client-2', 'test-pod']
    wide = k8slab('--lab', name, 'pods', 'node-2', '-o', 'wide').stdout
    assert '  - lab-web-2  Running  pid %d' % seed['containers'][1]['pid'] in wide
    assert k8slab('--lab', name, 'pods', 'node-9').returncode != 0

    # logs: the container's own output; -c is needed when the pod has several
    requests = k8slab('--lab', name, 'exec', 'node-2/test-pod', '-c', 'lab-web', '--', 'sh', '-c',
                      'curl -s localhost:8080/hello; echo; curl -s localhost:80/'
                      '; echo; readlink /proc/self/ns/net; echo "$PS1"')
    assert requests.returncode == 0, requests.stderr
    hello, body, netns, prompt = [x for x in requests.stdout.splitlines() if x]
    assert hello == 'HELLO test-pod' and body.endswith('container lab-web')
    assert netns == 'net:[%d]' % os.stat('/proc/%d/ns/net' % seed['sandbox_pid']).st_ino
    assert prompt == '[%s node-2/test-pod/lab-web] $ ' % name
    log = k8slab('--lab', name, 'logs', 'node-2/test-pod', '-c', 'lab-web-2', '--tail', '1')
    assert log.returncode == 0 and '"GET /hello HTTP/1.1" 200' in log.stdout, log
    r = k8slab('--lab', name, 'logs', 'node-2/test-pod')
    assert r.returncode != 0 and 'lab-web, lab-web-2: name one (-c CONTAINER)' in r.stderr
    r = k8slab('--lab', name, 'logs', 'node-2/test-pod', '-c', 'nginx')
    assert r.returncode != 0 and 'container nginx is not in pod test-pod' in r.stderr
    r = k8slab('--lab', name, 'exec', 'node-2/nopod', '-c', 'x', '--', 'true')
    assert r.returncode != 0 and "node node-2 has no pod 'nopod'" in r.stderr
    r = k8slab('--lab', name, 'exec', 'node-2/test-pod', '-c', 'nginx', '--', 'true')
    assert r.returncode != 0 and 'container nginx is not in pod test-pod' in r.stderr

    status = json.loads(k8slab('--lab', name, 'status', '--json').stdout)
    node2 = dict((p['name'], p) for n in status['nodes'] if n['name'] == 'node-2'
                 for p in n['pods'])
    assert (node2['test-pod']['ready'], node2['test-pod']['status']) == ('2/2', 'Running')
    assert node2['test-pod']['store'] == 'cbr0:%s' % seed['ip']
    table = k8slab('--lab', name, 'status').stdout.splitlines()
    assert [x.split()[4:] for x in table if x.startswith('NODE/POD')] == [
        ['PAUSE', 'PID', 'READY', 'STATUS']]
    assert [x.split()[4:] for x in table if x.startswith('node-2/test-pod ')] == [
        ['2/2', 'Running']]


def test_pod_netns_fails_for_a_process_outside_the_sandbox(lab):
    name, rt = lab['name'], runtime(lab['name'], 'node-2')
    pidfile = P.container_files(rt, 'test-pod', 'lab-web')['pid']
    with open(pidfile) as f:
        saved = f.read()
    stranger = subprocess.Popen(['nsenter', '--net=/run/netns/%s-node-2' % name, 'sleep', '60'])
    try:
        with open(pidfile, 'w') as f:
            f.write('%d\n' % stranger.pid)
        env = dict(os.environ, K8SLAB_REPORT_DIR=str(lab['reports']))
        r = k8slab('--lab', name, 'up', '--tags', 'pod_netns', '-e', 'verify_fail=false', env=env)
        assert r.returncode == 0, r.stdout[-3000:]
        # A run of one kind writes verify-<kind>.json beside the full report.
        with open(os.path.join(str(lab['reports']), name, 'verify-pod_netns.json')) as f:
            rows = dict((x['name'], x) for x in json.load(f)['results'])
        assert [n for n, x in rows.items() if not x['passed']] == [
            'pod_netns node-2/test-pod/lab-web'], rows
        assert 'another network namespace' in rows['pod_netns node-2/test-pod/lab-web']['reason']
    finally:
        with open(pidfile, 'w') as f:
            f.write(saved)
        stranger.kill()
        stranger.wait()


def test_port_conflict_drill(lab):
    name = lab['name']
    before = pods_rows(lab, 'node-2')['test-pod']
    extra = lab['tmp'] / 'drill.json'
    extra.write_text(json.dumps({'lab_pods': seed_pods(80), 'pods_fail_not_ready': False,
                                 'verify_fail': False}))
    r, rows = up(name, lab['reports'], '-e', '@%s' % extra)
    assert r.returncode == 0, r.stdout[-4000:]
    after = pods_rows(lab, 'node-2')['test-pod']
    web, web2 = after['containers']
    assert (after['ready'], after['status'], after['ip']) == ('1/2', 'Error', before['ip'])
    assert after['sandbox_id'] == before['sandbox_id']
    assert (web['state'], web['pid']) == ('Running', before['containers'][0]['pid'])
    assert (web2['state'], web2['reason'], web2['exit_code'], web2['message']) == (
        'Exited', 'Error', 1, BIND_ERROR)
    assert BIND_ERROR in k8slab('--lab', name, 'logs', 'node-2/test-pod', '-c', 'lab-web-2').stdout
    wide = k8slab('--lab', name, 'pods', '-o', 'wide').stdout
    assert 'lab-web-2  Exited (Error, exit 1)  pid %s: %s' % (web2['pid'] or '-', BIND_ERROR) \
        in wide
    r = k8slab('--lab', name, 'exec', 'node-2/test-pod', '-c', 'lab-web-2', '--', 'true')
    assert r.returncode != 0 and 'lab-web-2 of pod test-pod is not running (Exited, Error)' \
        in r.stderr
    # Verification: lab-web keeps serving; only what lab-web-2 should answer fails.
    failed = sorted(n for n, x in rows.items() if not x['passed'])
    assert failed and all('test-pod' in n for n in failed), failed
    assert not rows['pod_netns node-2/test-pod/lab-web-2']['passed']
    assert rows['pod_netns node-2/test-pod/lab-web']['passed']
    assert rows['localhost node-2/test-pod lab-web-2 -> lab-web:80']['passed']
    assert rows['store node-2/test-pod']['passed']
    # port 80 answers, but lab-web does, not lab-web-2
    assert rows['http node-2 -> node-2/test-pod:80 (lab-web)']['passed']
    assert not rows['http node-2 -> node-2/test-pod:80 (lab-web-2)']['passed']

    # Back on 8080 (the seed's fix): 2/2, same sandbox, same IP, every check passes.
    r, rows = up(name, lab['reports'])
    assert r.returncode == 0 and all(x['passed'] for x in rows.values()), r.stdout[-4000:]
    fixed = pods_rows(lab, 'node-2')['test-pod']
    assert (fixed['ready'], fixed['ip'], fixed['sandbox_id']) == (
        '2/2', before['ip'], before['sandbox_id'])


def test_killed_sandbox_is_shown_and_rebuilt(lab):
    name = lab['name']
    before = pods_rows(lab, 'node-2')['test-pod']
    os.kill(before['sandbox_pid'], signal.SIGKILL)
    deadline = time.time() + 5
    while P.alive(before['sandbox_pid']) and time.time() < deadline:
        time.sleep(0.05)
    shown = pods_rows(lab, 'node-2')['test-pod']
    assert (shown['status'], shown['sandbox_state']) == ('SandboxNotReady', 'SANDBOX_NOTREADY')
    r, rows = up(name, lab['reports'])
    assert r.returncode == 0 and all(x['passed'] for x in rows.values()), r.stdout[-4000:]
    after = pods_rows(lab, 'node-2')['test-pod']
    assert after['sandbox_id'] != before['sandbox_id'] and after['ready'] == '2/2'
    # host-local gives the next free address after the last one it reserved
    assert rows['store node-2/test-pod']['observed'].startswith(after['ip'] + ': ' +
                                                                after['sandbox_id'][:13])
    store = '/run/k8slab/%s/nodes/node-2/var/lib/cni/networks/cbr0' % name
    with open(os.path.join(store, after['ip']), 'rb') as f:
        assert f.read() == ('%s\r\neth0' % after['sandbox_id']).encode()

"""Pods on a built lab (site.yml through scripts/k8slab): the node's pod record drives them, and
drift converges on the next run (issue 11 §4, issue 12). Needs root; builds its own lab named
hd<4 hex> (hlc<4 hex> wired by the real CNI plugins, pods_wiring=cni) and tears it down. Both
wirings must pass every check.

- the namespace of a running pod deleted by hand (`ip netns del httpd` inside node-1): the next
  run stops the orphaned processes, removes the stale veth pair, rebuilds the pod, verifies;
- a killed sandbox (pause) process: a new sandbox, the address as host-local gives it;
- a killed container: reported Exited/Error, restarted by the next run (restartPolicy Always);
- every pod's store file holds its sandbox id and eth0; a rerun changes nothing;
- with pods_wiring=cni: libcni's cache holds one result per sandbox, a rebuilt sandbox's old
  attachment is deleted (DEL: cache and flannel's saved delegate gone), and a pod taken out of
  the inventory is deleted through the plugins.
"""

import json
import os
import re
import secrets
import shutil
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


def k8slab(*args):
    return subprocess.run([K8SLAB] + list(args), capture_output=True, text=True, check=False,
                          timeout=1200)


def node_dir(lab, node, path):
    """A node's private path as the host sees it."""
    return '/run/k8slab/%s/nodes/%s%s' % (lab, node, path)


def runtime(lab, node):
    return node_dir(lab, node, '/run/podnet')


def record(lab, node, pod):
    return P.read_record(runtime(lab, node), pod)


def wait_dead(pid, timeout=5):
    deadline = time.time() + timeout
    while P.alive(pid) and time.time() < deadline:
        time.sleep(0.05)
    return not P.alive(pid)


WIRING = {}  # lab name -> pods_wiring


def assert_up(lab, *extra):
    r = k8slab('--lab', lab, 'up', '-e', 'pods_wiring=%s' % WIRING[lab], *extra)
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-2000:]
    assert ' 0 failed' in r.stdout, r.stdout[-3000:]
    return r


@pytest.fixture(scope='module')
def reports(tmp_path_factory):
    """The verification reports of this file's runs go to a directory of its own, removed
    afterwards (not the checkout's reports/)."""
    before = os.environ.get('K8SLAB_REPORT_DIR')
    os.environ['K8SLAB_REPORT_DIR'] = str(tmp_path_factory.mktemp('hd-reports'))
    yield os.environ['K8SLAB_REPORT_DIR']
    shutil.rmtree(os.environ['K8SLAB_REPORT_DIR'], ignore_errors=True)
    if before is None:
        del os.environ['K8SLAB_REPORT_DIR']
    else:
        os.environ['K8SLAB_REPORT_DIR'] = before


@pytest.fixture(scope='module', params=['modules', 'cni'])
def lab(request, reports):
    name = ('hd' if request.param == 'modules' else 'hlc') + secrets.token_hex(2)
    WIRING[name] = request.param
    try:
        assert_up(name)
        assert os.path.isfile(os.path.join(reports, name, 'verify.json'))
        yield name
    finally:
        k8slab('--lab', name, 'down')


def store_files(lab, node):
    store = node_dir(lab, node, '/var/lib/cni/networks/cbr0')
    out = {}
    for f in os.listdir(store):
        if f[0].isdigit():
            with open(os.path.join(store, f), 'rb') as fh:
                out[f] = fh.read()
    return out


def cni_ids(lab, node):
    """Container ids with a libcni cached result and with flannel's saved delegate."""
    results = node_dir(lab, node, '/var/lib/cni/results')
    saved = node_dir(lab, node, '/var/lib/cni/flannel')
    return (sorted(f.split('-')[1] for f in os.listdir(results)) if os.path.isdir(results)
            else [], sorted(os.listdir(saved)) if os.path.isdir(saved) else [])


def assert_wiring(lab, node):
    """cni: one cached result and saved delegate per sandbox, nothing else; modules: none."""
    ids = sorted(r['sandbox_id'] for r in P.list_pods(runtime(lab, node)))
    assert cni_ids(lab, node) == ((ids, ids) if WIRING[lab] == 'cni' else ([], []))


def test_store_files_hold_sandbox_ids_and_records_are_ready(lab):
    for node, pods in (('node-1', ['app-3', 'client-1', 'httpd']),
                       ('node-2', ['app-1', 'app-2', 'client-2', 'test-pod'])):
        rows = P.list_pods(runtime(lab, node), node=node)
        assert [r['name'] for r in sorted(rows, key=lambda r: r['name'])] == pods
        store = store_files(lab, node)
        for r in rows:
            assert r['ready'].split('/')[0] == r['ready'].split('/')[1], r
            assert store[r['ip']] == ('%s\r\neth0' % r['sandbox_id']).encode(), (r, store)
    seed = record(lab, 'node-2', 'test-pod')
    assert seed['ready'] == '2/2' and [c['port'] for c in seed['containers']] == [80, 8080]
    for node in ('node-1', 'node-2'):
        assert_wiring(lab, node)


def test_netns_deleted_by_hand_converges(lab):
    before = record(lab, 'node-1', 'httpd')
    web = before['containers'][0]['pid']
    r = k8slab('--lab', lab, 'exec', 'node-1', '--', 'ip', 'netns', 'del', 'httpd')
    assert r.returncode == 0, r.stderr
    assert P.alive(web)  # the orphaned namespace lives on with its processes
    assert_up(lab)
    after = record(lab, 'node-1', 'httpd')
    assert not P.alive(web) and not P.alive(before['sandbox']['pid'])
    assert after['sandbox']['id'] != before['sandbox']['id'] and after['ready'] == '1/1'
    ip = after['sandbox']['ip'].split('/')[0]
    assert store_files(lab, 'node-1')[ip] == ('%s\r\neth0' % after['sandbox']['id']).encode()
    # The old sandbox id holds no address any more (cni: its attachment was deleted).
    assert before['sandbox']['id'].encode() not in b''.join(store_files(lab, 'node-1').values())
    assert_wiring(lab, 'node-1')


def test_killed_sandbox_and_killed_container_converge(lab):
    seed = record(lab, 'node-2', 'test-pod')
    live = dict((r['name'], r) for r in P.list_pods(runtime(lab, 'node-2')))
    assert live['test-pod']['status'] == 'Running' and live['app-1']['ready'] == '1/1'
    os.kill(seed['sandbox']['pid'], signal.SIGKILL)
    app = record(lab, 'node-2', 'app-1')
    web = app['containers'][0]['pid']
    os.kill(web, signal.SIGKILL)
    assert wait_dead(seed['sandbox']['pid']) and wait_dead(web)
    rows = dict((r['name'], r) for r in P.list_pods(runtime(lab, 'node-2')))
    assert rows['test-pod']['status'] == 'SandboxNotReady'
    c = rows['app-1']['containers'][0]
    assert (c['state'], c['reason'], c['exit_code'], rows['app-1']['ready']) == (
        'Exited', 'Error', 137, '0/1')

    assert_up(lab)
    seed2, app2 = record(lab, 'node-2', 'test-pod'), record(lab, 'node-2', 'app-1')
    assert seed2['sandbox']['id'] != seed['sandbox']['id'] and seed2['ready'] == '2/2'
    assert app2['sandbox']['id'] == app['sandbox']['id']  # only the container was restarted
    assert app2['ready'] == '1/1' and app2['containers'][0]['restarts'] == 1
    assert_wiring(lab, 'node-2')


def test_pod_taken_out_of_the_inventory_is_removed(lab, tmp_path):
    gone = record(lab, 'node-2', 'app-2')
    inventory = os.path.join(ROOT, 'inventories', 'topology.yml')

    with open(inventory) as f:
        pods = [p for p in yaml.safe_load(f)['lab_pods'] if p['name'] != 'app-2']
    extra = tmp_path / 'pods.json'
    extra.write_text(json.dumps({'lab_pods': pods}))
    try:
        assert_up(lab, '-e', '@%s' % extra)
        assert record(lab, 'node-2', 'app-2') is None
        assert gone['sandbox']['ip'].split('/')[0] not in store_files(lab, 'node-2')
        assert not P.alive(gone["sandbox"]["pid"])
        assert_wiring(lab, 'node-2')  # cni: DEL removed the cache entry and the delegate
    finally:
        assert_up(lab)
    assert record(lab, 'node-2', 'app-2')['ready'] == '1/1'


def snapshot(lab, node):
    """What a failed run must not change: the store, libcni's cache, the records' ids."""
    return (store_files(lab, node), cni_ids(lab, node),
            sorted(r['sandbox_id'] for r in P.list_pods(runtime(lab, node))))


def test_cni_plugin_missing_or_failing_is_named_and_leaves_nothing(lab, tmp_path):
    if WIRING[lab] != 'cni':
        pytest.skip('the real plugins only run with pods_wiring=cni')
    # A CNI_PATH without portmap: the run fails naming it before any plugin runs.
    bin_dir = tmp_path / 'cni'
    bin_dir.mkdir()
    for plugin in ('bridge', 'host-local', 'loopback'):
        os.symlink('/usr/lib/cni/' + plugin, str(bin_dir / plugin))
    before = snapshot(lab, 'node-2')
    r = k8slab('--lab', lab, 'up', '-e', 'pods_wiring=cni', '-e',
               json.dumps({'pods_cni_path': [str(bin_dir)]}))
    assert r.returncode != 0
    assert "plugin 'portmap' named in the conflist is not in CNI_PATH %s" % bin_dir in r.stdout, \
        r.stdout[-3000:]
    assert snapshot(lab, 'node-2') == before

    # A portmap that fails half way through ADD (after flannel/bridge/host-local ran) for the
    # new sandbox of a killed pause: the plugin's own code and message; ADD rolled back by DEL.
    fake = bin_dir / 'portmap'
    fake.write_text('#!/bin/sh\ncat >/dev/null\n[ "$CNI_COMMAND" = DEL ] && exit 0\n'
                    'echo \'{"cniVersion":"0.3.1","code":11,"msg":"hL portmap refuses"}\'\n'
                    'exit 1\n')
    fake.chmod(0o755)
    seed = record(lab, 'node-2', 'test-pod')
    os.kill(seed['sandbox']['pid'], signal.SIGKILL)
    assert wait_dead(seed['sandbox']['pid'])
    r = k8slab('--lab', lab, 'up', '-e', 'pods_wiring=cni', '-e',
               json.dumps({'pods_cni_path': [str(bin_dir)]}))
    assert r.returncode != 0
    assert 'plugin type="portmap" name="cbr0" failed (add): [code 11] hL portmap refuses' \
        in r.stdout, r.stdout[-3000:]
    new_id = record(lab, 'node-2', 'test-pod')['sandbox']['id']
    assert new_id != seed['sandbox']['id']
    store, (cached, saved), dummy = snapshot(lab, 'node-2')
    assert new_id.encode() not in b''.join(store.values())
    assert new_id not in cached and new_id not in saved
    # the old sandbox's attachment was deleted before; the next run wires the new one
    assert seed['sandbox']['id'] not in cached
    assert_up(lab)
    assert record(lab, 'node-2', 'test-pod')['ready'] == '2/2'
    assert_wiring(lab, 'node-2')


def test_rerun_changes_nothing(lab):
    r = assert_up(lab)
    counts = re.findall(r'changed=(\d+)', r.stdout)
    assert counts and set(counts) == {'0'}, r.stdout[-3000:]

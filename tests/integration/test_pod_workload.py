"""k8slab.podnet.pod_workload: a real HTTP server in a real pod namespace (needs root)."""

import os
import signal

import pytest

from conftest import run_module, sh

M = 'k8slab.podnet.pod_workload'


def alive(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except (IOError, OSError):
        return False


@pytest.fixture
def pod(uid, netns_cleanup, tmp_path):
    """A pod namespace with lo up; its server is killed afterwards, passed or failed."""
    name = 'kf%spod' % uid
    netns_cleanup.append(name)
    sh('ip netns add %s && ip -n %s link set dev lo up' % (name, name))
    run_dir = str(tmp_path / 'podnet')
    yield name, run_dir
    try:
        with open(os.path.join(run_dir, name, 'pid')) as f:
            os.kill(int(f.read()), signal.SIGKILL)
    except (IOError, OSError, ValueError):
        pass


def curl(netns, port=80):
    return sh('ip netns exec %s curl -sf --max-time 5 http://127.0.0.1:%d/' % (netns, port))


def pid_of(run_dir, name):
    with open(os.path.join(run_dir, name, 'pid')) as f:
        return int(f.read())


def test_httpd_starts_once_and_survives_the_run(pod):
    name, run_dir = pod
    args = {'pods': [{'name': name, 'node': 'node-1', 'workload': 'httpd'}], 'run_dir': run_dir}

    res = run_module(M, args, check=True)[0]
    assert res['changed'] is True and res['started'] == [name], res
    assert not os.path.exists(run_dir)

    res = run_module(M, args, diff=True)[0]
    assert res['changed'] is True and res['started'] == [name], res
    assert 'Hello from pod %s on node node-1' % name in curl(name)
    pid = pid_of(run_dir, name)
    assert res['pods'][0]['pid'] == pid and alive(pid)
    # The server lives in the pod's namespace, not in ours.
    assert os.stat('/proc/%d/ns/net' % pid).st_ino == os.stat('/run/netns/' + name).st_ino

    res = run_module(M, args)[0]
    assert res['changed'] is False and res['started'] == [] and pid_of(run_dir, name) == pid
    res = run_module(M, args, check=True)[0]
    assert res['changed'] is False, res


def test_restarts_on_new_port_killed_server_and_new_namespace(pod):
    name, run_dir = pod
    args = {'name': name, 'workload': 'httpd', 'port': 8080, 'run_dir': run_dir}
    run_module(M, args)
    first = pid_of(run_dir, name)
    assert 'pod %s' % name in curl(name, 8080)

    args['port'] = 8081
    res = run_module(M, args)[0]
    assert res['stopped'] == [name] and res['started'] == [name], res
    assert not alive(first) and 'pod %s' % name in curl(name, 8081)

    os.kill(pid_of(run_dir, name), signal.SIGKILL)
    res = run_module(M, args)[0]
    assert res['started'] == [name] and res['stopped'] == [], res
    curl(name, 8081)

    # A re-created namespace is another pod: the old server (in the old one) is replaced.
    old = pid_of(run_dir, name)
    sh('ip netns del %s && ip netns add %s && ip -n %s link set dev lo up' % (name, name, name))
    res = run_module(M, args)[0]
    assert res['stopped'] == [name] and res['started'] == [name], res
    assert not alive(old) and 'pod %s' % name in curl(name, 8081)


def test_sleep_and_absent_stop_and_clean_up(pod):
    name, run_dir = pod
    run_module(M, {'name': name, 'workload': 'httpd', 'run_dir': run_dir})
    pid = pid_of(run_dir, name)
    res = run_module(M, {'name': name, 'workload': 'sleep', 'run_dir': run_dir})[0]
    assert res['changed'] is True and res['stopped'] == [name], res
    # The empty directory stays: it records that the node runs this pod.
    assert not alive(pid) and os.listdir(os.path.join(run_dir, name)) == []
    res = run_module(M, {'name': name, 'workload': 'sleep', 'run_dir': run_dir})[0]
    assert res['changed'] is False, res

    run_module(M, {'name': name, 'workload': 'httpd', 'run_dir': run_dir})
    pid = pid_of(run_dir, name)
    res = run_module(M, {'name': name, 'run_dir': run_dir, 'state': 'absent'}, check=True)[0]
    assert res['changed'] is True and alive(pid), res
    res = run_module(M, {'name': name, 'run_dir': run_dir, 'state': 'absent'})[0]
    assert res['changed'] is True and not alive(pid)
    assert os.listdir(run_dir) == []
    res = run_module(M, {'name': name, 'run_dir': run_dir, 'state': 'absent'})[0]
    assert res['changed'] is False, res


def test_purge_removes_pods_not_listed(pod, uid):
    name, run_dir = pod
    other = 'kf%sold' % uid
    res = run_module(M, {'pods': [{'name': name, 'workload': 'httpd'}, {'name': other}],
                         'run_dir': run_dir})[0]
    assert res['changed'] is True and sorted(os.listdir(run_dir)) == sorted([name, other])
    pid = pid_of(run_dir, name)
    args = {'pods': [{'name': other}], 'run_dir': run_dir, 'purge': True}
    res = run_module(M, args, check=True)[0]
    assert res['purged'] == [name] and alive(pid), res
    res = run_module(M, args)[0]
    assert res['purged'] == [name] and res['stopped'] == [name], res
    assert not alive(pid) and os.listdir(run_dir) == [other]
    res = run_module(M, args)[0]
    assert res['changed'] is False and res['purged'] == [], res


@pytest.mark.parametrize('pods, fragment', [
    ([{'name': 'POD', 'workload': 'httpd'}], 'network namespace kf'),
    ([{'name': 'OK', 'workload': 'httpd'}, {'name': 'OK'}], 'listed twice'),
    ([{'name': 'OK', 'workload': 'httpd', 'port': 70000}], 'port 70000'),
    ([{'name': '../etc', 'workload': 'httpd'}], "'../etc'"),
])
def test_bad_input_changes_nothing(pod, uid, pods, fragment):
    name, run_dir = pod
    missing = 'kf%snone' % uid
    pods = [dict(p, name=p['name'].replace('POD', missing).replace('OK', name)) for p in pods]
    res = run_module(M, {'pods': pods, 'run_dir': run_dir})[0]
    assert res.get('failed') is True and fragment in res['msg'], res
    assert not os.path.exists(run_dir)

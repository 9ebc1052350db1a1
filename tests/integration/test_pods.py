"""k8slab.podnet.pod_sandbox and pod_container: real pause processes, real namespaces, real
servers, the node's pod record (PODS.md). Needs root; names carry the hd prefix."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from conftest import ROOT, run_module, sh

sys.path.insert(0, os.path.join(ROOT, '.collections'))
from ansible_collections.k8slab.podnet.plugins.module_utils import pods as P  # noqa: E402

SANDBOX = 'k8slab.podnet.pod_sandbox'
CONTAINER = 'k8slab.podnet.pod_container'


def alive(pid):
    return P.alive(pid)


def rss_kib(pid):
    with open('/proc/%d/status' % pid) as f:
        return int(re.search(r'VmRSS:\s+(\d+)', f.read()).group(1))


def curl(netns, port, path='/'):
    return sh('ip netns exec %s curl -s --max-time 5 http://127.0.0.1:%d%s' % (netns, port, path))


@pytest.fixture
def pod(uid, tmp_path):
    """A pod name and a runtime dir; every process, namespace and veth is gone afterwards."""
    name = 'hd%spod' % uid
    runtime = str(tmp_path / 'podnet')
    yield name, runtime
    subprocess.run(['ip', 'link', 'del', 'hd%sv' % uid], capture_output=True, check=False)
    inodes = set()
    rec = P.read_record(runtime, name) or {}
    for pid in [(rec.get('sandbox') or {}).get('pid')] + [c.get('pid') for c in
                                                          rec.get('containers') or []]:
        if pid and alive(pid):
            inodes.add(P.net_inode('/proc/%d/ns/net' % pid))
    inodes.add(P.net_inode('/run/netns/' + name))
    inodes.discard(P.net_inode('/proc/self/ns/net'))
    P.stop(P.pids_in_netns(inodes), grace=1)
    subprocess.run(['ip', 'netns', 'del', name], capture_output=True, check=False)


def sandbox(name, runtime, **kw):
    args = dict(pods=[dict(name=name, namespace='test001', labels={'app': 'lab-web'})],
                runtime_dir=runtime)
    args.update(kw)
    return args


def containers(name, runtime, cs, **kw):
    pod = dict(name=name, node='node-2', containers=cs)
    pod.update(kw)
    return dict(pods=[pod], runtime_dir=runtime)


SEED000 = [{'name': 'lab-web', 'workload': 'http', 'port': 80},
           {'name': 'lab-web-2', 'workload': 'http', 'port': 8080}]


def test_a_namespace_without_record_releases_the_pod_name(pod):
    """A pod made before records existed (its namespace, no record) may hold an address under
    its name, host-local's container id then: the rebuild releases it; a new pod releases
    nothing."""
    name, runtime = pod
    sh('ip netns add %s' % name)
    res = run_module(SANDBOX, sandbox(name, runtime))[0]
    assert res['created'] == [name] and res['released'] == [name], res


def test_sandbox_is_a_small_pause_holding_the_netns_and_stable(pod):
    name, runtime = pod
    res = run_module(SANDBOX, sandbox(name, runtime), check=True)[0]
    assert res['changed'] and res['created'] == [name], res
    assert not os.path.exists('/run/netns/' + name) and not os.path.exists(runtime)

    res = run_module(SANDBOX, sandbox(name, runtime), diff=True)[0]
    # a new pod held no address: nothing to release (the role then skips the release step)
    assert res['changed'] and res['created'] == [name] and res['released'] == [], res
    rec = P.read_record(runtime, name)
    sid, pid = rec['sandbox']['id'], rec['sandbox']['pid']
    assert re.match(r'^[0-9a-f]{64}$', sid) and res['sandboxes'][0]['id'] == sid
    assert rec['namespace'] == 'test001' and rec['labels'] == {'app': 'lab-web'}
    assert P.net_inode('/proc/%d/ns/net' % pid) == P.net_inode('/run/netns/' + name)
    # catatonit (install-deps.sh installs it): static, as Kubernetes' pause, well under 2 MiB.
    assert os.path.basename(os.readlink('/proc/%d/exe' % pid)) == 'catatonit'
    assert rss_kib(pid) < 1024, rss_kib(pid)
    assert ipj_lo_up(name)

    again = run_module(SANDBOX, sandbox(name, runtime))[0]
    assert not again['changed'] and again['sandboxes'][0]['id'] == sid, again
    assert run_module(SANDBOX, sandbox(name, runtime), check=True)[0]['changed'] is False

    gone = run_module(SANDBOX, dict(pods=[], runtime_dir=runtime, purge=True))[0]
    assert gone['removed'] == [name] and gone['released'] == [sid], gone
    assert not alive(pid) and not os.path.exists('/run/netns/' + name)
    assert P.record_names(runtime) == []


def ipj_lo_up(netns):
    links = json.loads(sh('ip -j -n %s link show dev lo' % netns))
    return 'UP' in links[0]['flags']


def test_seed000_two_containers_share_the_pod_network(pod):
    name, runtime = pod
    run_module(SANDBOX, sandbox(name, runtime))
    args = containers(name, runtime, SEED000)
    assert run_module(CONTAINER, args, check=True)[0]['started'] == [
        name + '/lab-web', name + '/lab-web-2']
    res = run_module(CONTAINER, args, diff=True)[0]
    assert res['changed'] and res['not_ready'] == {}, res
    rec = P.read_record(runtime, name)
    assert rec['ready'] == '2/2'
    spid = rec['sandbox']['pid']
    for c in rec['containers']:
        assert c['state'] == 'Running' and alive(c['pid'])
        # Every container is in the sandbox's network namespace.
        assert P.net_inode('/proc/%d/ns/net' % c['pid']) == P.net_inode('/proc/%d/ns/net' % spid)
    assert 'pod %s on node node-2, container lab-web\n' % name in curl(name, 80)
    assert 'container lab-web-2' in curl(name, 8080)
    assert curl(name, 8080, '/hello') == 'HELLO %s\n' % name
    # Container to container on localhost: lab-web-2's process reaches lab-web's port.
    pid2 = rec['containers'][1]['pid']
    out = sh('nsenter --net=/proc/%d/ns/net curl -s --max-time 5 http://localhost:80/hello'
             % pid2)
    assert out == 'HELLO %s\n' % name

    again = run_module(CONTAINER, args)[0]
    assert not again['changed'] and again['started'] == [], again
    assert run_module(CONTAINER, args, check=True)[0]['changed'] is False

    rows = P.list_pods(runtime, node='node-2')
    assert rows[0]['ready'] == '2/2' and rows[0]['status'] == 'Running'
    assert rows[0]['sandbox_id'] == rec['sandbox']['id']
    assert 'lab-web-2' in P.format_pods(rows)

    # A container taken out of the pod is stopped and leaves no files; the other is untouched.
    web = rec['containers'][0]['pid']
    res = run_module(CONTAINER, containers(name, runtime, SEED000[:1]))[0]
    assert res['stopped'] == [name + '/lab-web-2'] and res['started'] == [], res
    assert not alive(pid2) and alive(web)
    assert not [f for f in os.listdir(P.pod_dir(runtime, name)) if f.startswith('lab-web-2.')]
    assert P.read_record(runtime, name)['ready'] == '1/1'


def test_port_conflict_fails_with_eaddrinuse_and_the_other_keeps_serving(pod):
    name, runtime = pod
    run_module(SANDBOX, sandbox(name, runtime))
    cs = [{'name': 'lab-web', 'workload': 'http', 'port': 80},
          {'name': 'lab-web-2', 'workload': 'http', 'port': 80}]
    res = run_module(CONTAINER, containers(name, runtime, cs, restart_policy='Never'))[0]
    assert res['not_ready'] == {name: '1/2'}, res
    rec = P.read_record(runtime, name)
    bad = rec['containers'][1]
    assert bad['state'] == 'Exited' and bad['reason'] == 'Error' and bad['exit_code'] == 1
    assert bad['message'] == 'bind() to 0.0.0.0:80 failed (98: Address already in use)', bad
    assert 'Address already in use' in P.container_log(runtime, name, 'lab-web-2')
    assert 'container lab-web\n' in curl(name, 80)
    assert P.list_pods(runtime)[0]['status'] == 'Error'
    # Never: it stays exited, no change.
    again = run_module(CONTAINER, containers(name, runtime, cs, restart_policy='Never'))[0]
    assert not again['changed'], again
    # fail_not_ready makes it a failure naming the pod and its ready count.
    args = containers(name, runtime, cs, restart_policy='Never')
    args['fail_not_ready'] = True
    failed = run_module(CONTAINER, args)[0]
    assert failed.get('failed') and '%s 1/2' % name in failed['msg'], failed


def test_dead_container_is_reported_then_restarted(pod):
    name, runtime = pod
    run_module(SANDBOX, sandbox(name, runtime))
    args = containers(name, runtime, [{'name': 'echo', 'workload': 'echo', 'port': 7},
                                      {'name': 'nap', 'workload': 'sleep'}])
    run_module(CONTAINER, args)
    rec = P.read_record(runtime, name)
    echo_pid = rec['containers'][0]['pid']
    # TCP and UDP echo.
    assert _echo(name, socket.SOCK_STREAM) == b'ping'
    assert _echo(name, socket.SOCK_DGRAM) == b'ping'

    os.kill(echo_pid, signal.SIGKILL)
    deadline = time.time() + 5
    while P.list_pods(runtime)[0]['ready'] != '1/2' and time.time() < deadline:
        time.sleep(0.1)
    row = P.list_pods(runtime)[0]
    assert row['containers'][0]['state'] == 'Exited' and row['containers'][0]['exit_code'] == 137
    assert row['containers'][0]['reason'] == 'Error' and row['status'] == 'Error'

    res = run_module(CONTAINER, args)[0]  # restartPolicy Always: restarted on the next run
    assert res['started'] == [name + '/echo'], res
    rec = P.read_record(runtime, name)
    assert rec['ready'] == '2/2' and rec['containers'][0]['restarts'] == 1


def test_restart_stops_and_starts_every_running_container_again(pod):
    """restart: true (a configuration read only at start changed) restarts the pod's running
    containers - new processes, the old ones gone, restarts counted; check mode only says so."""
    name, runtime = pod
    run_module(SANDBOX, sandbox(name, runtime))
    args = containers(name, runtime, [{'name': 'echo', 'workload': 'echo', 'port': 7},
                                      {'name': 'nap', 'workload': 'sleep'}])
    run_module(CONTAINER, args)
    old = [c['pid'] for c in P.read_record(runtime, name)['containers']]
    assert not run_module(CONTAINER, args)[0]['changed']
    both = [name + '/echo', name + '/nap']
    check = run_module(CONTAINER, dict(args, restart=True), check=True)[0]
    assert check['changed'] and check['started'] == both == check['stopped'], check
    assert [c['pid'] for c in P.read_record(runtime, name)['containers']] == old
    # One old shim held stopped: it could record its container's exit only after the new
    # container's files were made - it must never get to (waited for, then killed).
    shim = int(open('/proc/%d/stat' % old[1]).read().rsplit(')', 1)[1].split()[1])
    os.kill(shim, signal.SIGSTOP)
    res = run_module(CONTAINER, dict(args, restart=True))[0]
    assert res['changed'] and res['started'] == both == res['stopped'], res
    assert not alive(shim)
    rec = P.read_record(runtime, name)
    assert rec['ready'] == '2/2' and [c['restarts'] for c in rec['containers']] == [1, 1], rec
    new = [c['pid'] for c in rec['containers']]
    assert not set(new) & set(old) and not [pid for pid in old if alive(pid)], (old, new)
    assert _echo(name, socket.SOCK_STREAM) == b'ping'
    time.sleep(0.2)  # what a surviving old shim would write meanwhile
    assert not run_module(CONTAINER, args)[0]['changed']
    assert P.read_record(runtime, name)['ready'] == '2/2'


def test_exit_status_written_late_by_the_shim_is_waited_for(pod):
    """A container read after it ended but before its shim recorded the status (the shim held
    stopped to make the window wide) is reported with that status, not Exited/Unknown."""
    name, runtime = pod
    run_module(SANDBOX, sandbox(name, runtime))
    run_module(CONTAINER, containers(name, runtime, [{'name': 'nap', 'workload': 'sleep'}]))
    pid = P.read_record(runtime, name)['containers'][0]['pid']
    with open('/proc/%d/stat' % pid) as f:
        shim = int(f.read().rsplit(')', 1)[1].split()[1])  # its parent
    assert P.cmdline(shim)[3:4] == ['shim'], P.cmdline(shim)
    os.kill(shim, signal.SIGSTOP)
    resume = threading.Timer(0.5, os.kill, (shim, signal.SIGCONT))
    try:
        os.kill(pid, signal.SIGKILL)
        deadline = time.time() + 5
        while alive(pid) and time.time() < deadline:  # a zombie its stopped shim cannot reap
            time.sleep(0.02)
        resume.start()
        row = P.list_pods(runtime)[0]
    finally:
        resume.cancel()
        os.kill(shim, signal.SIGCONT)
    c = row['containers'][0]
    assert (c['state'], c['reason'], c['exit_code'], row['status']) == (
        'Exited', 'Error', 137, 'Error'), row


def _echo(netns, kind):
    code = ('import socket,sys; s=socket.socket(socket.AF_INET, %d); s.settimeout(3); '
            's.connect(("127.0.0.1", 7)); s.send(b"ping"); sys.stdout.write(s.recv(64).decode())'
            % kind)
    return sh('ip netns exec %s %s -c \'%s\'' % (netns, sys.executable, code)).encode()


@pytest.mark.exclusive  # its veth's host end is in the root namespace for a while
def test_deleted_netns_and_killed_sandbox_converge(pod, uid):
    name, runtime = pod
    veth = 'hd%sv' % uid
    args = sandbox(name, runtime)
    args['pods'][0]['veth'] = veth
    run_module(SANDBOX, args)
    cargs = containers(name, runtime, [{'name': 'web', 'workload': 'http', 'port': 80}])
    run_module(CONTAINER, cargs)
    rec = P.read_record(runtime, name)
    old_id, web = rec['sandbox']['id'], rec['containers'][0]['pid']
    sh('ip link add %s type veth peer name eth0 netns %s' % (veth, name))

    # Drift 1: the namespace deleted by hand while the pod runs; the veth stays paired with an
    # end in the orphaned namespace.
    sh('ip netns del %s' % name)
    res = run_module(SANDBOX, args)[0]
    assert res['created'] == [name] and res['released'] == [old_id], res
    assert web in res['stopped'] and not alive(web)
    assert not os.path.exists('/sys/class/net/%s' % veth)
    rec = P.read_record(runtime, name)
    assert rec['sandbox']['id'] != old_id and rec['containers'][0]['state'] == 'Exited'
    res = run_module(CONTAINER, cargs)[0]
    assert res['started'] == [name + '/web'] and 'container web' in curl(name, 80)

    # Drift 2: the pause killed: a new sandbox (new id), containers restarted in it.
    second = P.read_record(runtime, name)['sandbox']
    os.kill(second['pid'], signal.SIGKILL)
    deadline = time.time() + 5
    while alive(second['pid']) and time.time() < deadline:
        time.sleep(0.05)
    row = P.list_pods(runtime)[0]
    # The container runs on in the orphaned namespace until the pod is rebuilt (crictl ps).
    assert row['status'] == 'SandboxNotReady' and row['containers'][0]['state'] == 'Running'
    assert alive(row['containers'][0]['pid']), row
    res = run_module(SANDBOX, args)[0]
    assert res['created'] == [name] and res['released'] == [second['id']], res
    run_module(CONTAINER, cargs)
    rec = P.read_record(runtime, name)
    assert rec['ready'] == '1/1' and rec['containers'][0]['restarts'] == 2
    assert 'container web' in curl(name, 80)


@pytest.mark.parametrize('cs, words', [
    ([{'name': 'web', 'workload': 'http', 'port': 80},
      {'name': 'web', 'workload': 'sleep'}], ['container name web', 'twice']),
    ([{'name': 'db', 'workload': 'mysql'}], ["'mysql'", 'unknown']),
    ([{'name': 'web', 'workload': 'http', 'port': 70000}], ['port 70000', '1-65535']),
    ([], ['containers is empty']),
])
def test_bad_containers_fail_naming_the_value_and_leave_nothing(pod, cs, words):
    name, runtime = pod
    run_module(SANDBOX, sandbox(name, runtime))
    before = sorted(os.listdir(P.pod_dir(runtime, name)))
    res = run_module(CONTAINER, containers(name, runtime, cs))[0]
    assert res.get('failed'), res
    for w in words:
        assert w in res['msg'], (w, res['msg'])
    assert sorted(os.listdir(P.pod_dir(runtime, name))) == before
    assert not os.path.exists(os.path.join(runtime, 'workload.py'))
    assert P.read_record(runtime, name)['containers'] == []


_LISTENER = r'''
import socket, sys, time
kind = {"tcp": socket.SOCK_STREAM, "udp": socket.SOCK_DGRAM}[sys.argv[1]]
s = socket.socket(socket.AF_INET, kind)
s.bind(("0.0.0.0", 5353))
if kind == socket.SOCK_STREAM:
    s.listen()
print("bound", flush=True)
time.sleep(60)
'''


@pytest.mark.parametrize('proto', ['tcp', 'udp'])
def test_a_container_has_started_when_its_probe_says_so(proto):
    """pod_container's start rule on real processes, each in a network namespace of its own:
    http/echo when their own TCP socket listens, sleep once exec'd, command on its port (TCP
    or UDP; its own socket or one of a process it started), command without a port after
    SETTLE seconds."""
    from ansible_collections.k8slab.podnet.plugins.modules.pod_container import Runtime, SETTLE
    proc = subprocess.Popen(['unshare', '--net', sys.executable, '-c', _LISTENER, proto],
                            stdout=subprocess.PIPE, text=True)
    # unshare --fork stays the parent: the listener is the process below it.
    parent = subprocess.Popen(['unshare', '--net', '--fork', sys.executable, '-c', _LISTENER,
                               proto], stdout=subprocess.PIPE, text=True)
    nap = subprocess.Popen(['unshare', '--net', 'sleep', '60'])
    try:
        assert proc.stdout.readline() == 'bound\n' and parent.stdout.readline() == 'bound\n'
        deadline = time.time() + 5
        while P.cmdline(nap.pid)[:1] != ['sleep'] and time.time() < deadline:
            time.sleep(0.01)
        started = Runtime.is_started
        command = dict(pid=proc.pid, workload='command', port=5353, argv=['x'])
        assert started(command, 0.0)  # listening (TCP or UDP) counts at once
        assert started(dict(command, pid=parent.pid), 0.0)  # ... also a process below it
        assert not started(dict(command, port=5354), 9.0)  # a port given: only listening counts
        assert not started(dict(command, port=None), 0.0)  # no port: it must stay up ...
        assert started(dict(command, port=None), SETTLE + 0.01)  # ... SETTLE seconds
        assert started(dict(command, workload='http'), 0.0) is (proto == 'tcp')  # TCP only
        assert not started(dict(command, workload='http', pid=parent.pid), 0.0)  # its own
        assert not started(dict(command, workload='echo', pid=nap.pid), 0.0)  # not its socket
        argv = P.cmdline(nap.pid)
        assert started(dict(pid=nap.pid, workload='sleep', port=None, argv=argv), 0.0)
        assert not started(dict(pid=nap.pid, workload='sleep', port=None, argv=['sh']), 9.0)
    finally:
        for p in (proc, parent, nap):
            p.kill()
            p.wait()


def test_a_slow_command_server_is_waited_for_before_the_next_container(pod):
    """A command container with a port counts as started once it listens, however long it
    takes: the http container after it on the same port is the one that fails (EADDRINUSE),
    not the slow server, which a fixed wait would have taken for started."""
    name, runtime = pod
    run_module(SANDBOX, sandbox(name, runtime))
    slow = ('import socket,time; time.sleep(0.6); s=socket.socket(); '
            's.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); '
            's.bind(("0.0.0.0", 9200)); s.listen(); time.sleep(600)')
    cs = [{'name': 'slow', 'workload': 'command', 'port': 9200,
           'command': [sys.executable, '-c', slow]},
          {'name': 'web', 'workload': 'http', 'port': 9200}]
    res = run_module(CONTAINER, containers(name, runtime, cs, restart_policy='Never'))[0]
    assert res['not_ready'] == {name: '1/2'}, res
    first, second = P.read_record(runtime, name)['containers']
    assert first['state'] == 'Running' and P.listens(first['pid'], 9200), first
    assert (second['state'], second['exit_code']) == ('Exited', 1), second
    assert 'Address already in use' in second['message'], second


def test_a_dns_like_command_container_counts_as_started_when_it_listens(pod):
    """A command container with a port (the DNS pod's dnsmasq on 53) is recorded Running
    with the run that started it, and one that exits before listening is recorded Exited."""
    name, runtime = pod
    run_module(SANDBOX, sandbox(name, runtime))
    code = ('import socket,time; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); '
            's.bind(("0.0.0.0", 53)); time.sleep(600)')
    cs = [{'name': 'dns', 'workload': 'command', 'port': 53,
           'command': [sys.executable, '-c', code]},
          {'name': 'bad', 'workload': 'command', 'port': 54, 'command': ['false']}]
    res = run_module(CONTAINER, containers(name, runtime, cs, restart_policy='Never'))[0]
    assert res['not_ready'] == {name: '1/2'}, res
    dns, bad = P.read_record(runtime, name)['containers']
    assert dns['state'] == 'Running' and P.listens(dns['pid'], 53, udp=True), dns
    assert not P.listens(dns['pid'], 53), 'UDP only'
    assert (bad['state'], bad['exit_code']) == ('Exited', 1), bad

# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""The node's pod record and the processes behind it (docs/pods.md).

A pod is a sandbox - a tiny long-lived "pause" process (``catatonit -P``, podman's pause, or
``sleep infinity`` where catatonit is not installed; see PAUSE_PROGRAMS) started inside the
pod's network namespace, that pins the namespace - and zero or more containers, processes that
join the sandbox's namespace through ``/proc/<pause pid>/ns/net``. The node keeps one record
per pod, ``<runtime_dir>/pods/<pod>/pod.json``::

    {name, namespace, uid, labels,
     sandbox: {id: 64 hex, pid, netns: /run/netns/<pod>, ip: 'a.b.c.d/len' | null,
               state: SANDBOX_READY | SANDBOX_NOTREADY},
     containers: [{name, workload, port, argv, pid, state: Running | Exited,
                   exit_code: int | null, reason: '' | Error | Completed, message, restarts,
                   log: <pod dir>/<container>.log}],
     ready: 'n/m'}

Each container runs under a small shell "shim" (as conmon does for CRI-O): it writes the
container's pid to ``<container>.pid`` and, when the container ends, its exit status to
``<container>.exit``, so an exited container keeps its status and its log after the run.

``list_pods`` and ``container_log`` read the records (refreshing container states from the
live processes) for a ``kubectl get pods -o wide`` / ``crictl`` style view. Pure Python.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import binascii
import json
import os
import signal
import subprocess
import time

from ansible_collections.k8slab.podnet.plugins.module_utils import procfs
from ansible_collections.k8slab.podnet.plugins.module_utils.netns import (
    InNetns, NetnsError, libc_call)
from ansible_collections.k8slab.podnet.plugins.module_utils.nschild import (
    CLONE_NEWNS, MS_BIND, mount, unshare)
from ansible_collections.k8slab.podnet.plugins.module_utils.files import read_text, write_atomic

RUNTIME_DIR = '/run/podnet'
NETNS_DIR = '/run/netns'
RECORD = 'pod.json'
PAUSE = 'pause'  # <pod dir>/pause: a symlink to the pause program, so its process names its pod
# The pause program, the first one found: catatonit in pause mode is what podman runs as its
# pause process - static like Kubernetes' pause (~0.7 MiB RSS), exits 0 on SIGTERM; coreutils'
# sleep (dynamic, ~1.5 MiB RSS) where catatonit is not installed.
PAUSE_PROGRAMS = (('catatonit', ['-P']), ('sleep', ['infinity']))
WORKLOADS = ('http', 'echo', 'sleep', 'command')
# Legacy workload names of the `workload:` shorthand.
WORKLOAD_ALIASES = {'httpd': 'http'}

# The container shim: runs the container with stdio on its log, records its pid, waits for it
# and records its exit status (128 + signal when killed, as a shell reports it).
SHIM = ('pidf=$1; log=$2; ex=$3; shift 3; '
        '"$@" </dev/null >>"$log" 2>&1 & echo $! >"$pidf.tmp" && mv "$pidf.tmp" "$pidf"; '
        'wait $!; echo $? >"$ex.tmp" && mv "$ex.tmp" "$ex"')
# A shim's argv before its files and the container's argv: how a shim is started and found.
SHIM_ARGV = ['/bin/sh', '-c', SHIM, 'shim']


# Seconds a live shim gets to record the exit status of its ended container.
SHIM_EXIT_WAIT = 2.0


class PodError(Exception):
    """A failure with a message ready for fail_json (or the CLI)."""


def pods_dir(runtime_dir=RUNTIME_DIR):
    return os.path.join(runtime_dir, 'pods')


def pod_dir(runtime_dir, name):
    return os.path.join(pods_dir(runtime_dir), name)


def new_sandbox_id():
    """A sandbox id as container runtimes make them: 64 random hex digits."""
    return binascii.hexlify(os.urandom(32)).decode('ascii')


def read_record(runtime_dir, name):
    """The pod's record (dict) or None when it has none or it cannot be parsed."""
    text = read_text(os.path.join(pod_dir(runtime_dir, name), RECORD))
    try:
        record = json.loads(text) if text else None
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def write_record(runtime_dir, record):
    path = os.path.join(pod_dir(runtime_dir, record['name']), RECORD)
    write_atomic(path, json.dumps(record, indent=2, sort_keys=True) + '\n', makedirs=True)


def record_names(runtime_dir):
    """Names of the pods that have a directory under <runtime_dir>/pods, sorted."""
    top = pods_dir(runtime_dir)
    if not os.path.isdir(top):
        return []
    return sorted(n for n in os.listdir(top) if os.path.isdir(os.path.join(top, n)))


# ---- processes --------------------------------------------------------------------------

def net_inode(path):
    """(st_dev, st_ino) of a network namespace file (/run/netns/X, /proc/PID/ns/net) or None."""
    try:
        st = os.stat(path)
        return (st.st_dev, st.st_ino)
    except OSError:
        return None


def alive(pid):
    """True when pid runs (a zombie has exited)."""
    st = procfs.stat(pid) if pid else None
    return st is not None and st[0] not in ('Z', 'X')


def cmdline(pid):
    raw = read_text('/proc/%d/cmdline' % pid) if pid else None
    return [a for a in raw.split('\0') if a] if raw else []


def read_pid(path):
    try:
        return int((read_text(path) or '').strip())
    except ValueError:
        return None


def pause_program(find):
    """(path, args) of the pause program: the first of PAUSE_PROGRAMS that find (a program name
    -> its path or None, as AnsibleModule.get_bin_path(name) answers) finds. Raises PodError
    naming them all when none is found."""
    for name, args in PAUSE_PROGRAMS:
        path = find(name)
        if path:
            return path, list(args)
    raise PodError('no pause program: none of %s is installed'
                   % ', '.join(name for name, _args in PAUSE_PROGRAMS))


def pause_pid(runtime_dir, record):
    """The record's pause pid when that process is alive and is this pod's pause, else None."""
    pid = ((record or {}).get('sandbox') or {}).get('pid')
    # By the path's tail: a reader outside the node (the host) sees runtime_dir elsewhere.
    tail = '/pods/%s/%s' % ((record or {}).get('name'), PAUSE)
    if isinstance(pid, int) and alive(pid) and cmdline(pid)[:1] and \
            cmdline(pid)[0].endswith(tail):
        return pid
    return None


def pids_in_netns(inodes):
    """Every process whose network namespace is one of inodes ({(dev, ino)}), except us."""
    found = []
    wanted = set(i for i in inodes if i)
    if not wanted:
        return found
    for entry in os.listdir('/proc'):
        if entry.isdigit() and int(entry) != os.getpid():
            if net_inode('/proc/%s/ns/net' % entry) in wanted:
                found.append(int(entry))
    return sorted(found)


def spawn(argv, netns, binds=()):
    """Starts argv (list of str; argv[0] a path or a name on PATH) detached, as a runtime
    starts a pause or a shim: in its own session (setsid: no signal of the module's process
    group reaches it), stdio on /dev/null, no other inherited descriptors, LC_ALL=C, and in
    the network namespace netns (a /run/netns name or a /proc/PID/ns/net path; the calling
    thread enters it for the fork, so no nsenter runs). binds: (source, target) paths
    bind-mounted in a mount namespace of its own, private so nothing leaks back (what
    ``unshare --mount --propagation private`` and ``mount --bind`` would do, done between fork
    and exec). Returns its pid at once: it outlives the module, which does not wait for it.
    Raises PodError naming argv[0] and netns when it cannot be started."""
    def private_mounts():
        unshare(CLONE_NEWNS)
        for source, target in binds:
            mount(source, target, flags=MS_BIND)
    if binds:
        libc_call('getpid')  # libc loaded before the fork: the child imports nothing
    try:
        with InNetns(netns):
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, close_fds=True,
                                    start_new_session=True, cwd='/',
                                    env=dict(os.environ, LC_ALL='C'),
                                    preexec_fn=private_mounts if binds else None)
    except (OSError, NetnsError) as e:
        raise PodError('cannot start %s in %s: %s' % (argv[0], netns, e))
    except subprocess.SubprocessError:  # private_mounts failed in the child
        raise PodError('cannot start %s in %s: bind mounts %s failed' % (
            argv[0], netns, ', '.join('%s over %s' % b for b in binds)))
    proc.returncode = 0  # it lives on: keep subprocess from tracking it
    return proc.pid


def stop(pids, grace=3.0):
    """SIGTERM, then SIGKILL after grace seconds, every live pid; waits for them to end."""
    pids = [p for p in pids if alive(p)]
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.time() + wait
        while time.time() < deadline:
            pids = [p for p in pids if alive(p)]
            if not pids:
                return
            time.sleep(0.05)


def stop_container(pid):
    """Stops a running container (pid, an int) as ``crictl stop`` does (stop: SIGTERM, then
    SIGKILL) and waits up to SHIM_EXIT_WAIT seconds for its shim (its parent, when that runs
    SHIM) to record the exit status and end; a shim still there then is killed. So the files
    the runtime clears next, for a restart, are never written again by the old shim."""
    st = procfs.stat(pid)
    shim = st[1] if st and cmdline(st[1])[:4] == SHIM_ARGV else None
    stop([pid])
    deadline = time.time() + SHIM_EXIT_WAIT
    while shim and alive(shim) and time.time() < deadline:
        time.sleep(0.01)
    if shim and alive(shim):
        stop([shim], grace=0)


def socket_inodes(pid):
    inodes = set()
    fd_dir = '/proc/%d/fd' % pid
    try:
        for fd in os.listdir(fd_dir):
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if target.startswith('socket:['):
                inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def listens(pid, port, udp=False, tree=False):
    """True when pid itself (with tree, also a process below it) holds a socket on TCP port
    in state LISTEN (0A), or with udp also a UDP socket bound to port (07, unconnected), read
    from /proc/PID/net/{tcp,tcp6,udp,udp6} (the tables of pid's network namespace) and matched
    to those processes' own socket inodes. port: int 1-65535. Never raises: a pid that is
    gone holds nothing."""
    tables = (('tcp', '0A'), ('tcp6', '0A')) + ((('udp', '07'), ('udp6', '07')) if udp else ())
    bound = set()  # inodes of the sockets on port in those states, in pid's namespace
    for table, state in tables:
        for line in (read_text('/proc/%d/net/%s' % (pid, table)) or '').splitlines()[1:]:
            f = line.split()
            if len(f) > 9 and f[3] == state and int(f[1].rsplit(':', 1)[1], 16) == port:
                bound.add(f[9])
    if not bound:
        return False
    if bound & socket_inodes(pid):
        return True
    # The /proc scan for the processes below pid only once something is bound there.
    return tree and any(bound & socket_inodes(below) for below in procfs.descendants(pid))


# ---- container state ----------------------------------------------------------------------

def container_files(runtime_dir, pod, container):
    """{pid, exit, log} paths of a container in its pod's directory."""
    base = os.path.join(pod_dir(runtime_dir, pod), container)
    return dict(pid=base + '.pid', exit=base + '.exit', log=base + '.log')


def log_tail(path, lines=1):
    text = (read_text(path) or '').rstrip('\n')
    return '\n'.join(text.splitlines()[-lines:]) if text else ''


def shim_running(pid_file):
    """True when the shim of the container whose pid file is pid_file still runs: it has yet
    to record the container's exit status. The shim is found by its argv and its pid file,
    the same file (st_dev, st_ino) through /proc/<pid>/root, since a lab node's shim names it
    in the node's mount namespace."""
    try:
        want = os.stat(pid_file)
    except OSError:
        return False
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        argv = cmdline(int(entry))
        if argv[:4] != SHIM_ARGV or len(argv) < 5:
            continue
        try:
            st = os.stat('/proc/%s/root%s' % (entry, argv[4]))
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (want.st_dev, want.st_ino) and alive(int(entry)):
            return True
    return False


def container_status(runtime_dir, pod, entry, sandbox_pid):
    """The live state of a recorded container: a copy of entry with pid, state, exit_code,
    reason and message brought up to date from its process and its shim's files.

    Running: its pid is alive, runs its argv and is in the sandbox's network namespace (when
    the pause is gone - sandbox_pid None - it runs on in the orphaned namespace, and is
    Running until the pod is rebuilt, as ``crictl ps`` shows a container of a dead sandbox).
    Exited: its shim recorded an exit status (reason Completed for 0, else Error; message is
    the last line of its log); a container that just ended while its shim still runs waits
    up to SHIM_EXIT_WAIT seconds for that status. Otherwise Exited/Unknown (it vanished
    without a status).
    """
    entry = dict(entry)
    files = container_files(runtime_dir, pod, entry['name'])
    pid = entry.get('pid')
    runs = isinstance(pid, int) and alive(pid) and cmdline(pid) == entry.get('argv')
    if runs and (not sandbox_pid or net_inode('/proc/%d/ns/net' % pid) ==
                 net_inode('/proc/%d/ns/net' % sandbox_pid)):
        entry.update(state='Running', exit_code=None, reason='', message='')
        return entry
    code = read_pid(files['exit'])
    if code is None and isinstance(pid, int) and not runs:
        # Ended (exiting, a zombie or reaped) before its shim wrote the status: while the
        # shim runs, the status is still to come. Read it after the shim is seen gone (it
        # writes, then ends), so a status written during the look is not missed.
        deadline = time.time() + SHIM_EXIT_WAIT
        while (not os.path.exists(files['exit']) and time.time() < deadline
               and shim_running(files['pid'])):
            time.sleep(0.02)
        code = read_pid(files['exit'])
    if code is None:
        entry.update(state='Exited', exit_code=None, reason='Unknown',
                     message=entry.get('message') or 'the process is gone')
    else:
        entry.update(state='Exited', exit_code=code,
                     reason='Completed' if code == 0 else 'Error',
                     message='' if code == 0 else log_tail(files['log']))
    return entry


def ready_text(containers):
    running = sum(1 for c in containers if c.get('state') == 'Running')
    return '%d/%d' % (running, len(containers))


# ---- the listing (kubectl get pods -o wide / crictl pods + ps) ----------------------------

def list_pods(runtime_dir=RUNTIME_DIR, node=None):
    """The node's pods from its records, container states refreshed from the live processes.

    Returns a list, sorted by (namespace, name), of::

        {node, namespace, name, ip ('10.244.1.2' or None), ready ('n/m'),
         status (Running | Pending | Error | Completed | NotReady | SandboxNotReady),
         sandbox_id (64 hex), sandbox_pid, sandbox_state (SANDBOX_READY | SANDBOX_NOTREADY),
         restarts (sum over containers),
         containers: [{name, workload, port, state (Running | Exited), pid, exit_code,
                       reason, message, restarts, log}]}

    node is only copied into each row (the records do not know their node). Reads the files
    under <runtime_dir>/pods, so it runs on the node (inside the lab node's mount namespace).
    """
    rows = []
    for name in record_names(runtime_dir):
        rec = read_record(runtime_dir, name)
        if rec is None:
            continue
        sandbox = rec.get('sandbox') or {}
        spid = pause_pid(runtime_dir, rec)
        containers = [container_status(runtime_dir, name, c, spid)
                      for c in rec.get('containers') or []]
        ready = ready_text(containers)
        if not spid:
            status = 'SandboxNotReady'
        elif not containers:
            status = 'Pending'
        elif all(c['state'] == 'Running' for c in containers):
            status = 'Running'
        elif any(c.get('reason') == 'Error' for c in containers):
            status = 'Error'
        elif all(c.get('reason') == 'Completed' for c in containers):
            status = 'Completed'
        else:
            status = 'NotReady'
        ip = sandbox.get('ip')
        rows.append(dict(
            node=node, namespace=rec.get('namespace', 'default'), name=name,
            ip=ip.split('/')[0] if ip else None, ready=ready, status=status,
            sandbox_id=sandbox.get('id'), sandbox_pid=spid,
            sandbox_state='SANDBOX_READY' if spid else 'SANDBOX_NOTREADY',
            restarts=sum(int(c.get('restarts') or 0) for c in containers),
            containers=[dict((k, c.get(k)) for k in ('name', 'workload', 'port', 'state', 'pid',
                                                     'exit_code', 'reason', 'message',
                                                     'restarts', 'log'))
                        for c in containers]))
    return sorted(rows, key=lambda r: (r['namespace'], r['name']))


def format_pods(rows, containers=True):
    """A text table of list_pods rows, kubectl's columns (-o wide) plus the sandbox id
    (13 hex, as crictl shortens it); with containers, one indented line per container."""
    head = ('NAMESPACE', 'NAME', 'READY', 'STATUS', 'RESTARTS', 'IP', 'NODE', 'POD ID')
    table = [head]
    for r in rows:
        table.append((r['namespace'], r['name'], r['ready'], r['status'], str(r['restarts']),
                      r['ip'] or '<none>', r['node'] or '<none>', (r['sandbox_id'] or '')[:13]))
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    out = []
    for i, row in enumerate(table):
        out.append('   '.join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
        if containers and i:
            for c in rows[i - 1]['containers']:
                code = '' if c['exit_code'] is None else ', exit %s' % c['exit_code']
                state = c['state'] + (' (%s%s)' % (c['reason'], code)
                                      if c['state'] != 'Running' else '')
                note = ': ' + c['message'] if c['message'] else ''
                out.append('  - %s  %s  pid %s%s' % (c['name'], state, c['pid'] or '-', note))
    return '\n'.join(out) + '\n'


def container_log(runtime_dir, pod, container=None, tail=None):
    """A container's output (stdout and stderr, as `kubectl logs`), the last tail lines when
    tail is given. container may be omitted when the pod has exactly one. Raises PodError
    naming the pod or container that does not exist."""
    rec = read_record(runtime_dir, pod)
    if rec is None:
        raise PodError('pod %s has no record in %s' % (pod, pods_dir(runtime_dir)))
    names = [c['name'] for c in rec.get('containers') or []]
    if container is None:
        if len(names) != 1:
            raise PodError('pod %s has containers %s: name one (-c CONTAINER)'
                           % (pod, ', '.join(names) or 'none'))
        container = names[0]
    if container not in names:
        raise PodError('container %s is not in pod %s (containers: %s)'
                       % (container, pod, ', '.join(names) or 'none'))
    text = read_text(container_files(runtime_dir, pod, container)['log']) or ''
    if tail is not None:
        lines = text.splitlines(True)
        text = ''.join(lines[-int(tail):]) if int(tail) > 0 else ''
    return text


def sandbox_owners(runtime_dir=RUNTIME_DIR):
    """{sandbox id: pod name} of every record: which pod a host-local store entry belongs to."""
    owners = {}
    for name in record_names(runtime_dir):
        sid = ((read_record(runtime_dir, name) or {}).get('sandbox') or {}).get('id')
        if sid:
            owners[sid] = name
    return owners


# ---- validation of a pod's containers (shared by the modules) -----------------------------

def container_errors(pod, containers):
    """Messages for a pod's container list: empty list, duplicate names, unknown workload,
    port outside 1-65535 (or missing for http/echo), command without argv."""
    errors = []
    if not containers:
        errors.append('pod %s: containers is empty; a pod needs at least one container' % pod)
        return errors
    seen = set()
    for c in containers:
        name = c.get('name')
        if not name or '/' in str(name) or name in ('.', '..'):
            errors.append('pod %s: container name %r is invalid' % (pod, name))
            continue
        if name in seen:
            errors.append('pod %s: container name %s is used twice' % (pod, name))
        seen.add(name)
        workload = WORKLOAD_ALIASES.get(c.get('workload'), c.get('workload'))
        if workload not in WORKLOADS:
            errors.append('pod %s container %s: workload %r is unknown; use one of %s'
                          % (pod, name, c.get('workload'), ', '.join(WORKLOADS)))
        port = c.get('port')
        if workload in ('http', 'echo') or port is not None:
            if (not isinstance(port, int) or isinstance(port, bool)
                    or not 0 < port < 65536):
                errors.append('pod %s container %s: port %r is outside 1-65535'
                              % (pod, name, port))
        if workload == 'command' and not c.get('command'):
            errors.append('pod %s container %s: workload command needs command: [argv...]'
                          % (pod, name))
    return errors

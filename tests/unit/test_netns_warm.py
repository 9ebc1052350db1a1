"""The warm module server's framing (plugins/plugin_utils/netns_warm.py) and how the netns
connection recognizes a pipelined module command (plugins/connection/netns.py)."""

import os
import socket
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), '.collections'))

from ansible_collections.k8slab.podnet.plugins.connection.netns import (  # noqa: E402
    pipelined_python)
from ansible_collections.k8slab.podnet.plugins.plugin_utils.netns_warm import (  # noqa: E402
    MAX_FRAME, HEADER, ProtocolError, _exit_code, frame, read_frame)


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def test_frames_round_trip_any_bytes(pair):
    a, b = pair
    data = 'grüße ✓'.encode() + bytes(range(256)) * 1000

    def send():
        a.sendall(frame(b'I', data) + frame(b'Q', b'') + frame(b'R', b'{"rc": 0}'))
        a.close()
    sender = threading.Thread(target=send)
    sender.start()
    assert read_frame(b) == (b'I', data)
    assert read_frame(b) == (b'Q', b'')
    assert read_frame(b) == (b'R', b'{"rc": 0}')
    assert read_frame(b) is None          # a clean EOF between frames
    sender.join()


@pytest.mark.parametrize('cut', [2, HEADER.size + 3])
def test_a_frame_cut_short_is_an_error(pair, cut):
    a, b = pair
    a.sendall(frame(b'O', b'0123456789')[:cut])
    a.close()
    with pytest.raises(ProtocolError):
        read_frame(b)


def test_an_oversized_frame_is_refused_before_reading_it(pair):
    a, b = pair
    a.sendall(HEADER.pack(b'I', MAX_FRAME + 1))
    with pytest.raises(ProtocolError, match='too large'):
        read_frame(b)


@pytest.mark.parametrize('code, rc', [(None, 0), (0, 0), (5, 5), (256 + 3, 3), ('msg', 1)])
def test_exit_codes_follow_python(code, rc):
    assert _exit_code(code) == rc


def test_pipelined_python_recognizes_only_the_module_command():
    py = '/usr/bin/python3'
    assert pipelined_python("/bin/sh -c '%s && sleep 0'" % py, '/bin/sh') == ({}, py)
    quoted = "/bin/sh -c 'A=1 B='\"'\"'x y'\"'\"' %s && sleep 0'" % py
    assert pipelined_python(quoted, '/bin/sh') == ({'A': '1', 'B': 'x y'}, py)
    for cmd in ("/bin/sh -c 'hostname'", "/bin/sh -c '%s -tt && sleep 0'" % py,
                "/bin/sh -c 'python3 && sleep 0'", "/bin/bash -c '%s && sleep 0'" % py,
                "/bin/sh -c '%s /tmp/x.py && sleep 0'" % py, "/bin/sh -c 'unbalanced",
                "/bin/sh -c 'sudo %s && sleep 0'" % py):
        assert pipelined_python(cmd, '/bin/sh') is None, cmd


# ---- the workers' code cache, through a real server (no namespaces: the host's) ----------
ZIP_RUN = r'''
import sys, zipfile
zpath = %(zip)r
sys.path.insert(0, zpath)
import kd_mod
print(kd_mod.VALUE, kd_mod.where.__code__.co_filename)
'''


@pytest.fixture
def warm_server(tmp_path):
    """A warm server on a private socket; yields run(zip_sources) -> stdout of a payload that
    imports kd_mod out of a zip holding zip_sources ({path in zip: source})."""
    from ansible_collections.k8slab.podnet.plugins.plugin_utils import netns_warm
    lab_dir = tmp_path / 'lab'
    warm = lab_dir / 'warm'
    warm.mkdir(parents=True, mode=0o700)
    sock, pidfile = str(warm / 'server-test.sock'), str(warm / 'server-test.pid')
    code_dir = tmp_path / 'k8slab-pycache'
    pid = netns_warm.start_server(sock, pidfile, str(lab_dir), 30, str(warm / 'server.log'),
                                  code_dir=str(code_dir))
    runs = []

    def run(sources):
        import zipfile
        zpath = str(tmp_path / ('run%d_payload.zip' % len(runs)))
        with zipfile.ZipFile(zpath, 'w') as z:
            for name, text in sources.items():
                z.writestr(name, text)
        runs.append(zpath)
        rc, out, err = netns_warm.request(sock, [], {}, (ZIP_RUN % {'zip': zpath}).encode())
        assert rc == 0, err
        return out.decode().split()
    run.code_dir = code_dir
    run.sock = sock
    run.pid = pid
    run.lab_dir = str(lab_dir)
    yield run
    os.kill(pid, 15)


MOD = "VALUE = %r\ndef where():\n    pass\n"


def test_workers_keep_compiled_code_by_source(warm_server):
    import marshal
    assert warm_server({'kd_mod.py': MOD % 'zip'})[0] == 'zip'
    entries = sorted(warm_server.code_dir.iterdir())
    assert len(entries) == 1 and entries[0].name.endswith('.code')
    assert oct(entries[0].stat().st_mode & 0o777) == '0o600'
    # The same source in another zip loads what is kept (planted here), with this zip's path.
    entries[0].write_bytes(marshal.dumps(compile(MOD % 'kept', 'elsewhere.py', 'exec')))
    os.utime(entries[0], (1000, 1000))   # last used long ago: touched when loaded
    value, filename = warm_server({'kd_mod.py': MOD % 'zip'})
    assert value == 'kept'
    assert entries[0].stat().st_mtime > 1000
    assert filename.endswith('run1_payload.zip/kd_mod.py'), filename
    # Another source is compiled, and kept beside.
    assert warm_server({'kd_mod.py': MOD % 'new'})[0] == 'new'
    assert len(list(warm_server.code_dir.iterdir())) == 2


def test_a_package_gets_its_init_path(warm_server):
    src = {'kd_mod/__init__.py': MOD % 'pkg'}
    assert warm_server(src)[0] == 'pkg'
    value, filename = warm_server(src)   # from the cache
    assert (value, filename.endswith('run1_payload.zip/kd_mod/__init__.py')) == ('pkg', True)


@pytest.mark.parametrize('damage', ['truncated', 'not code', 'group-writable', 'symlink',
                                    'directory', 'fifo'])
def test_a_damaged_or_foreign_entry_is_compiled_anew(warm_server, damage):
    import marshal
    assert warm_server({'kd_mod.py': MOD % 'zip'})[0] == 'zip'
    entry, = warm_server.code_dir.iterdir()
    planted = marshal.dumps(compile(MOD % 'planted', 'x.py', 'exec'))
    if damage == 'truncated':
        entry.write_bytes(planted[:len(planted) // 2])
    elif damage == 'not code':
        entry.write_bytes(marshal.dumps({'VALUE': 'planted'}))
    elif damage == 'group-writable':
        entry.write_bytes(planted)
        entry.chmod(0o620)
    elif damage == 'symlink':
        other = warm_server.code_dir.parent / 'planted.code'   # root's, 0644
        other.write_bytes(planted)
        entry.unlink()
        entry.symlink_to(other)
    elif damage == 'directory':   # found by a helper: every run failed with EISDIR
        entry.unlink()
        entry.mkdir()
    else:                         # found by a helper: the run hung on open()
        entry.unlink()
        os.mkfifo(str(entry), 0o600)
    assert warm_server({'kd_mod.py': MOD % 'zip'})[0] == 'zip'
    assert warm_server({'kd_mod.py': MOD % 'zip'})[0] == 'zip'   # and again


def test_a_code_directory_others_can_write_is_not_used(warm_server):
    warm_server.code_dir.chmod(0o777)
    try:
        assert warm_server({'kd_mod.py': MOD % 'zip'})[0] == 'zip'
        assert list(warm_server.code_dir.iterdir()) == []
    finally:
        warm_server.code_dir.chmod(0o700)


def test_the_code_directory_is_made_private_and_keeps_the_newest(tmp_path):
    from ansible_collections.k8slab.podnet.plugins.plugin_utils.ansiballz_cache import (
        beside_local_tmp)
    from ansible_collections.k8slab.podnet.plugins.plugin_utils.netns_warm import (
        CODE_DIR, CodeCache)
    assert beside_local_tmp('/root/.ansible/tmp/ansible-local-1234abcd/', CODE_DIR) == \
        '/root/.ansible/tmp/k8slab-pycache'
    path = tmp_path / 'k8slab-pycache'
    CodeCache.prepare(str(path), keep=2)
    assert oct(path.stat().st_mode & 0o777) == '0o700'
    for n in range(4):
        (path / ('e%d.code' % n)).write_bytes(b'x')
        os.utime(path / ('e%d.code' % n), (1000 + n, 1000 + n))
    (path / 'zz-dir').mkdir()                     # not an entry: neither kept nor counted
    os.utime(path / 'zz-dir', (1001.5, 1001.5))   # among the excess: pruning goes on past it
    CodeCache.prepare(str(path), keep=2)
    assert sorted(p.name for p in path.iterdir()) == ['e2.code', 'e3.code', 'zz-dir']


def test_a_server_per_code_directory():
    from ansible_collections.k8slab.podnet.plugins.module_utils.netns_warm import server_key
    keys = set(server_key('/usr/bin/python3', '/a', '2.19', d) for d in ('/x/c', '/y/c', ''))
    assert len(keys) == 3


# The worker's main thread writes 4 MiB to its stdout pipe at once (more than the pipe holds,
# so the write blocks) while a second thread keeps signalling it: a signal with a handler (or
# a debugger or profiler attaching) cuts a blocking pipe write short, and the rest must still
# be written - a module's JSON result of a few hundred KiB was cut at 128 KiB under py-spy.
SIGNALLED_WRITE = '''
import os, signal, sys, threading, time
signal.signal(signal.SIGUSR1, lambda *a: None)
main, done = threading.get_ident(), threading.Event()
def poke():
    while not done.is_set():
        signal.pthread_kill(main, signal.SIGUSR1)
        time.sleep(0.0005)
threading.Thread(target=poke, daemon=True).start()
sys.stdout.write(''.join(('%02d' % n) * 32768 for n in range(64)))  # one write(2) of 4 MiB
done.set()
print('end')
'''


def test_a_write_cut_short_by_a_signal_loses_nothing(warm_server):
    from ansible_collections.k8slab.podnet.plugins.plugin_utils import netns_warm
    rc, out, err = netns_warm.request(warm_server.sock, [], {}, SIGNALLED_WRITE.encode())
    assert rc == 0, err
    want = ''.join(('%02d' % n) * 32768 for n in range(64)) + 'end\n'
    assert len(out) == len(want) and out.decode() == want, (len(out), len(want))


def test_workers_find_http_client_imported(warm_server):
    # The probe module's HTTP kinds import http.client (with email's parser) lazily: the
    # server has it imported, so a worker does not pay ~40 ms for it per run.
    from ansible_collections.k8slab.podnet.plugins.plugin_utils import netns_warm
    rc, out, err = netns_warm.request(
        warm_server.sock, [], {}, b"import sys; print('http.client' in sys.modules)")
    assert rc == 0, err
    assert out.split() == [b'True'], out


def test_output_written_to_a_detached_stdout_buffer_arrives(warm_server):
    # A cold Python flushes every buffered stream as it exits; the worker ends with _exit, so
    # it flushes its own buffers, also the one a module took off sys.stdout.
    from ansible_collections.k8slab.podnet.plugins.plugin_utils import netns_warm
    rc, out, err = netns_warm.request(
        warm_server.sock, [], {},
        b"import sys\nb = sys.stdout.detach()\nb.write(b'detached\\n')\nsys.stdout = None\n")
    assert out == b'detached\n', (rc, out, err)


def _gone(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] in ('Z', 'X')
    except OSError:
        return True


def test_a_run_that_removes_the_lab_is_answered_then_the_server_leaves(warm_server):
    """Teardown through the warm path: the module run removes the lab's directory (the
    server's reason to live) and goes on past the server's 1 s look-around; it still gets
    its output and status, and then, not before, the server exits."""
    from ansible_collections.k8slab.podnet.plugins.plugin_utils import netns_warm
    payload = ("import shutil, time\nshutil.rmtree(%r)\ntime.sleep(1.5)\nprint('removed')\n"
               % warm_server.lab_dir)
    rc, out, err = netns_warm.request(warm_server.sock, [], {}, payload.encode())
    assert (rc, out) == (0, b'removed\n'), (rc, out, err)
    for _attempt in range(100):
        if _gone(warm_server.pid):
            break
        time.sleep(0.02)
    assert _gone(warm_server.pid)


def test_ancestors_are_the_chain_of_parents():
    from ansible_collections.k8slab.podnet.plugins.module_utils.netns_warm import ancestors
    mine = ancestors()
    assert os.getppid() in mine and 1 in mine and os.getpid() not in mine
    assert ancestors(1) == set()

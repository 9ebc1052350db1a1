# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""A warm module server for the lab's nodes: the netns connection's fast path.

A cold module run costs ~0.2 s CPU, ~0.15 s of it importing Ansible's module_utils out of the
AnsiballZ zip without cached bytecode; the module's own work is ~0.02 s. The server is one
process per lab (and per controller Python + ansible-core), in the host's namespaces, that
imported those module_utils once. Per task it forks a handler, which forks a worker that enters
the node's namespaces with setns(2) (a fresh fork child is single-threaded, as a mount
namespace change needs) and runs the pipelined AnsiballZ payload as `python -` would: fresh
`__main__`, the task's environment, the payload's stdin, stdout and stderr on pipes, atexit
handlers run, exit status as the shell reports it (128 + signal for a killed one). The handler
relays the output and the status; when the client goes away (the task's timeout, Ctrl-C) it
kills the worker's process group. A worker that crashes, exits or hangs costs its handler only.

The workers keep what they compile: a module run imports the collection's module_utils and the
module itself out of the payload zip, and zipimport compiles every source anew (no bytecode in
the zip), twice per import (its get_filename compiles too) - about 60% of a warm run's CPU.
Compiled code is kept in a directory given by the connection, `<local_tmp>/../k8slab-pycache`
(0700, beside Ansible's per-run directories and the AnsiballZ payload store), one file per
source named by its SHA-256, the interpreter's cache tag, bytecode magic and optimization
level, so a lab built anew reuses what the last one compiled; what is loaded gets the zip's
path as its file name, as a cold run would (see CodeCache). The newest CODE_KEEP entries are
kept.

The server exits after `idle` seconds without a task, when its socket or the lab's directory
disappears (teardown), or on SIGTERM (netns_warm.stop_server, called by teardown).

Protocol on the Unix socket, one request per connection, frames of
1 byte kind + 4 bytes big-endian length + data:

  client -> server  Q  JSON {"ns": [namespace file paths, entered in order],
                             "env": {name: value}}
                    I  the payload (stdin of the module), bytes
  server -> client  O  stdout bytes (any number of frames)
                    E  stderr bytes (any number of frames)
                    R  JSON {"rc": int}, last

Runs as a script: python netns_warm.py --socket PATH --pidfile PATH --lab-dir PATH --idle S
[--code-dir PATH].
Standard library only (it imports Ansible's module_utils when it can, to warm up).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import hashlib
import json
import marshal
import os
import select
import signal
import socket
import stat
import struct
import sys
import tempfile
import time
import types

HEADER = struct.Struct('>cI')
# One frame's data at most (a payload is a few hundred KiB).
MAX_FRAME = 64 * 1024 * 1024
CHUNK = 65536
CLONE_NEWNS = 0x00020000
CODE_DIR = 'k8slab-pycache'  # beside Ansible's per-run directories: the workers' compiled code
CODE_KEEP = 2000  # entries: ~100 per version of the collection and ansible-core modules in use


class ProtocolError(Exception):
    """A frame that is cut short, too large or of an unexpected kind."""


class Stopped(Exception):
    """SIGTERM: raised out of select(), which Python would otherwise resume (PEP 475)."""


# ---- framing --------------------------------------------------------------------------------
def frame(kind, data):
    """One frame (bytes): kind (1-byte bytes) + length + data (bytes)."""
    return HEADER.pack(kind, len(data)) + data


def read_exact(sock, size):
    """size bytes from sock; fewer only at EOF."""
    chunks, got = [], 0
    while got < size:
        chunk = sock.recv(min(size - got, CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b''.join(chunks)


def read_frame(sock):
    """(kind, data) of the next frame on sock, or None at a clean EOF. Raises ProtocolError
    for a cut or oversized frame."""
    head = read_exact(sock, HEADER.size)
    if not head:
        return None
    if len(head) < HEADER.size:
        raise ProtocolError('frame header cut short')
    kind, size = HEADER.unpack(head)
    if size > MAX_FRAME:
        raise ProtocolError('frame of %d bytes is too large' % size)
    data = read_exact(sock, size)
    if len(data) < size:
        raise ProtocolError('frame %r cut short: %d of %d bytes' % (kind, len(data), size))
    return kind, data


# ---- client ---------------------------------------------------------------------------------
def request(sock_path, ns_paths, env, payload, connect_timeout=5.0):
    """Run payload (bytes) in the namespaces ns_paths (list of namespace files) through the
    server at sock_path: (rc, stdout, stderr). Raises OSError when the server cannot be
    reached (the caller starts one or falls back) and ProtocolError when it breaks off."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(connect_timeout)
        sock.connect(sock_path)
        sock.settimeout(None)
        header = json.dumps({'ns': list(ns_paths), 'env': dict(env)}).encode()
        sock.sendall(frame(b'Q', header) + frame(b'I', payload))
        out, err = [], []
        while True:
            got = read_frame(sock)
            if got is None:
                raise ProtocolError('the warm server closed the connection without a status')
            kind, data = got
            if kind == b'O':
                out.append(data)
            elif kind == b'E':
                err.append(data)
            elif kind == b'R':
                return json.loads(data)['rc'], b''.join(out), b''.join(err)
            else:
                raise ProtocolError('unexpected frame %r' % kind)
    finally:
        sock.close()


def start_server(sock_path, pidfile, lab_dir, idle, log_path, python=None, timeout=10.0,
                 code_dir=None):
    """Start a server and wait until it listens. Returns its PID; raises OSError when it does
    not come up (its log says why). The caller holds the lab's start lock. code_dir: where
    the workers keep compiled code (see CodeCache); None keeps none."""
    import subprocess  # pylint: disable=import-outside-toplevel
    argv = [python or sys.executable, os.path.abspath(__file__).replace('.pyc', '.py'),
            '--socket', sock_path, '--pidfile', pidfile, '--lab-dir', lab_dir,
            '--idle', str(idle)] + (['--code-dir', code_dir] if code_dir else [])
    with open(log_path, 'ab') as log:
        os.chmod(log_path, 0o600)
        # A session of its own and no inherited descriptors: the server outlives this task
        # and must not hold the caller's pipes open.
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=log, close_fds=True, start_new_session=True, cwd='/')
    try:
        ready, _w, _x = select.select([proc.stdout], [], [], timeout)
        line = proc.stdout.readline() if ready else b''
    finally:
        proc.stdout.close()
    if line.strip() != b'ready':
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        raise OSError(errno.EIO, 'the warm server did not start (see %s)' % log_path)
    # The server lives on; keep subprocess from warning about it.
    proc.returncode = 0
    return proc.pid


# ---- server ---------------------------------------------------------------------------------
def _warm_up():
    """Import what every module run imports, so a forked worker finds it in sys.modules."""
    # pylint: disable=import-outside-toplevel,unused-import
    import base64
    import datetime
    import http.client  # the probe module's HTTP kinds: ~40 ms of imports (email) per run
    import shutil
    import tempfile
    import traceback
    import zipfile
    try:
        import ansible.module_utils.basic
        from ansible.module_utils._internal._ansiballz import _loader
        import ansible.module_utils.common.text.converters
        import ansible.module_utils.common.process
    except Exception:  # pylint: disable=broad-except
        pass  # an older or missing ansible-core: still correct, only colder


def _libc_setns():
    import ctypes  # pylint: disable=import-outside-toplevel
    libc = ctypes.CDLL(None, use_errno=True)
    libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]

    def setns(fd, nstype=0):
        if libc.setns(fd, nstype) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    return setns


class Server(object):
    """The listening process: accepts, forks a handler per connection, reaps, exits idle."""

    def __init__(self, sock_path, pidfile, lab_dir, idle, code_dir=None):
        self.sock_path, self.pidfile, self.lab_dir, self.idle = sock_path, pidfile, lab_dir, idle
        self.handlers = set()
        self.stopping = False
        self.setns = _libc_setns()
        self.code_dir = code_dir

    def serve(self):
        old = os.umask(0o177)
        try:
            if os.path.exists(self.sock_path):
                os.unlink(self.sock_path)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(self.sock_path)
        finally:
            os.umask(old)
        os.chmod(self.sock_path, 0o600)
        if self.code_dir:
            CodeCache.prepare(self.code_dir)
        listener.listen(64)
        sock_ino = os.stat(self.sock_path).st_ino
        with open(self.pidfile + '.tmp', 'w') as f:
            f.write('%d\n' % os.getpid())
        os.rename(self.pidfile + '.tmp', self.pidfile)
        signal.signal(signal.SIGTERM, self._stop)
        # A handler that ends wakes select() through this pipe (PEP 475 would resume the
        # select a Python handler returns to), so the server reaps it - and, the lab's
        # directory gone, exits - at once rather than at the next timeout.
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        sys.stdout.write('ready\n')
        sys.stdout.flush()
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 1)
        os.close(devnull)
        last = time.monotonic()
        try:
            while not self.stopping:
                ready, _w, _x = select.select([listener, self.wake_r], [], [], 1.0)
                self._drain_wakeups()
                self._reap()
                if listener in ready:
                    try:
                        conn, _addr = listener.accept()
                    except OSError:
                        continue
                    last = time.monotonic()
                    pid = os.fork()
                    if pid == 0:
                        listener.close()
                        signal.set_wakeup_fd(-1)  # a handler's signals are its own
                        os.close(self.wake_r)
                        os.close(self.wake_w)
                        Handler(conn, self.setns, self.code_dir).run()   # never returns
                    conn.close()
                    self.handlers.add(pid)
                    continue
                if self.handlers:
                    last = time.monotonic()
                elif time.monotonic() - last >= self.idle:
                    break
                # Teardown removed the lab (or a newer server took the socket): no new
                # connection can reach this one; the handlers running - one may be the
                # teardown's own module run - finish first.
                if not os.path.isdir(self.lab_dir) or _ino(self.sock_path) != sock_ino:
                    if not self.handlers:
                        break
        except Stopped:
            pass
        finally:
            listener.close()
            if _ino(self.sock_path) == sock_ino:
                os.unlink(self.sock_path)
            try:
                with open(self.pidfile) as f:
                    if int(f.read()) == os.getpid():
                        os.unlink(self.pidfile)
            except (OSError, ValueError):
                pass
            for pid in self.handlers:
                _kill(pid, signal.SIGTERM)

    def _drain_wakeups(self):
        try:
            while os.read(self.wake_r, 512):
                pass
        except OSError:
            pass

    def _stop(self, *_):
        if not self.stopping:
            self.stopping = True
            raise Stopped()

    def _reap(self):
        while self.handlers:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.handlers.clear()
                return
            if pid == 0:
                return
            self.handlers.discard(pid)


def _ino(path):
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def _kill(pid, sig):
    try:
        os.kill(pid, sig)
    except OSError:
        pass


class Handler(object):
    """One connection, in a forked child of the server: read the request, run the worker,
    relay its output and status. Exits the process when done."""

    def __init__(self, conn, setns, code_dir):
        self.conn, self.setns, self.code_dir = conn, setns, code_dir
        self.worker = 0  # the worker process group (0: none yet)

    def run(self):
        code = 0
        try:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, self._terminate)
            self._serve()
        except BaseException:  # pylint: disable=broad-except
            code = 1
        finally:
            if self.worker:
                _kill(-self.worker, signal.SIGKILL)
            os._exit(code)  # pylint: disable=protected-access

    def _terminate(self, *_):
        if self.worker:
            _kill(-self.worker, signal.SIGKILL)
        os._exit(1)  # pylint: disable=protected-access

    def _serve(self):
        got = read_frame(self.conn)
        if not got or got[0] != b'Q':
            raise ProtocolError('expected a request header')
        req = json.loads(got[1])
        got = read_frame(self.conn)
        if not got or got[0] != b'I':
            raise ProtocolError('expected the payload')
        payload = got[1]
        # Opened here, in the host's mount namespace: after the worker's first setns the
        # node's private /run/netns would hide the lab's network namespaces.
        try:
            ns_fds = [os.open(p, os.O_RDONLY | os.O_CLOEXEC) for p in req['ns']]
        except OSError as e:
            self._reply(b'', ('cannot open namespace %s: %s\n' % (e.filename, e.strerror))
                        .encode(), 255)
            return
        code_fd = CodeCache.open_dir(self.code_dir) if self.code_dir else None
        stdin = os.memfd_create('payload', 0)
        os.write(stdin, payload)
        os.lseek(stdin, 0, os.SEEK_SET)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            self.conn.close()
            os.close(out_r)
            os.close(err_r)
            Worker(self.setns, ns_fds, req['env'], payload, stdin, out_w, err_w, code_fd).run()
        self.worker = pid
        for fd in ns_fds + [stdin, out_w, err_w] + ([] if code_fd is None else [code_fd]):
            os.close(fd)
        self._relay(out_r, err_r)
        _pid, status = os.waitpid(pid, 0)
        self.worker = 0
        rc = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
        self.conn.sendall(frame(b'R', json.dumps({'rc': rc}).encode()))
        self.conn.close()

    def _relay(self, out_r, err_r):
        """Send the worker's stdout and stderr as they come, until both close. A client that
        hangs up (its task timed out or was interrupted) kills the worker's process group."""
        kinds = {out_r: b'O', err_r: b'E'}
        conn = self.conn.fileno()
        while kinds:
            ready, _w, _x = select.select(list(kinds) + [conn], [], [])
            for fd in ready:
                if fd == conn:
                    if not self.conn.recv(1, socket.MSG_PEEK):
                        raise EOFError('client went away')
                    raise ProtocolError('unexpected data from the client')
                data = os.read(fd, CHUNK)
                if data:
                    self.conn.sendall(frame(kinds[fd], data))
                else:
                    os.close(fd)
                    del kinds[fd]

    def _reply(self, out, err, rc):
        self.conn.sendall(frame(b'O', out) + frame(b'E', err)
                          + frame(b'R', json.dumps({'rc': rc}).encode()))


class PayloadFirstPath(list):
    """The __path__ of a package of ansible that the server imported: the payload zips on
    sys.path come first, as for a cold run (which imports `ansible` out of the zip), so what
    only the zip has (ansible.legacy modules, a playbook's own module_utils) is found, and
    what the server has not imported loads from the zip as it would cold."""

    def __init__(self, name, original):
        super(PayloadFirstPath, self).__init__(original)
        self.parts = name.split('.')

    def __iter__(self):
        for entry in sys.path:
            if entry.endswith('_payload.zip'):
                yield os.path.join(entry, *self.parts)
        yield from list.__iter__(self)


def _payload_first():
    for name, module in list(sys.modules.items()):
        path = getattr(module, '__path__', None)
        if (name == 'ansible' or name.startswith('ansible.')) and type(path) is list:  # noqa  # pylint: disable=unidiomatic-typecheck
            module.__path__ = PayloadFirstPath(name, path)


class Worker(object):
    """The module run, in the handler's forked child: enter the node, then `python -`."""

    def __init__(self, setns, ns_fds, env, payload, stdin, out_w, err_w, code_fd=None):
        self.setns, self.ns_fds, self.env = setns, ns_fds, env
        self.payload, self.stdin, self.out_w, self.err_w = payload, stdin, out_w, err_w
        self.code_fd = code_fd

    def run(self):
        # pylint: disable=import-outside-toplevel
        import atexit
        import io
        import types
        code = 1
        buffers = []
        try:
            os.setpgid(0, 0)
            for sig in (signal.SIGTERM, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            os.dup2(self.stdin, 0)
            os.dup2(self.out_w, 1)
            os.dup2(self.err_w, 2)
            for fd in (self.stdin, self.out_w, self.err_w):
                os.close(fd)
            # Buffered, as a cold Python's: a TextIOWrapper straight on a FileIO drops the
            # rest of a write(2) that a signal cuts short (a module's JSON result of a few
            # hundred KiB, cut at 128 KiB while a profiler attached); BufferedWriter writes on.
            buffers = [io.BufferedWriter(io.FileIO(fd, 'w', closefd=False)) for fd in (1, 2)]
            sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, 'r', closefd=False)),
                                         encoding='utf-8', errors='surrogateescape')
            sys.stdout = io.TextIOWrapper(buffers[0], encoding='utf-8',
                                          errors='surrogateescape')
            sys.stderr = io.TextIOWrapper(buffers[1], encoding='utf-8',
                                          errors='backslashreplace', line_buffering=True)
            for fd in self.ns_fds:
                # setns(CLONE_NEWNS) also moves root and cwd to the node's /, as nsenter.
                self.setns(fd, 0)
                os.close(fd)
            os.environ.clear()
            os.environ.update(self.env)
            # The task's TMPDIR, as a fresh Python reads it (tempfile caches the first answer).
            tempfile.tempdir = None
            sys.argv = ['']
            _payload_first()
            if self.code_fd is not None:
                CodeCache(self.code_fd).install()
            main = types.ModuleType('__main__')
            main.__dict__['__builtins__'] = __builtins__
            sys.modules['__main__'] = main
            code = 0
            exec(compile(self.payload, '<stdin>', 'exec'), main.__dict__)  # pylint: disable=exec-used
        except SystemExit as e:
            code = _exit_code(e.code)
        except BaseException:  # pylint: disable=broad-except
            import traceback
            traceback.print_exc()
            code = 1
        finally:
            try:
                atexit._run_exitfuncs()  # pylint: disable=protected-access
                sys.stdout.flush()
                sys.stderr.flush()
            except BaseException:  # pylint: disable=broad-except
                code = code or 120
            for buf in buffers:  # also when a module detached them from sys.stdout/stderr
                try:
                    buf.flush()
                except BaseException:  # pylint: disable=broad-except
                    pass
            os._exit(code)  # pylint: disable=protected-access


class CodeCache(object):
    """Compiled code of the sources a worker imports out of a zip (the AnsiballZ payload),
    kept across runs in a directory the worker reaches by descriptor (opened in the host's
    mount namespace, before the worker enters the node's).

    An entry is the marshalled code object of one source file, named
    `<SHA-256 of the source text>.<cache_tag>-<bytecode magic>.<optimize level>.code`:
    the same source compiles to the same code under one interpreter and optimization level,
    whatever the module's name or the zip's path. Entries are written to a temporary name and
    renamed; one that is not a regular file of this user writable by nobody else, or does not
    unmarshal to a code object, is ignored (compiled as if missing). Like importlib's
    SourceLoader with a __pycache__ file, what is loaded gets the path it would have had
    compiled here (co_filename: `<zip>/<path in zip>`), for tracebacks and warnings."""

    def __init__(self, dir_fd):
        import importlib.util  # pylint: disable=import-outside-toplevel
        self.dir_fd = dir_fd
        # As a .pyc's header: the bytecode's magic number (it has changed within a minor
        # release), besides the interpreter's tag and the optimization level.
        self.suffix = '.%s-%s.%d.code' % (sys.implementation.cache_tag,
                                          importlib.util.MAGIC_NUMBER.hex(), sys.flags.optimize)

    @staticmethod
    def prepare(path, keep=CODE_KEEP):
        """Make the directory at path (0700) unless it is there; keep its keep newest entries
        (by mtime: written, or loaded a day after the last touch). Never raises OSError."""
        try:
            os.makedirs(path, 0o700, exist_ok=True)
            fd = CodeCache.open_dir(path)
            if fd is None:
                return
            try:
                # Files only (what else is there is not the cache's), each on its own.
                entries = [(e.stat(follow_symlinks=False).st_mtime, e.name)
                           for e in os.scandir(fd) if not e.is_dir(follow_symlinks=False)]
                for _mtime, name in sorted(entries, reverse=True)[keep:]:
                    try:
                        os.unlink(name, dir_fd=fd)
                    except OSError:
                        pass
            finally:
                os.close(fd)
        except OSError:
            pass

    @staticmethod
    def open_dir(path):
        """A descriptor (int) of the cache directory at path, or None when it is missing or
        not this user's private directory (then nothing is cached)."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            os.close(fd)
            return None
        return fd

    def install(self):
        """Route zipimport's get_code and get_filename (imports from a zip, runpy's module
        code) through the cache, in this process only. zipimport's get_filename compiles the
        module to learn its path, so each import used to compile twice; here each source is
        compiled or loaded once per process."""
        import zipimport  # pylint: disable=import-outside-toplevel
        compile_code = zipimport.zipimporter.get_code
        cache, done = self, {}

        def get_code(importer, fullname):
            key = (importer.archive, importer.prefix, fullname)
            if key not in done:
                done[key] = cache.code(importer, fullname, compile_code)
            return done[key]

        def get_filename(importer, fullname):
            return get_code(importer, fullname).co_filename
        zipimport.zipimporter.get_code = get_code
        zipimport.zipimporter.get_filename = get_filename

    def code(self, importer, fullname, compile_code):
        """The code of fullname in importer's zip: loaded from the cache, or compiled by
        compile_code (zipimport's own get_code) and stored."""
        try:
            source = importer.get_source(fullname)
        except Exception:  # pylint: disable=broad-except
            source = None   # no source (bytecode only, not UTF-8, not there): zipimport's way
        if source is None:
            return compile_code(importer, fullname)
        name = hashlib.sha256(source.encode('utf-8', 'surrogatepass')).hexdigest() + self.suffix
        code = self.load(name)
        if code is None:
            code = compile_code(importer, fullname)
            self.store(name, code)
            return code
        # The path zipimport gives it: <archive>/<prefix><name>(/__init__).py
        tail = fullname.rpartition('.')[2]
        path = os.path.join(importer.archive, importer.prefix + tail)
        return _with_filename(code, os.path.join(path, '__init__.py')
                              if importer.is_package(fullname) else path + '.py')

    def load(self, name):
        """The code object stored under name, or None."""
        try:
            # Non-blocking: a FIFO under the name must not hang the run; checked first.
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                         dir_fd=self.dir_fd)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if not (stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid()
                    and not st.st_mode & 0o022):
                return None
            with os.fdopen(os.dup(fd), 'rb') as f:
                data = f.read()
            if time.time() - st.st_mtime > 86400:
                os.utime(fd)  # in use: kept by prepare's pruning
        except OSError:
            return None
        finally:
            os.close(fd)
        try:
            code = marshal.loads(data)
        except (EOFError, ValueError, TypeError):
            return None
        return code if isinstance(code, types.CodeType) else None

    def store(self, name, code):
        """Keep code under name (written whole, then renamed); a failure only loses it."""
        tmp = '%s.%d.tmp' % (name, os.getpid())
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600, dir_fd=self.dir_fd)
            with os.fdopen(fd, 'wb') as f:
                f.write(marshal.dumps(code))
            os.rename(tmp, name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
        except (OSError, ValueError):
            try:
                os.unlink(tmp, dir_fd=self.dir_fd)
            except OSError:
                pass


def _with_filename(code, filename):
    """code (and the code objects it holds) with co_filename set to filename."""
    consts = tuple(_with_filename(c, filename) if isinstance(c, types.CodeType) else c
                   for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def _exit_code(code):
    """The exit status of SystemExit(code), as Python's own exit."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xff
    sys.stderr.write('%s\n' % (code,))
    return 1


def main(argv=None):
    import argparse  # pylint: disable=import-outside-toplevel
    parser = argparse.ArgumentParser(description='warm module server of a k8slab lab')
    parser.add_argument('--socket', required=True)
    parser.add_argument('--pidfile', required=True)
    parser.add_argument('--lab-dir', required=True)
    parser.add_argument('--idle', type=float, default=60.0)
    parser.add_argument('--code-dir')
    args = parser.parse_args(argv)
    # As `python -`: this script's directory is not on the module search path.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path = [p for p in sys.path if p not in ('', here)]
    _warm_up()
    Server(args.socket, args.pidfile, args.lab_dir, args.idle, args.code_dir).serve()


if __name__ == '__main__':
    main()

# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""Work in a node's mount and UTS namespaces by a forked child of the module, no exec.

What ``unshare --mount=FILE --uts=FILE`` and ``nsenter --mount=FILE`` followed by ``mount``,
``umount`` and ``hostname`` do, in one fork: the child enters (setns(2)) or makes (unshare(2))
the namespaces, runs a function there and sends its result back; the module's own process
never changes mount or UTS namespace. A namespace the child made is pinned (bind-mounted over its file,
as unshare(1) does) only when the function succeeded, so a failed setup leaves nothing
half-made: the namespace goes with the child. System calls through libc (ctypes), standard
library only; the calls follow mount(2), umount2(2), unshare(2) and sethostname(2).

Named network namespaces as ``ip netns add`` and ``ip netns del`` make and remove them
(``netns_add``, ``netns_delete``), with no process: a module making twenty pods would start
forty ``ip`` processes for them. There the calling thread makes the network namespace and
returns (unshare(2), setns(2)), and sets its lo up (netns.set_loopback_up); flock(2) as
iproute2 takes it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import errno
import fcntl
import json
import os

from ansible_collections.k8slab.podnet.plugins.module_utils.netns import (
    CLONE_NEWNET, NETNS_DIR, NetnsError, libc_call, own_netns, set_loopback_up, setns)

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MS_SHARED = 0x100000
MNT_DETACH = 0x2
# /proc/PID/ns/<name> of each namespace type
NS_NAMES = {CLONE_NEWNS: 'mnt', CLONE_NEWUTS: 'uts'}


def _path(p):
    return None if p is None else os.fsencode(p)


def mount(source, target, fstype=None, flags=0, data=None):
    """mount(2): source, target (paths, str), fstype (str or None), flags (MS_*), data (str
    options or None). Raises OSError with mount(2)'s errno."""
    libc_call('mount', _path(source), _path(target), _path(fstype), ctypes.c_ulong(flags),
              _path(data))


def umount(target, flags=0):
    """umount2(2) of target (str) with flags (MNT_*). Raises OSError (EINVAL: not a mount
    point)."""
    libc_call('umount2', _path(target), flags)


def umount_stack(target):
    """Detaches every mount stacked on target (``while mountpoint -q T; do umount -l T``):
    also what a stack hides, which cannot be named."""
    while True:
        try:
            umount(target, MNT_DETACH)
        except OSError as e:
            if e.errno == errno.EINVAL:
                return
            raise


def sethostname(name):
    """sethostname(2) of the calling process's UTS namespace (name: str)."""
    raw = name.encode('ascii')
    libc_call('sethostname', raw, ctypes.c_size_t(len(raw)))


def unshare(flags):
    """unshare(2) of the calling process's namespaces flags (CLONE_NEW*); with CLONE_NEWNS
    every mount of the new mount namespace is made private, as ``unshare --propagation
    private`` does, so nothing mounted there propagates back. Raises OSError."""
    libc_call('unshare', flags)
    if flags & CLONE_NEWNS:
        mount(None, '/', None, MS_REC | MS_PRIVATE)


def _child(fn, enter, new, w1, r2):
    """The forked child's part of in_child: enter, make, run fn, answer on w1, wait on r2."""
    try:
        # All opened first: once in a node's mount namespace, the host's pins of its other
        # namespaces are out of sight.
        fds = {}
        for flag in enter:
            try:
                fds[flag] = os.open(enter[flag], os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:
                raise NetnsError('cannot open the %s namespace %s: %s'
                                 % (NS_NAMES[flag], enter[flag], e.strerror))
        for flag in sorted(fds):
            try:
                setns(fds[flag], flag)
            except OSError as e:
                raise NetnsError('cannot enter the %s namespace %s: %s'
                                 % (NS_NAMES[flag], enter[flag], e.strerror))
        flags = 0
        for flag in new:
            flags |= flag
        if flags:
            try:
                unshare(flags)
            except OSError as e:
                raise NetnsError('cannot make new namespaces: %s' % e.strerror)
        data = json.dumps(dict(result=fn()))
    except BaseException as e:  # pylint: disable=broad-except
        data = json.dumps(dict(error=str(e) or type(e).__name__))
    data = data.encode('utf-8')
    while data:
        data = data[os.write(w1, data):]
    os.close(w1)
    os.read(r2, 1)  # EOF once the parent has pinned the namespaces


def in_child(fn, enter=None, new=None):
    """Runs fn() in a forked child and returns what it returns (JSON-able).

    enter: {CLONE_NEW* flag: namespace file path} - the child joins each (setns(2)) first.
    new: {CLONE_NEW* flag: file path} - the child makes each namespace (unshare(2); a new
    mount namespace's mounts all private, as ``unshare --propagation private`` makes them),
    then runs fn; when fn returns, the parent binds each new namespace over its file (which
    must exist) while the child still holds it. Only CLONE_NEWNS and CLONE_NEWUTS.

    Raises NetnsError with a message naming what failed - entering, making, fn's exception
    (its message; a mount error as OSError's text), the fork itself, or a pin - and then
    nothing of the new namespaces is pinned (binds made are undone). The child never returns
    into the caller (os._exit), so it flushes none of the module's buffers, and it is always
    reaped."""
    enter, new = enter or {}, new or {}
    libc_call('getpid')  # libc loaded before the fork: the child imports nothing
    fds = []
    try:
        r1, w1 = os.pipe()  # child -> parent: the result
        fds += [r1, w1]
        r2, w2 = os.pipe()  # parent -> child: closed when the pins are made
        fds += [r2, w2]
        pid = os.fork()
    except OSError as e:
        for fd in fds:
            os.close(fd)
        raise NetnsError('cannot fork a child for the namespaces: %s' % e.strerror)
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        try:
            os.close(r1)
            os.close(w2)
            _child(fn, enter, new, w1, r2)
        finally:
            os._exit(0)  # pylint: disable=protected-access
    os.close(w1)
    os.close(r2)
    pinned = []
    try:
        chunks = []
        while True:
            chunk = os.read(r1, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        try:
            reply = json.loads(b''.join(chunks).decode('utf-8'))
        except ValueError:
            reply = dict(error='the child ended without an answer')
        if 'error' in reply:
            raise NetnsError(reply['error'])
        for flag in sorted(new):
            try:
                mount('/proc/%d/ns/%s' % (pid, NS_NAMES[flag]), new[flag], flags=MS_BIND)
            except OSError as e:
                raise NetnsError('cannot pin the %s namespace at %s: %s'
                                 % (NS_NAMES[flag], new[flag], e.strerror))
            pinned.append(new[flag])
        pinned = []
        return reply['result']
    finally:
        for path in pinned:  # a later pin failed: no half of the pair stays
            try:
                umount(path)
            except OSError:
                pass
        os.close(r1)
        os.close(w2)
        os.waitpid(pid, 0)


def _shared_run_dir():
    """NETNS_DIR made a shared mount point, as iproute2's netns_add makes it (bound over
    itself first when it is not a mount point), under an exclusive lock on the directory as
    iproute2 takes it, so two makers never stack two binds; a namespace pinned there later
    shows in every mount namespace that shares it."""
    try:
        os.makedirs(NETNS_DIR, 0o755)
    except OSError as e:
        if e.errno != errno.EEXIST:
            raise
    fd = os.open(NETNS_DIR, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            mount('', NETNS_DIR, 'none', MS_SHARED | MS_REC)
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise
            mount(NETNS_DIR, NETNS_DIR, 'none', MS_BIND | MS_REC)
            mount('', NETNS_DIR, 'none', MS_SHARED | MS_REC)
    finally:
        os.close(fd)  # and the lock with it


def _netns_path(name):
    """NETNS_DIR/name for a name ``ip netns`` accepts (iproute2's invalid_name: not empty, no
    '/', not '.' or '..', at most NAME_MAX bytes; and no NUL, which a path cannot hold).
    Raises NetnsError otherwise."""
    try:
        size = len(os.fsencode(name)) if isinstance(name, str) else 0
    except UnicodeEncodeError:
        size = 0
    if not 0 < size <= 255 or '/' in name or '\0' in name or name in ('.', '..'):
        raise NetnsError('network namespace %r: not a plain name' % (name,))
    return os.path.join(NETNS_DIR, name)


def _quietly(fn, *args):
    """Undo steps after a failure: the first error is the one reported."""
    try:
        fn(*args)
    except OSError:
        pass


def netns_add(name, loopback_up=True):
    """Makes the network namespace NETNS_DIR/name as ``ip netns add NAME`` does (iproute2's
    netns_add): the shared run directory, the file made (O_EXCL: an existing name fails), a
    new namespace bound over it; with loopback_up its lo up, as a runtime's loopback plugin
    leaves a sandbox. The calling thread makes the namespace (unshare(2)) and returns to its
    own (setns(2)); other threads never move. name: str, a plain file name (_netns_path).
    Returns the file's path. Raises NetnsError naming the namespace, and then nothing is left
    (no file, no mount) - except when the thread cannot return to its namespace, which
    iproute2 treats as fatal: the error says so, and the made namespace stays pinned."""
    path = _netns_path(name)
    try:
        home = own_netns()
    except OSError as e:
        raise NetnsError('cannot create network namespace %s: %s' % (path, e.strerror))
    try:
        try:
            _shared_run_dir()
            os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
        except OSError as e:
            raise NetnsError('cannot create network namespace %s: %s' % (path, e.strerror))
        step, failed = 'make', None
        try:
            libc_call('unshare', CLONE_NEWNET)
            step = 'pin'
            mount('/proc/thread-self/ns/net', path, 'none', MS_BIND)
            step = 'set lo up in'
            if loopback_up:
                set_loopback_up()
            step = None
        except OSError as e:
            failed = e
        if step != 'make':  # unshare succeeded: this thread is in the new namespace
            try:
                setns(home, CLONE_NEWNET)
            except OSError as e:
                raise NetnsError('made network namespace %s, but the thread cannot return to '
                                 'its own: %s' % (path, e.strerror))
        if step is not None:
            if step == 'set lo up in':
                _quietly(umount, path, MNT_DETACH)
            _quietly(os.unlink, path)
            raise NetnsError('cannot %s network namespace %s: %s'
                             % (step, path, failed.strerror))
    finally:
        os.close(home)
    return path


def netns_delete(name):
    """Removes NETNS_DIR/name as ``ip netns del NAME`` does: its mount detached, the file
    unlinked; the namespace itself goes when nothing else holds it. A name that does not
    exist is no error. name: as for netns_add. Raises NetnsError naming the namespace."""
    path = _netns_path(name)
    try:
        umount(path, MNT_DETACH)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOENT):
            raise NetnsError('cannot remove network namespace %s: %s' % (path, e.strerror))
    try:
        os.unlink(path)
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise NetnsError('cannot remove network namespace %s: %s' % (path, e.strerror))

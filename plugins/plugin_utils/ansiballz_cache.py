# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""A persistent AnsiballZ cache for the warm callback (plugins/callback/warm.py).

Before a module runs, the worker builds its AnsiballZ payload: ansible-core walks the module's
imports with ``recursive_finder`` (an AST parse of every module_utils file it reaches) and
zips the result, ~0.12-0.18 s of controller time per distinct module. ansible-core caches the
result only for one run, in ``<local_tmp>/ansible-local-*/ansiballz_cache/`` (one file per
module FQN, compression and extension set; other hosts of the task wait on its lock), and a lab
build runs ~20 distinct modules once each.

This module keeps those files between runs. ``seed`` links the stored files into the run's cache
directory before any worker is forked; ``store`` copies the run's new files back at the end.
ansible-core reads them as its own, so nothing of its behaviour changes.

The store's directory is named by a ``fingerprint`` of everything a payload is made of: the
ansible-core version and install path, the Python version, ansible-core's ``modules`` and
``module_utils`` (size and mtime of every ``.py``, and its builtin routing), the content of
this collection's ``plugins/modules``, ``plugins/module_utils`` and ``meta/runtime.yml``, and
the content of any other module_utils directory Ansible searches first (a playbook's or role's
``module_utils/``, ``ANSIBLE_MODULE_UTILS``), which would shadow ansible-core's. Editing any of
them gives a new directory. A run that found more module_utils directories by its end than at
its start (a role included later) stores nothing. Only the payloads of this collection's and
ansible-core's own modules are kept: others may import module_utils of further collections.

The store lives beside the per-run directories (``<local_tmp>/k8slab-ansiballz/<fingerprint>``,
0700). Its files are pickles that ansible-core loads, so only directories and regular files
owned by this user and closed to others are read, and each file carries the sha256 of its
content in its name (``<name>~<sha256>``): a damaged file is removed, not read. The newest
``KEEP`` fingerprints are kept.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import shutil
import stat
import sys

# File name prefixes (module FQNs) whose payloads the fingerprint covers.
KEPT_PREFIXES = ('ansible.modules.', 'ansible_collections.k8slab.podnet.plugins.modules.')
STORE_DIR = 'k8slab-ansiballz'
RUN_CACHE_DIR = 'ansiballz_cache'  # ansible-core's per-run cache, under DEFAULT_LOCAL_TMP
DIGEST_SEP = '~'
KEEP = 4
COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _py_files(top):
    """Paths (sorted) of every .py file under top; no __pycache__."""
    found = []
    for root, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if d != '__pycache__']
        found.extend(os.path.join(root, n) for n in files if n.endswith('.py'))
    return sorted(found)


def _sha256(path):
    """Hex sha256 of a file's content ('' when it cannot be read)."""
    digest = hashlib.sha256()
    try:
        with open(path, 'rb') as f:
            for chunk in iter(lambda: f.read(1 << 16), b''):
                digest.update(chunk)
    except (IOError, OSError):
        return ''
    return digest.hexdigest()


def _stat(path):
    """(size, mtime_ns) of a file, None when it is missing."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def fingerprint(ansible_dir, ansible_version, collection_root=COLLECTION_ROOT, user_utils=()):
    """Hex sha256 (str) naming one set of payload sources: ansible_version (str), ansible_dir
    (ansible-core's package directory: its modules and module_utils by size and mtime, a
    release's files being fixed), this Python's version, and by content collection_root's
    plugins/modules, plugins/module_utils and meta/runtime.yml and the module_utils
    directories user_utils (list of paths, see ``user_module_utils``)."""
    digest = hashlib.sha256()
    digest.update(repr((ansible_version, os.path.realpath(ansible_dir), sys.version)).encode())
    for top in (os.path.join(ansible_dir, 'modules'), os.path.join(ansible_dir, 'module_utils')):
        digest.update(repr([(os.path.relpath(p, top), _stat(p)) for p in _py_files(top)]).encode())
    digest.update(repr(_stat(os.path.join(ansible_dir, 'config',
                                          'ansible_builtin_runtime.yml'))).encode())
    by_content = [os.path.join(collection_root, 'meta', 'runtime.yml')]
    for top in [os.path.join(collection_root, 'plugins', d) for d in ('modules', 'module_utils')] \
            + sorted(os.path.realpath(u) for u in user_utils):
        digest.update(repr(os.path.realpath(top)).encode())
        by_content.extend(_py_files(top))
    for path in by_content:
        digest.update(repr((path, _sha256(path))).encode())
    return digest.hexdigest()


def user_module_utils(search_paths, ansible_dir):
    """The existing directories of search_paths (Ansible's module_utils search path, list of
    str) other than ansible-core's own module_utils: what can shadow its files in a payload."""
    own = os.path.realpath(os.path.join(ansible_dir, 'module_utils'))
    return sorted(set(os.path.realpath(p) for p in search_paths
                      if p and os.path.isdir(p) and os.path.realpath(p) != own))


def _private(path, kind):
    """Whether path (not followed if a link) is a kind (stat.S_ISDIR or stat.S_ISREG) owned by
    this user and not writable by group or others."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return (kind(st.st_mode) and st.st_uid == os.geteuid()
            and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def _private_dir(path):
    """Make path (and its parents) a directory, mode 0700 for the last part; True when it is
    then one of this user's that others cannot write."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError:
        return False
    return _private(path, stat.S_ISDIR)


def _kept(name):
    """Whether a run cache file name is a finished payload the store keeps (not a lock or a
    partly written file, and of a module the fingerprint covers)."""
    return name.startswith(KEPT_PREFIXES) and not name.endswith(('.lock', '-part', '.tmp'))


def _stored_name(entry):
    """The run cache name of a store entry '<name>~<sha256>', and the sha256; (None, None)
    for any other entry."""
    name, sep, digest = entry.rpartition(DIGEST_SEP)
    if not sep or len(digest) != 64 or not _kept(name):
        return None, None
    return name, digest


def beside_local_tmp(local_tmp, name):
    """The path of name beside the run's local_tmp directory (ansible-core's
    DEFAULT_LOCAL_TMP, ``<local_tmp>/ansible-local-*``): where what outlives a run is kept -
    this store, the warm server's compiled code (netns_warm.CODE_DIR)."""
    return os.path.join(os.path.dirname(local_tmp.rstrip(os.sep)), name)


def store_path(local_tmp, key):
    """The store directory for fingerprint key: a sibling of the run's local_tmp directory."""
    return os.path.join(beside_local_tmp(local_tmp, STORE_DIR), key)


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def _place(src, dst):
    """dst as a link to src, or a copy written under a temporary name and renamed: never a
    partly written dst."""
    try:
        os.link(src, dst)
        return
    except OSError:
        pass
    part = '%s.%d-part' % (dst, os.getpid())
    try:
        shutil.copyfile(src, part)
        os.replace(part, dst)
    finally:
        _unlink(part)


def seed(local_tmp, key):
    """Link (or copy) the stored payloads of fingerprint key into the run's cache under
    local_tmp (ansible-core's DEFAULT_LOCAL_TMP of this process), each only when it is a file
    of this user's that others cannot write and its content matches its sha256 (a damaged one
    is removed). Returns the file names seeded (list of str); [] when there is no usable
    store. Never raises OSError."""
    store = store_path(local_tmp, key)
    if not (_private(os.path.dirname(store), stat.S_ISDIR) and _private(store, stat.S_ISDIR)):
        return []
    run_cache = os.path.join(local_tmp, RUN_CACHE_DIR)
    seeded = []
    try:
        os.makedirs(run_cache, exist_ok=True)
        os.utime(store)  # most recently used: kept by the pruning
        entries = os.listdir(store)
    except OSError:
        return []
    for entry in sorted(entries):
        name, digest = _stored_name(entry)
        src, dst = os.path.join(store, entry), os.path.join(run_cache, name or '')
        if name is None or os.path.exists(dst) or not _private(src, stat.S_ISREG):
            continue
        if _sha256(src) != digest:
            _unlink(src)
            continue
        try:
            _place(src, dst)
        except OSError:
            continue
        seeded.append(name)
    return seeded


def run_cache_names(local_tmp):
    """The file names in the run's cache under local_tmp (a set; empty when there is none)."""
    try:
        return set(os.listdir(os.path.join(local_tmp, RUN_CACHE_DIR)))
    except OSError:
        return set()


def store(local_tmp, key, keep=KEEP, skip=()):
    """Copy the run's finished payloads (of the kept modules, other than the names in skip:
    those the run had before the sources key stands for applied) that the store of fingerprint
    key lacks into it, as '<name>~<sha256>' (written to a temporary name, synced, renamed).
    Prunes the store to the keep most recently used fingerprints. Returns the file names
    stored (list of str). Never raises OSError."""
    run_cache = os.path.join(local_tmp, RUN_CACHE_DIR)
    store_dir = store_path(local_tmp, key)
    names = sorted(n for n in run_cache_names(local_tmp) if _kept(n) and n not in skip)
    if not names:
        return []
    if not _private_dir(os.path.dirname(store_dir)) or not _private_dir(store_dir):
        return []
    try:
        have = set(_stored_name(e)[0] for e in os.listdir(store_dir))
    except OSError:
        return []
    stored = []
    for name in names:
        if name in have:
            continue
        src = os.path.join(run_cache, name)
        part = os.path.join(store_dir, '%s.%d.tmp' % (name, os.getpid()))
        try:
            with open(src, 'rb') as f:
                data = f.read()
            with open(part, 'wb') as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())  # a crash must not leave an empty file under the name
            os.replace(part, os.path.join(store_dir, name + DIGEST_SEP
                                          + hashlib.sha256(data).hexdigest()))
        except (IOError, OSError):
            continue
        finally:
            _unlink(part)
        stored.append(name)
    _prune(os.path.dirname(store_dir), keep)
    return stored


def _prune(root, keep):
    """Remove all but the keep most recently used fingerprint directories under root."""
    try:
        dirs = [os.path.join(root, d) for d in os.listdir(root)]
        dirs = sorted((d for d in dirs if os.path.isdir(d)), key=os.path.getmtime, reverse=True)
    except OSError:
        return
    for old in dirs[keep:]:
        shutil.rmtree(old, ignore_errors=True)

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
ansible-core reads them as its own, so nothing of its behaviour changes. The store's directory
is named by a fingerprint of everything a payload is made of: the ansible-core version and
install path, the Python version, and the size and mtime of every ``.py`` file under
ansible-core's ``modules`` and ``module_utils`` and this collection's ``plugins/modules`` and
``plugins/module_utils``. Editing any of them gives a new directory, so a stale payload is never
read. Only the payloads of this collection's and ansible-core's own modules are kept: others
may import module_utils of further collections that the fingerprint does not cover.

The store lives beside the per-run directories (``<local_tmp>/k8slab-ansiballz/<fingerprint>``,
0700); its files are pickles, so a store that is not a directory owned by this user and closed
to others is ignored. The newest ``KEEP`` fingerprints are kept.
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
KEEP = 4
COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _py_files(top):
    """(path relative to top, size, mtime_ns) of every .py file under top, sorted; no
    __pycache__ (bytecode comes and goes without the source changing)."""
    found = []
    for root, dirs, files in os.walk(top):
        dirs[:] = sorted(d for d in dirs if d != '__pycache__')
        for name in files:
            if name.endswith('.py'):
                path = os.path.join(root, name)
                st = os.stat(path)
                found.append((os.path.relpath(path, top), st.st_size, st.st_mtime_ns))
    return sorted(found)


def fingerprint(ansible_dir, ansible_version, collection_root=COLLECTION_ROOT):
    """Hex sha256 (str) naming one set of payload sources: ansible_version (str), ansible_dir
    (ansible-core's package directory) with its modules and module_utils, this Python's
    version, collection_root's plugins/modules and plugins/module_utils."""
    digest = hashlib.sha256()
    digest.update(repr((ansible_version, os.path.realpath(ansible_dir), sys.version)).encode())
    for top in (os.path.join(ansible_dir, 'modules'), os.path.join(ansible_dir, 'module_utils'),
                os.path.join(collection_root, 'plugins', 'modules'),
                os.path.join(collection_root, 'plugins', 'module_utils')):
        digest.update(repr((os.path.realpath(top), _py_files(top))).encode())
    return digest.hexdigest()


def _private_dir(path):
    """Make path (and its parents) a directory of this user's, mode 0700 for the last part.
    True when it is one afterwards: owned by this user, not writable by group or others."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError:
        return False
    return (stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()
            and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def _kept(name):
    """Whether a run cache file name is a finished payload the store keeps (not a lock or a
    partly written file, and of a module the fingerprint covers)."""
    return name.startswith(KEPT_PREFIXES) and not name.endswith(('.lock', '-part', '.tmp'))


def store_path(local_tmp, key):
    """The store directory for fingerprint key: a sibling of the run's local_tmp directory."""
    return os.path.join(os.path.dirname(local_tmp.rstrip(os.sep)), STORE_DIR, key)


def seed(local_tmp, key):
    """Link (or copy) the stored payloads of fingerprint key into the run's cache under
    local_tmp (ansible-core's DEFAULT_LOCAL_TMP of this process). Returns the file names
    seeded (list of str); [] when there is no usable store. Never raises OSError."""
    store = store_path(local_tmp, key)
    if not os.path.isdir(store) or not _private_dir(os.path.dirname(store)):
        return []
    run_cache = os.path.join(local_tmp, RUN_CACHE_DIR)
    seeded = []
    try:
        os.makedirs(run_cache, exist_ok=True)
        os.utime(store)  # most recently used: kept by the pruning
        names = os.listdir(store)
    except OSError:
        return []
    for name in sorted(names):
        if not _kept(name) or os.path.exists(os.path.join(run_cache, name)):
            continue
        src, dst = os.path.join(store, name), os.path.join(run_cache, name)
        try:
            try:
                os.link(src, dst)
            except OSError:
                shutil.copyfile(src, dst)
        except OSError:
            continue
        seeded.append(name)
    return seeded


def store(local_tmp, key, keep=KEEP):
    """Copy the run's finished payloads (of the kept modules) that the store of fingerprint key
    lacks into it (each written to a temporary name, then renamed). Prunes the store to the
    keep most recently used fingerprints. Returns the file names stored (list of str). Never
    raises OSError."""
    run_cache = os.path.join(local_tmp, RUN_CACHE_DIR)
    store_dir = store_path(local_tmp, key)
    try:
        names = sorted(n for n in os.listdir(run_cache) if _kept(n))
    except OSError:
        return []
    if not names or not _private_dir(os.path.dirname(store_dir)) or not _private_dir(store_dir):
        return []
    stored = []
    for name in names:
        dst = os.path.join(store_dir, name)
        if os.path.exists(dst):
            continue
        part = '%s.%d.tmp' % (dst, os.getpid())
        try:
            shutil.copyfile(os.path.join(run_cache, name), part)
            os.replace(part, dst)
        except OSError:
            try:
                os.unlink(part)
            except OSError:
                pass
            continue
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

# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""Small file helpers shared by the modules (and the verify_report action): reading a file
that may be missing, and writing one atomically so a reader (a CNI runtime, the pod's HTTP
server, a CI system reading a report) never sees half of it."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import tempfile


def read_text(path):
    """The file's text, or None when it cannot be read (missing, a directory, ...)."""
    try:
        with open(path) as f:
            return f.read()
    except (IOError, OSError):
        return None


def write_atomic(path, text, mode=0o644, makedirs=False):
    """Write text to a temporary file beside path, then rename it over path."""
    directory = os.path.dirname(path) or '.'
    if makedirs and not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix='.%s.' % os.path.basename(path))
    try:
        with os.fdopen(fd, 'w') as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise

# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""Offline stand-in for the get-pip bootstrap script that ansible-test downloads.

ansible-test creates each sanity test's virtualenv without pip and then runs
``get_pip_<version>.py`` from ``~/.ansible/test/cache/`` to put pip into it, downloading that
script when it is not cached. Here the download host is unreachable, so scripts/sanity.sh
places this file at that cache path instead. It installs pip from the wheel bundled with the
interpreter (ensurepip, no network) and then lets that pip install the exact packages
ansible-test asked for (``pip==X.Y``) from the package index.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess
import sys

# Options that belong to get-pip itself, not to ``pip install``.
GET_PIP_ONLY = ('--no-setuptools', '--no-wheel')


def main(argv):
    """Install pip into sys.prefix, then ``pip install`` the requested packages."""
    # ensurepip is imported here, so importing this file never has side effects.
    import ensurepip  # pylint: disable=import-outside-toplevel

    # ensurepip points PIP_CONFIG_FILE at /dev/null in os.environ; the second pip must see the
    # machine's pip configuration (index, certificates) again.
    env = dict(os.environ)
    ensurepip.bootstrap(upgrade=True, default_pip=True)
    args = [arg for arg in argv if arg not in GET_PIP_ONLY]
    return subprocess.call([sys.executable, '-m', 'pip', 'install', '--quiet'] + args, env=env)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))

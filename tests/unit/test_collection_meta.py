"""The collection's own metadata stays in step with its plugins.

- every module, connection and inventory plugin has its licence line in the sanity ignore file
  of each supported ansible-core (ansible-test sanity on an installed copy reads those files);
- meta/runtime.yml's action group names every module that acts on a node (verify_report is a
  controller-side action and stays out);
- requires_ansible matches the oldest ansible-core tested (requirements-oldest.txt).
"""

import glob
import os
import re

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SUPPORTED = ['2.17', '2.18', '2.19']
CONTROLLER_ONLY = {'verify_report'}


def plugin_files():
    out = []
    for kind in ('modules', 'connection', 'inventory', 'callback'):
        for path in sorted(glob.glob(os.path.join(ROOT, 'plugins', kind, '*.py'))):
            if os.path.basename(path) != '__init__.py':
                out.append(os.path.relpath(path, ROOT))
    return out


def test_ignore_files_cover_every_plugin():
    for version in SUPPORTED:
        path = os.path.join(ROOT, 'tests', 'sanity', 'ignore-%s.txt' % version)
        with open(path) as f:
            lines = f.read().splitlines()
        covered = {l.split()[0] for l in lines if 'validate-modules:missing-gplv3-license' in l}
        missing = [p for p in plugin_files() if p not in covered]
        assert not missing, 'add to %s: %s' % (path, missing)


def test_action_group_names_every_module():
    with open(os.path.join(ROOT, 'meta', 'runtime.yml')) as f:
        runtime = yaml.safe_load(f)
    modules = {os.path.basename(p)[:-3] for p in plugin_files() if p.startswith('plugins/modules/')}
    assert set(runtime['action_groups']['podnet']) == modules - CONTROLLER_ONLY


def test_requires_ansible_is_the_tested_oldest():
    with open(os.path.join(ROOT, 'meta', 'runtime.yml')) as f:
        runtime = yaml.safe_load(f)
    with open(os.path.join(ROOT, 'requirements-oldest.txt')) as f:
        oldest = re.search(r'ansible-core>=(\d+\.\d+)', f.read()).group(1)
    assert runtime['requires_ansible'] == '>=%s.0' % oldest

"""Backend traits as data (docs/backends.md): one traits file per backend, linked by its
inventory next to the shared topology, read by the plays and roles - never the backend's name.

Pure file checks, no root, no Ansible run (tests/integration/test_backends.py runs them).
"""

import glob
import ipaddress
import os
import re

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BACKENDS = sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(ROOT, 'backends', '*.yml')))
KEYS = {'become', 'nodes_tasks', 'node_name_max', 'install_packages', 'persist_sysctl',
        'nat_isolated', 'nat_address_shared', 'outside_ip', 'host_side', 'silence_wait'}


def load(*parts):
    with open(os.path.join(ROOT, *parts)) as f:
        return yaml.safe_load(f)


def test_the_three_backends_exist():
    assert BACKENDS == ['netns', 'ssh', 'vagrant']


@pytest.mark.parametrize('name', BACKENDS)
def test_traits_file_is_complete_plain_data(name):
    data = load('backends', name + '.yml')
    assert set(data) == {'lab_backend', 'lab_backend_traits'}
    assert data['lab_backend'] == name
    traits = data['lab_backend_traits']
    assert set(traits) == KEYS
    for key in ('become', 'install_packages', 'persist_sysctl', 'nat_isolated',
                'nat_address_shared'):
        assert isinstance(traits[key], bool), key
    assert isinstance(traits['node_name_max'], int) and 1 <= traits['node_name_max'] <= 63
    if traits['outside_ip']:
        ipaddress.ip_address(traits['outside_ip'])
    assert traits['host_side'] in ('netns', 'controller', '')
    assert isinstance(traits['silence_wait'], float) and 0 < traits['silence_wait'] <= 30
    if traits['nodes_tasks']:
        assert os.path.isfile(os.path.join(ROOT, 'backends', 'tasks', traits['nodes_tasks']))
    # Data only: no Jinja, so a traits file reads the same everywhere.
    with open(os.path.join(ROOT, 'backends', name + '.yml')) as f:
        assert '{{' not in f.read()


@pytest.mark.parametrize('name', BACKENDS)
def test_each_inventory_links_its_backend_and_the_shared_topology(name):
    gv = os.path.join(ROOT, 'inventories', name, 'group_vars', 'all')
    assert sorted(os.listdir(gv)) == ['backend.yml', 'lab.yml']
    assert os.path.realpath(os.path.join(gv, 'backend.yml')) == \
        os.path.join(os.path.realpath(ROOT), 'backends', name + '.yml')
    assert os.path.realpath(os.path.join(gv, 'lab.yml')) == \
        os.path.join(os.path.realpath(ROOT), 'inventories', 'topology.yml')
    # The group_vars directory itself is the inventory's own (no directory link).
    assert not os.path.islink(os.path.join(ROOT, 'inventories', name, 'group_vars'))


def test_every_inventory_is_a_backend():
    invs = sorted(d for d in os.listdir(os.path.join(ROOT, 'inventories'))
                  if os.path.isdir(os.path.join(ROOT, 'inventories', d)))
    assert invs == BACKENDS


def test_validate_play_checks_every_trait():
    pre = load('playbooks', 'validate.yml')[0]['pre_tasks'][0]
    assert set(pre['vars']['validate_trait_keys']) == KEYS


def test_docs_name_every_trait_and_backend():
    with open(os.path.join(ROOT, 'docs', 'backends.md')) as f:
        doc = f.read()
    for key in sorted(KEYS):
        assert re.search(r'^\| `%s` \|' % key, doc, re.M), key
    for name in BACKENDS:
        assert '`backends/%s.yml`' % name in doc


# A comparison of the backend's name: `lab_backend == ...`, `!=`, `in`, `is match`, maybe
# after a filter (`lab_backend | default('netns') != ...`).
COMPARISON = re.compile(r'lab_backend\b(?!_traits)[^}\n]*?'
                        r'(==|!=|\bin\b|\bis\s+(not\s+)?(match|search|regex|eq|equalto|sameas)\b)')


def test_no_play_or_role_compares_the_backend_name():
    files = [os.path.join(ROOT, 'site.yml')]
    for top in ('playbooks', 'roles', 'backends', 'molecule'):
        for base, _dirs, names in os.walk(os.path.join(ROOT, top)):
            files += [os.path.join(base, n) for n in names if n.endswith(('.yml', '.yaml'))]
    found = []
    for path in files:
        with open(path) as f:
            for number, line in enumerate(f, 1):
                if COMPARISON.search(line):
                    found.append('%s:%d: %s' % (os.path.relpath(path, ROOT), number, line.strip()))
    assert found == []


def test_the_comparison_pattern_catches_the_old_forms():
    for line in ["become: \"{{ lab_backend | default('netns') != 'netns' }}\"",
                 "when: lab_backend == 'netns'", "when: lab_backend in ['netns']",
                 "when: lab_backend is match('net')"]:
        assert COMPARISON.search(line), line
    for line in ['become: "{{ lab_backend_traits.become }}"',
                 'backend: "{{ lab_backend | default(\'\') }}"',
                 '- name: Make the nodes of backend {{ lab_backend }}',
                 '- lab_backend is defined and lab_backend is string']:
        assert not COMPARISON.search(line), line

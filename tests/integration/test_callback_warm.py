"""k8slab.podnet.warm: the collection's controller plugins imported once, in Ansible's main
process, so every task's worker inherits them instead of compiling them again
(docs/benchmark.md). Seen from inside a worker: an action plugin reports which of the
collection's modules the worker already had before it ran."""

import os
import re
import stat
import subprocess
import textwrap

import pytest

from conftest import BIN, ROOT, ansible_env, run_playbook

ACTION = textwrap.dedent('''
    import sys
    from ansible.plugins.action import ActionBase

    class ActionModule(ActionBase):
        def run(self, tmp=None, task_vars=None):
            loaded = sorted(m for m in sys.modules if m.startswith('ansible_collections.k8slab.'))
            return dict(changed=False, loaded=loaded)
''')

PLAY = '''
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: loaded
      kd_loaded:
    - name: a filter of the collection still works
      ansible.builtin.set_fact:
        kd_ip: "{{ '10.244.1.0/24' | k8slab.podnet.cidr_host(1) }}"
'''

WANTED = ['ansible_collections.k8slab.podnet.plugins.connection.netns',
          'ansible_collections.k8slab.podnet.plugins.plugin_utils.netns_warm',
          'ansible_collections.k8slab.podnet.plugins.filter.topology',
          'ansible_collections.k8slab.podnet.plugins.filter.verify']


@pytest.mark.parametrize('enabled', [True, False])
def test_workers_inherit_the_preloaded_plugins(enabled, tmp_path):
    (tmp_path / 'kd_loaded.py').write_text(ACTION)
    # The repository's ansible.cfg enables it; the other run has a configuration without it.
    (tmp_path / 'ansible.cfg').write_text('[defaults]\n')
    env = {'ANSIBLE_ACTION_PLUGINS': str(tmp_path)}
    if not enabled:
        env['ANSIBLE_CONFIG'] = str(tmp_path / 'ansible.cfg')
    res = run_playbook(PLAY, env=env)
    assert res.rc == 0, res
    loaded = res.task('loaded')['loaded']
    facts = res.task('a filter of the collection still works')['ansible_facts']
    assert facts['kd_ip'] == '10.244.1.1/24'
    if enabled:
        assert set(WANTED) <= set(loaded), loaded
    else:
        assert not set(WANTED) & set(loaded), loaded


# ---- the AnsiballZ payloads kept between runs -------------------------------------------------
PAYLOADS = '''
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: ping
      ansible.builtin.ping:
    - name: stat
      ansible.builtin.stat:
        path: /
'''


BOTH = ['ansible.modules.ping', 'ansible.modules.stat']


def _keys(local_tmp):
    """The fingerprint directories of the store under local_tmp (Ansible's local_tmp setting;
    each run's own directory is beside the store)."""
    return sorted(d for d in (local_tmp / 'k8slab-ansiballz').iterdir() if d.is_dir())


def _stored(local_tmp):
    """{module name: path} of the payloads in the store's one fingerprint directory."""
    keys = _keys(local_tmp)
    assert len(keys) == 1, keys
    return {p.name.split('-')[0]: p for p in keys[0].iterdir()}


def _built_and_reused(playbook, env):
    """Run the playbook file with ansible-core's debug log on (it goes to stdout, so not
    through run_playbook's JSON): (payloads built, payloads read from the cache), by module."""
    proc = subprocess.run([os.path.join(BIN, 'ansible-playbook'), '-i', 'localhost,',
                           str(playbook)],
                          cwd=ROOT, env=ansible_env(ANSIBLE_DEBUG='1',
                                                    ANSIBLE_STDOUT_CALLBACK='default', **env),
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    return (proc.stdout.count('ANSIBALLZ: Creating module'),
            sorted(set(re.findall(r'ANSIBALLZ: using cached module: \S*/(ansible\.modules\.\w+)',
                                  proc.stdout))))


def test_payloads_are_kept_between_runs(tmp_path):
    # A private local_tmp: the store sits in it, away from other runs'.
    local_tmp = tmp_path / 'local_tmp'
    env = {'ANSIBLE_LOCAL_TEMP': str(local_tmp)}
    first = run_playbook(PAYLOADS, env=env)
    assert first.rc == 0, first
    assert first.task('ping')['ping'] == 'pong'
    stored = _stored(local_tmp)
    assert sorted(stored) == ['ansible.modules.ping', 'ansible.modules.stat']
    assert stat.S_IMODE(stored['ansible.modules.ping'].parent.stat().st_mode) == 0o700
    # The next run builds nothing: ansible-core finds both payloads in its run's cache.
    playbook = tmp_path / 'payloads.yml'
    playbook.write_text(PAYLOADS)
    assert _built_and_reused(playbook, env) == (0, BOTH)
    # Switched off: each built afresh, as ansible-core does.
    assert _built_and_reused(playbook, dict(env, K8SLAB_ANSIBALLZ_CACHE='false')) == (2, [])


def test_own_module_utils_get_payloads_of_their_own(tmp_path):
    # module_utils/ beside a playbook or in a role can shadow ansible-core's (its basic.py,
    # say): a payload built without them must never serve a playbook with them.
    local_tmp = tmp_path / 'local_tmp'
    env = {'ANSIBLE_LOCAL_TEMP': str(local_tmp)}
    plain, own = tmp_path / 'plain', tmp_path / 'own'
    for project in (plain, own):
        project.mkdir()
        (project / 'site.yml').write_text(PAYLOADS)
    (own / 'module_utils').mkdir()
    (own / 'module_utils' / 'kd_helper.py').write_text('X = 1\n')
    assert _built_and_reused(plain / 'site.yml', env) == (2, [])
    assert _built_and_reused(own / 'site.yml', env) == (2, [])
    assert _built_and_reused(own / 'site.yml', env) == (0, BOTH)
    assert len(_keys(local_tmp)) == 2
    # A role's module_utils join the search path when its playbook is loaded, after the
    # playbooks before it ran: one run of plain, then a playbook with such a role - which
    # ansible-core serves the payloads the first built; they are not stored as the second's.
    role = plain / 'roles' / 'kd_role'
    (role / 'tasks').mkdir(parents=True)
    (role / 'module_utils').mkdir()
    (role / 'module_utils' / 'kd_helper.py').write_text('X = 1\n')
    (role / 'tasks' / 'main.yml').write_text('- ansible.builtin.ping:\n- ansible.builtin.stat:\n'
                                             '    path: /\n')
    (plain / 'role.yml').write_text('- hosts: localhost\n  connection: local\n'
                                    '  gather_facts: false\n  roles: [kd_role]\n')
    both = run_playbook(str(plain / 'site.yml'), env=env, args=(str(plain / 'role.yml'),))
    assert both.rc == 0, both
    assert len(_keys(local_tmp)) == 2
    assert _built_and_reused(plain / 'role.yml', env) == (2, [])
    assert _built_and_reused(plain / 'role.yml', env) == (0, BOTH)

"""k8slab.podnet.warm: the collection's controller plugins imported once, in Ansible's main
process, so every task's worker inherits them instead of compiling them again
(docs/benchmark.md). Seen from inside a worker: an action plugin reports which of the
collection's modules the worker already had before it ran."""

import textwrap

import pytest

from conftest import run_playbook

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

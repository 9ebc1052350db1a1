"""k8slab.podnet.linear: the linear strategy with the collection's controller plugins imported
once, in the strategy's process, so every task's worker inherits them instead of compiling
them again (docs/benchmark.md). Seen from inside a worker: an action plugin reports which of
the collection's modules the worker already had before it ran."""

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
  strategy: %s
  tasks:
    - name: loaded
      kd_loaded:
    - name: a filter of the collection still works
      ansible.builtin.set_fact:
        kd_ip: "{{ '10.244.1.0/24' | k8slab.podnet.cidr_host(1) }}"
'''


@pytest.mark.parametrize('strategy', ['k8slab.podnet.linear', 'ansible.builtin.linear'])
def test_workers_inherit_the_preloaded_plugins(strategy, tmp_path):
    (tmp_path / 'kd_loaded.py').write_text(ACTION)
    res = run_playbook(PLAY % strategy, env={'ANSIBLE_ACTION_PLUGINS': str(tmp_path)})
    assert res.rc == 0, res
    loaded = res.task('loaded')['loaded']
    facts = res.task('a filter of the collection still works')['ansible_facts']
    assert facts['kd_ip'] == '10.244.1.1/24'
    wanted = ['ansible_collections.k8slab.podnet.plugins.connection.netns',
              'ansible_collections.k8slab.podnet.plugins.plugin_utils.netns_warm',
              'ansible_collections.k8slab.podnet.plugins.filter.topology',
              'ansible_collections.k8slab.podnet.plugins.filter.verify']
    if strategy == 'k8slab.podnet.linear':
        assert set(wanted) <= set(loaded), loaded
    else:
        assert not set(wanted) & set(loaded), loaded

"""k8slab.podnet.verify_report on the controller: results read from where the hosts registered
their probe runs (option registered), merged with the results given directly."""

import json

from conftest import run_playbook

PLAY = '''
- hosts: all
  connection: local
  gather_facts: false
  tasks:
    - name: each host's probe run, as the probe task registers it (kr-c has none)
      ansible.builtin.set_fact:
        kr_probed:
          results:
            - name: reach from {{ inventory_hostname }}
              passed: "{{ inventory_hostname == 'kr-a' }}"
              expected: reply
              observed: "{{ 'reply' if inventory_hostname == 'kr-a' else 'no reply' }}"
      when: inventory_hostname != 'kr-c'

    - name: report
      k8slab.podnet.verify_report:
        checks:
          - {name: reach from kr-a, kind: reach, source: kr-a, node: kr-a, to: 10.0.0.1,
             target: 10.0.0.1}
          - {name: reach from kr-b, kind: reach, source: kr-b, node: kr-b, to: 10.0.0.1,
             target: 10.0.0.1}
          - {name: reach from kr-c, kind: reach, source: kr-c, node: kr-c, to: 10.0.0.1,
             target: 10.0.0.1}
          - {name: reach from host, kind: reach, source: host, node: host, to: 10.0.0.1,
             target: 10.0.0.1}
        registered:
          var: kr_probed
          hosts: [kr-a, kr-b, kr-c]
        results:
          - {name: reach from host, passed: true, expected: reply, observed: reply}
        dest: "{{ kr_dest }}"
        fail: false
      run_once: true
'''


def test_registered_results_are_read_from_the_hosts(tmp_path):
    res = run_playbook(PLAY, inventory='kr-a,kr-b,kr-c,', extra_vars={'kr_dest': str(tmp_path)})
    assert res.rc == 0, res
    report = res.task('report', 'kr-a')
    assert report['failed_checks'] == ['reach from kr-b', 'reach from kr-c'], report
    with open(report['report']) as f:
        rows = {r['name']: r for r in json.load(f)['results']}
    assert rows['reach from kr-a']['observed'] == 'reply'
    assert rows['reach from kr-b']['observed'] == 'no reply'
    assert rows['reach from kr-c']['observed'] == 'not probed'  # registered nothing
    assert rows['reach from host']['passed'] is True


def test_registered_without_hosts_names_the_option_and_writes_nothing(tmp_path):
    play = '''
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: report
      k8slab.podnet.verify_report:
        checks: []
        registered: {var: kr_probed}
        dest: "{{ kr_dest }}"
'''
    res = run_playbook(play, extra_vars={'kr_dest': str(tmp_path / 'reports')})
    assert res.rc != 0
    failed = res.task('report', 'localhost')
    assert failed['failed'] and 'hosts' in failed['msg'] and 'registered' in failed['msg'], failed
    assert not (tmp_path / 'reports').exists()

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


PLAN_PLAY = '''
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    # A play variable still holds its template: read through the templar.
    kr_plan_templated: "{{ kr_plan }}"
  tasks:
    - name: the plan, as set_fact stores what the verify_plan filter made
      ansible.builtin.set_fact:
        kr_plan:
          checks:
            - {name: reach from kr-a, kind: reach, source: kr-a, node: kr-a, to: 10.0.0.1,
               target: 10.0.0.1}
          probes: {kr-a: [{name: reach from kr-a, kind: reach, target: 10.0.0.1}]}
        kr_not_a_plan: {checks: 3}

    - name: report from the fact
      k8slab.podnet.verify_report:
        plan: {var: kr_plan}
        results: [{name: reach from kr-a, passed: true, expected: reply, observed: reply}]
        dest: "{{ kr_dest }}/fact"

    - name: report from the play variable
      k8slab.podnet.verify_report:
        plan: {var: kr_plan_templated}
        dest: "{{ kr_dest }}/play"
        fail: false

    - name: bad inputs
      k8slab.podnet.verify_report: "{{ item.1 | combine({'dest': kr_dest ~ '/bad'}) }}"
      ignore_errors: true
      register: kr_bad
      loop:
        - [missing, {plan: {var: kr_nowhere}}]
        - [not a plan, {plan: {var: kr_not_a_plan}}]
        - [both, {plan: {var: kr_plan}, checks: []}]
        - [neither, {}]
'''


def test_checks_are_read_from_a_plan_variable(tmp_path):
    res = run_playbook(PLAN_PLAY, extra_vars={'kr_dest': str(tmp_path)})
    assert res.rc == 0, res
    fact = res.task('report from the fact', 'localhost')
    assert fact['checks'] == 1 and fact['failed_checks'] == [], fact
    play = res.task('report from the play variable', 'localhost')
    assert play['checks'] == 1 and play['failed_checks'] == ['reach from kr-a'], play
    bad = dict((r['item'][0], r['msg']) for r in res.task('bad inputs', 'localhost')['results'])
    assert "plan.var 'kr_nowhere': no such variable" in bad['missing'], bad
    assert "plan.var 'kr_not_a_plan' is not a plan" in bad['not a plan'], bad
    assert 'mutually exclusive: checks|plan' in bad['both'], bad
    assert 'one of the following is required: checks, plan' in bad['neither'], bad
    assert not (tmp_path / 'bad').exists()


def test_registered_results_from_aliases_loops_and_unknown_hosts(tmp_path):
    # kr-b's variable kr_alias holds a template (inventory), kr-c registered a looped task,
    # kr-ghost is in no inventory; the plan's check names hold a template.
    inventory = tmp_path / 'hosts.yml'
    inventory.write_text(
        'all:\n  hosts:\n    kr-a: {}\n    kr-b: {kr_alias: "{{ kr_probed }}"}\n    kr-c: {}\n')
    play = '''
- hosts: all
  connection: local
  gather_facts: false
  tasks:
    - name: probe runs
      ansible.builtin.set_fact:
        kr_probed: {results: [{name: "reach from {{ inventory_hostname }}", passed: true}]}
    - name: a looped run
      ansible.builtin.set_fact:
        kr_looped: {results: [{item: 1, results: [{name: reach from kr-c, passed: true}]}]}
      when: inventory_hostname == 'kr-c'
    - name: report
      k8slab.podnet.verify_report:
        plan: {var: kr_plan_raw}
        registered: {var: "{{ item }}", hosts: [kr-a, kr-b, kr-c, kr-ghost]}
        dest: "{{ kr_dest }}/{{ item }}"
        fail: false
      vars:
        kr_name: reach from
        kr_plan_raw:
          checks: ["{{ {'name': kr_name ~ ' kr-a', 'kind': 'reach', 'source': 'kr-a', 'node': 'kr-a', 'to': 'x', 'target': 'x'} }}",
                   {name: "{{ kr_name }} kr-b", kind: reach, source: kr-b, node: kr-b, to: x, target: x},
                   {name: "{{ kr_name }} kr-c", kind: reach, source: kr-c, node: kr-c, to: x, target: x}]
          probes: {}
      loop: [kr_alias, kr_looped]
      run_once: true
'''
    res = run_playbook(play, inventory=str(inventory), extra_vars={'kr_dest': str(tmp_path)})
    assert res.rc == 0, res
    by_var = dict((r['item'], r) for r in res.task('report', 'kr-a')['results'])
    # The template in the checks' names was rendered; kr-b's alias was read templated.
    assert by_var['kr_alias']['checks'] == 3, by_var
    assert by_var['kr_alias']['failed_checks'] == ['reach from kr-a', 'reach from kr-c'], by_var
    # The looped registration gave its item's results; kr-ghost added none.
    assert by_var['kr_looped']['failed_checks'] == ['reach from kr-a', 'reach from kr-b'], by_var

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: verify_report
short_description: Report verification results - one table, JSON and JUnit XML files, failure
version_added: 0.1.0
description:
  - Merges the results of M(k8slab.podnet.probe) runs into the checks they came from, prints
    one table (check, source, target, expected, observed, result), writes C(verify.json) and
    C(verify.xml) (JUnit, one test case per check) into O(dest) on the controller, and fails
    naming every failed check with its expected and observed result.
  - A check without a result fails as C(not probed) with the reason - its target could not be
    resolved, or its node did not answer.
  - Runs entirely on the controller (an action plugin), in milliseconds.
author: k8slab.podnet developers (@k8slab)
options:
  checks:
    description:
      - The checks, as the C(k8slab.podnet.verify_checks) filter makes them (name, kind, source,
        to, target and the expectation).
      - Exactly one of O(checks) and O(plan).
    type: list
    elements: dict
  plan:
    description:
      - Take the checks from a plan instead - the C(checks) of the C(k8slab.podnet.verify_plan)
        filter's output, which the variable O(plan.var) of the host the task runs for holds (as
        O(k8slab.podnet.probe#module:plan) does for probes). Read as
        it is, not templated again as O(checks) would be (3475 checks of a 10x20 lab, ~0.2 s).
    type: dict
    suboptions:
      var: {description: Name of the variable holding the plan., type: str, required: true}
  results:
    description: The C(results) of every node's M(k8slab.podnet.probe) run, in one list.
    type: list
    elements: dict
    default: []
  registered:
    description:
      - Where the hosts registered their M(k8slab.podnet.probe) runs, read from their variables
        on the controller as they are (not templated); their C(results) come before O(results). Unlike a
        template that gathers them into O(results), this skips Ansible's templating of every
        result (10 nodes x 20 pods, 3475 results - about 0.5 s).
      - A host without the variable, or whose probe task was skipped, adds no results.
    type: dict
    suboptions:
      var:
        description: The variable's name (the probe task's C(register)).
        type: str
        required: true
      hosts:
        description: The hosts, by inventory name.
        type: list
        elements: str
        required: true
  dest:
    description:
      - Directory on the controller for the reports; created if missing. They go to
        C(<dest>/<lab>/verify.json) and C(verify.xml), the lab being O(info)'s C(lab) (without a
        lab, into O(dest) itself). A run of some kinds only (O(info)'s C(kinds)) or some checks only
        (O(info)'s C(only), a name pattern) writes C(verify-<kinds>[-only-<hash>].json) instead,
        so it never overwrites the full report.
      - A relative path is relative to the directory C(ansible-playbook) runs in.
    type: path
    required: true
  info:
    description:
      - Extra top-level fields of the JSON report, for example the lab's name. C(lab), C(kinds)
        and C(only) also name the report files (see O(dest)).
    type: dict
    default: {}
  table_width:
    description:
      - The table's width in characters. Long cells wrap; when the table would be wider, the
        source and target columns (which the check's name holds) are left out. C(0) means the
        environment's C(COLUMNS), else 100, less the 8 columns the result is indented by.
    type: int
    default: 0
  fail:
    description: Fail when a check failed. With C(false) the report is only written and shown.
    type: bool
    default: true
extends_documentation_fragment:
  - k8slab.podnet.attributes
attributes:
  action:
    support: full
    description: Runs on the controller as an action plugin.
  check_mode:
    support: full
    description: The report is output, not managed state, so it is written in check mode too.
  diff_mode:
    support: none
    description: Reports are not compared.
  platform:
    support: full
    platforms: posix
    description: Writes files on the controller only.
seealso:
  - module: k8slab.podnet.probe
'''

EXAMPLES = r'''
- name: Report on the controller
  k8slab.podnet.verify_report:
    checks: "{{ my_checks }}"
    results: "{{ groups['k8s_cluster'] | map('extract', hostvars, ['probed', 'results']) | flatten(levels=1) }}"
    dest: "{{ playbook_dir }}/reports"
    info:
      lab: "{{ lab_name }}"
  run_once: true

- name: The same, the checks read from a plan and the results from where each host registered them
  k8slab.podnet.verify_report:
    plan:
      var: my_plan  # set_fact: my_plan: "{{ my_lab | k8slab.podnet.verify_plan }}"
    registered:
      var: probed
      hosts: "{{ groups['k8s_cluster'] }}"
    dest: "{{ playbook_dir }}/reports"
  run_once: true
'''

RETURN = r'''
table:
  description: The table's lines - a header, one line per check and a summary line.
  returned: always
  type: list
  elements: str
  sample:
    - "check                         source        target          expected       observed       result"
    - "path controlplane -> node-1   controlplane  192.168.56.11   192.168.56.11  192.168.56.11  PASS"
    - "1 checks: 1 passed, 0 failed"
report:
  description: Path of the JSON report (lab info, counts, and one record per check).
  returned: always
  type: str
  sample: /home/me/k8slab/reports/k8slab/verify.json
junit:
  description: Path of the JUnit XML report.
  returned: always
  type: str
  sample: /home/me/k8slab/reports/k8slab/verify.xml
checks:
  description: How many checks were reported.
  returned: always
  type: int
  sample: 57
failed_checks:
  description: Names of the failed checks.
  returned: always
  type: list
  elements: str
  sample: []
'''

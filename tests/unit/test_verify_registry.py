"""The registry of check kinds (plugins/plugin_utils/verify_registry.py and the kinds of
module_utils/probe.py): a kind registered once appears in selection, tags, the probes, the
plan and the report; both halves of every kind exist; the plan is built once and linearly.
Pure logic, no root."""

import os
import sys
import time

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, '.collections'))

from ansible_collections.k8slab.podnet.plugins.module_utils import probe as mprobe  # noqa: E402
from ansible_collections.k8slab.podnet.plugins.plugin_utils import verify as v  # noqa: E402
from ansible_collections.k8slab.podnet.plugins.plugin_utils import verify_registry as reg  # noqa: E402

NODES = {
    'node-1': {'eth1_ip': '192.168.56.11', 'pod_cidr': '10.244.1.0/24'},
    'node-2': {'eth1_ip': '192.168.56.12', 'pod_cidr': '10.244.2.0/24'},
}
LAB = dict(nodes=NODES, node_order=['node-1', 'node-2'],
           pods=[{'name': 'a', 'node': 'node-1'}, {'name': 'b', 'node': 'node-2'}])
FACTS = {'node-1': {'ipam': {'10.244.1.2': {'container_id': 'a'}}},
         'node-2': {'ipam': {'10.244.2.2': {'container_id': 'b'}}}}


@pytest.fixture
def toy():
    """A kind 'toy' (tag 'friendly') registered once on each side, then removed again."""
    @reg.register
    class Toy(reg.Kind):
        name = 'toy'
        tags = ('friendly',)
        keys = ('dev', 'colour')
        addressed = False

        def checks(self, lab, opts):
            for x in lab.order:
                yield lab.check('toy %s' % x, self.name, x, 'eth1', dev='eth1', colour='blue')

    @mprobe.register
    class ToyProbe(mprobe.Kind):
        name = 'toy'
        needs_target = False

        def expected(self, p):
            return 'colour %s' % p.get('colour')

        def judge(self, p, observed):
            return observed.get('colour') == p['colour'], self.expected(p), \
                'colour %s' % observed.get('colour'), ''
    try:
        yield Toy
    finally:
        del reg.KINDS['toy']
        del mprobe.PROBES['toy']


def test_a_kind_registered_once_is_everywhere(toy):
    assert 'toy' in v.kind_names() and v.kind_tags()['friendly'] == ['toy']
    # selection by verify_kinds, by its own tag, by a further tag; skipped by tag
    assert v.wanted_kinds(['toy']) == ['toy']
    assert v.wanted_kinds(None, ['toy']) == ['toy']
    assert v.wanted_kinds(None, ['friendly', 'path']) == ['path', 'toy']
    assert 'toy' not in v.wanted_kinds(None, ['all'], ['friendly'])
    plan = v.plan(LAB, FACTS, kinds=v.wanted_kinds(None, ['toy']))
    assert [c['name'] for c in plan['checks']] == ['toy node-1', 'toy node-2']
    assert plan['probes']['node-2'] == [dict(name='toy node-2', kind='toy', dev='eth1',
                                             colour='blue')]
    # the module side judges it; the report, table and JUnit show it
    assert mprobe.evaluate(plan['probes']['node-2'][0], dict(colour='blue'))[0]
    rows = v.report(plan['checks'], [dict(name='toy node-1', passed=True,
                                          expected='colour blue', observed='colour blue')])
    assert rows[0]['passed'] and rows[1]['expected'] == 'colour blue' and not rows[1]['passed']
    table = v.table(rows)
    assert 'by kind (passed/checks): toy 1/2' in table
    assert 'classname="verify.toy"' in v.junit(rows)
    # hand-written checks of the new kind are accepted too
    extra = v.checks(LAB, FACTS, extra=[dict(name='mine', kind='toy', source='node-1',
                                             dev='eth1', colour='red')])
    assert extra[-1]['colour'] == 'red'


def test_registering_a_kind_twice_is_refused():
    with pytest.raises(ValueError, match='twice'):
        @reg.register
        class Path(reg.Kind):  # pylint: disable=unused-variable
            name = 'path'


def test_every_kind_has_both_halves_and_is_documented():
    assert set(reg.KINDS) == set(mprobe.PROBES)
    assert not hasattr(mprobe, 'KINDS')
    with open(os.path.join(ROOT, 'plugins/modules/probe.py')) as f:
        src = f.read()
    doc = yaml.safe_load(src.split("DOCUMENTATION = r'''", 1)[1].split("'''", 1)[0])
    kind = doc['options']['probes']['suboptions']['kind']
    assert sorted(kind['choices']) == sorted(reg.KINDS)
    # every expectation key a kind hands to the probe is a documented probe option
    for k in reg.KINDS.values():
        assert set(k.keys) <= set(doc['options']['probes']['suboptions']), k.name
    with open(os.path.join(ROOT, 'docs/verification.md')) as f:
        docs = f.read()
    assert all('`%s`' % name in docs for name in reg.KINDS)


@pytest.mark.parametrize('run,skip,want', [
    ([], [], list(reg.KINDS)),
    (['all'], [], list(reg.KINDS)),
    (['verify'], [], list(reg.KINDS)),
    (['verify', 'path'], [], ['path']),
    (['pods'], [], []),            # a run about another role: verification stays quiet
    (['all'], ['verify'], []),
    (['all'], ['mtu', 'http'], [k for k in reg.KINDS if k not in ('mtu', 'http')]),
])
def test_tags_select_kinds(run, skip, want):
    assert v.wanted_kinds([], run, skip) == want


def test_unknown_kind_in_verify_kinds_is_refused():
    with pytest.raises(v.VerifyError, match="ping not one of the check kinds"):
        v.wanted_kinds(['ping'])


def test_plan_of_a_big_lab_is_built_once_and_fast():
    # 12 nodes x 20 pods (issue 14's lab): the whole plan in well under a second.
    nodes = dict(('n%d' % i, {'eth1_ip': '192.168.56.%d' % (10 + i),
                              'pod_cidr': '10.244.%d.0/24' % i}) for i in range(12))
    pods = [dict(name='p%d-%d' % (i, j), node='n%d' % i, workload='httpd' if j == 0 else 'sleep')
            for i in range(12) for j in range(20)]
    facts = dict(('n%d' % i, {'ipam': dict(('10.244.%d.%d' % (i, j + 2),
                                            {'container_id': 'p%d-%d' % (i, j)})
                                           for j in range(20))}) for i in range(12))
    start = time.monotonic()
    plan = v.plan(dict(nodes=nodes, pods=pods, cni_mtu=1500), facts,
                  dict(outside_ip='203.0.113.1'))
    took = time.monotonic() - start
    assert took < 1.0, took
    assert sum(len(p) for p in plan['probes'].values()) == len(plan['checks'])
    names = dict((c['name'], c['node']) for c in plan['checks'])
    assert all(names[p['name']] == n for n, ps in plan['probes'].items() for p in ps)


def test_read_plan_takes_a_plan_as_it_is_and_templates_anything_else():
    plan = dict(checks=[dict(name='a')], probes={'node-1': [dict(name='a')]})
    templated = []

    def template(value):
        templated.append(value)
        if value == '{{ the_plan }}':
            return plan
        if value == [dict(name='{{ x }}')]:
            return [dict(name='b')]
        return value
    checks = v.read_plan({'p': plan}, 'p', lambda p: p['checks'], template)
    assert checks is plan['checks'] and templated == []
    assert v.read_plan({'p': '{{ the_plan }}'}, 'p', lambda p: p['probes'], template) == \
        plan['probes']
    # A template inside the picked part is rendered, as it would be as an argument.
    nested = dict(checks=[dict(name='{{ x }}')], probes={})
    assert v.read_plan({'p': nested}, 'p', lambda p: p['checks'], template) == [dict(name='b')]
    for task_vars, var, msg in [({}, 'p', "plan.var 'p': no such variable"),
                                ({'p': {'checks': 'x', 'probes': {}}}, 'p',
                                 "'p' is not a plan .*got dict"),
                                ({'p': None}, 'p', "'p' is not a plan .*got null"),
                                ({'p': plan}, '', 'plan.var must name a variable')]:
        with pytest.raises(v.VerifyError, match=msg):
            v.read_plan(task_vars, var, lambda p: p, template)


def test_registered_reads_results_in_host_order_and_skips_what_is_not_there():
    class HostVars(dict):  # what registered() uses of Ansible's HostVars: in, [], raw_get
        def raw_get(self, host):
            return self[host]
    data = {'b': {'probed': {'results': [{'name': 2}, {'name': 3}]}},
            'a': {'probed': {'results': [{'name': 1}]}},
            'c': {'probed': {'skipped': True}}, 'd': {},
            # a looped task's registration: each item's results
            'e': {'probed': {'results': [{'item': 1, 'results': [{'name': 4}]},
                                         {'item': 2, 'results': [{'name': 5}]}]}}}
    names = [r['name'] for r in v.registered(HostVars(data), 'probed',
                                             ['a', 'b', 'c', 'd', 'nowhere', 'e'])]
    assert names == [1, 2, 3, 4, 5]
    assert [r['name'] for r in v.registered(data, 'probed', ['b', 'a'])] == [2, 3, 1]
    with pytest.raises(v.VerifyError, match="registered.var 'probed' holds a result that is not"):
        v.registered({'x': {'probed': {'results': [{'passed': True}]}}}, 'probed', ['x'])

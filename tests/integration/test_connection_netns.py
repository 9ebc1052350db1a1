"""The k8slab.podnet.netns connection plugin against a real one-node lab (needs root).

The node is made with the lab's own module (mount + UTS namespace) and k8slab.podnet.netns,
without the lab's wiring, so these tests are quick. Every task must run inside the node: its
network namespace, its private /run/netns, /etc/cni, ... and its host name; files go to and
come from paths only the node sees, with and without pipelining.
"""

import json
import os
import secrets
import tempfile

import pytest

from conftest import ipj, run_playbook, sh

NODE = 'kdnode'


@pytest.fixture(scope='module')
def node():
    lab = 'kd' + secrets.token_hex(2)
    inv = tempfile.NamedTemporaryFile('w', suffix='.yml', prefix='kd-inv-', delete=False)
    inv.write(json.dumps({'all': {
        'vars': {'lab_name': lab},
        'children': {'k8s_cluster': {
            'vars': {'ansible_connection': 'k8slab.podnet.netns',
                     'ansible_python_interpreter': '{{ ansible_playbook_python }}'},
            'hosts': {NODE: {}, 'kdmissing': {}}}}}}))
    inv.close()
    build = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: node
      k8slab.podnet.netns_lab_nodes: {lab: %s, nodes: [%s], namespaces: [%s-%s], state: %%s}
    - name: netns
      k8slab.podnet.netns: {name: [%s-%s]}
      when: "'%%s' == 'present'"
""" % (lab, NODE, lab, NODE, lab, NODE)
    try:
        res = run_playbook(build % ('present', 'present'))
        assert res.rc == 0, res
        yield {'lab': lab, 'inventory': inv.name}
    finally:
        res = run_playbook(build % ('absent', 'absent'))
        os.unlink(inv.name)
        assert res.rc == 0, res
        assert not os.path.exists('/run/k8slab/%s' % lab)
        assert '%s-%s' % (lab, NODE) not in [n['name'] for n in ipj('netns list')]


def play(node, tasks, hosts=NODE, env=None):
    text = '- hosts: %s\n  gather_facts: false\n  tasks:\n' % hosts + tasks
    return run_playbook(text, inventory=node['inventory'], env=env)


@pytest.mark.parametrize('pipelining', ['True', 'False'])
def test_tasks_and_files_live_inside_the_node(node, pipelining, tmp_path):
    lab = node['lab']
    pod = 'kdpod-' + pipelining.lower()
    (tmp_path / 'subnet.env.j2').write_text('NODE={{ inventory_hostname }}\n')
    res = play(node, """
    - name: pod
      ansible.builtin.command: ip netns add %s
    - name: who
      ansible.builtin.command: sh -c 'hostname; ip -j link show; ls /run/netns'
      changed_when: false
    - name: dir
      ansible.builtin.file: {path: /etc/cni/net.d, state: directory, mode: "0755"}
    - name: copy
      ansible.builtin.copy: {dest: /etc/cni/net.d/10-kd.conflist, content: "{\\"name\\": \\"cbr0\\"}\\n", mode: "0644"}
    - name: template
      ansible.builtin.template: {src: %s, dest: /run/flannel/subnet.env, mode: "0644"}
    - name: fetch
      ansible.builtin.fetch: {src: /run/flannel/subnet.env, dest: %s/, flat: true}
""" % (pod, tmp_path / 'subnet.env.j2', tmp_path), env={'ANSIBLE_PIPELINING': pipelining})
    assert res.rc == 0, res
    out = res.task('who', NODE)['stdout'].splitlines()
    assert out[0] == NODE                                        # its UTS namespace
    assert [l['ifname'] for l in json.loads(out[1])] == ['lo']   # its network namespace
    assert pod in out[2:]                                        # its /run/netns
    # the pod and the files exist for the node only
    assert pod not in [n['name'] for n in ipj('netns list')]
    assert not os.path.exists('/etc/cni/net.d/10-kd.conflist')
    enter = 'nsenter --mount=/run/k8slab/%s/mnt/%s ' % (lab, NODE)
    assert pod in sh(enter + 'ip netns list')
    assert sh(enter + 'cat /etc/cni/net.d/10-kd.conflist') == '{"name": "cbr0"}\n'
    assert (tmp_path / 'subnet.env').read_text() == 'NODE=%s\n' % NODE
    # the node's files are the ones kept for it under /run/k8slab/<lab>/nodes/<node>/
    assert open('/run/k8slab/%s/nodes/%s/run/flannel/subnet.env' % (lab, NODE)).read() \
        == 'NODE=%s\n' % NODE


def test_rerun_of_file_tasks_changes_nothing(node):
    tasks = """
    - name: copy
      ansible.builtin.copy: {dest: /run/podnet/kd.txt, content: "same\\n", mode: "0644"}
"""
    assert play(node, tasks).rc == 0
    res = play(node, tasks)
    assert res.rc == 0 and res.changed == 0, res


def test_fetch_of_a_missing_file_fails_cleanly(node, tmp_path):
    res = play(node, """
    - name: fetch
      ansible.builtin.fetch: {src: /etc/cni/net.d/none.conf, dest: %s/, flat: true, fail_on_missing: true}
""" % tmp_path)
    assert res.rc != 0
    assert list(tmp_path.iterdir()) == []


def test_a_missing_node_is_unreachable_with_a_hint(node):
    res = play(node, """
    - name: ping
      ansible.builtin.ping:
""", hosts='kdmissing')
    result = res.task('ping', 'kdmissing')
    assert result.get('unreachable') is True, result
    assert 'run playbooks/netns_lab_up.yml first' in result['msg'], result
    assert "'kdmissing'" in result['msg'], result

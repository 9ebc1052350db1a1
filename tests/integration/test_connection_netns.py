"""The k8slab.podnet.netns connection plugin against a real one-node lab (needs root).

The node is made with the lab's own module (mount + UTS namespace) and k8slab.podnet.netns,
without the lab's wiring, so these tests are quick. Every task must run inside the node: its
network namespace, its private /run/netns, /etc/cni, ... and its host name; files go to and
come from paths only the node sees, with and without pipelining.

The warm path (the lab's module server, on by default) must give what the nsenter path gives:
tasks run once with K8SLAB_WARM=false and once warm, and their results compared; a module that
exits, raises, segfaults or hangs costs its task only; the server exits when idle and with the
lab.
"""

import glob
import json
import os
import secrets
import shutil
import signal
import stat
import tempfile
import time

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
        # teardown stopped the warm server, and nothing of it is left
        assert server_pids(lab) == [], server_pids(lab)
        assert '%s-%s' % (lab, NODE) not in [n['name'] for n in ipj('netns list')]


def play(node, tasks, hosts=NODE, env=None, args=()):
    text = '- hosts: %s\n  gather_facts: false\n  tasks:\n' % hosts + tasks
    return run_playbook(text, inventory=node['inventory'], env=env, args=args)


def server_pids(lab):
    """PIDs of the warm servers of lab, found by their command line (not their pidfile)."""
    pids = []
    for entry in os.listdir('/proc'):
        try:
            with open('/proc/%s/cmdline' % entry, 'rb') as f:
                argv = f.read().split(b'\0')
        except (OSError, ValueError):
            continue
        if any(a.endswith(b'netns_warm.py') for a in argv) \
                and ('/run/k8slab/%s/' % lab).encode() in b' '.join(argv):
            pids.append(int(entry))
    return pids


def stop_servers(lab):
    for pid in server_pids(lab):
        os.kill(pid, signal.SIGTERM)
    for _attempt in range(100):
        if not server_pids(lab):
            return
        time.sleep(0.05)
    raise AssertionError('warm server of %s did not stop' % lab)


def in_netns(netns):
    """PIDs of processes in the named network namespace."""
    ino = os.stat('/run/netns/' + netns).st_ino
    pids = []
    for entry in os.listdir('/proc'):
        try:
            if entry.isdigit() and os.stat('/proc/%s/ns/net' % entry).st_ino == ino:
                pids.append(int(entry))
        except OSError:
            pass
    return pids


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


# ---- the warm path --------------------------------------------------------------------------
TEXT = 'grüße ✓ 日本'
SAME_TASKS = """
    - name: cmd
      ansible.builtin.command: sh -c 'hostname; ip -j link show; ls /run/netns; pwd; echo "$1"' sh "%(text)s"
      changed_when: false
    - name: ping
      ansible.builtin.ping: {data: "%(text)s"}
    - name: env
      ansible.builtin.command: sh -c 'echo "$KD_VAR"'
      environment: {KD_VAR: "%(text)s 'q' $x"}
      changed_when: false
    - name: check-diff
      ansible.builtin.copy: {dest: /run/podnet/%(mode)s.txt, content: "%(text)s\n", mode: "0644"}
      check_mode: true
      diff: true
    - name: write
      ansible.builtin.copy: {dest: /run/podnet/%(mode)s.txt, content: "%(text)s\n", mode: "0644"}
      diff: true
    - name: rewrite
      ansible.builtin.copy: {dest: /run/podnet/%(mode)s.txt, content: "%(text)s\n", mode: "0644"}
    - name: stat
      ansible.builtin.stat: {path: /run/podnet/%(mode)s.txt, get_checksum: true}
    - name: rc
      ansible.builtin.command: sh -c 'echo out; echo err >&2; exit 3'
      ignore_errors: true
    - name: bad-arg
      ansible.builtin.file: {path: /run/podnet/x, state: nonsense}
      ignore_errors: true
    - name: shell
      ansible.builtin.shell: echo "$0" | tr a-z A-Z
      changed_when: false
    - name: raw
      ansible.builtin.raw: hostname
      changed_when: false
"""
VOLATILE = ('start', 'end', 'delta', 'mtime', 'atime', 'ctime', 'inode', '_ansible_no_log',
            'src', '_original_basename', 'version')  # copy's temp source; inode generation


def normalized(result, mode):
    """A task result without what differs between two runs (times, inodes, the file name)."""
    text = json.dumps(result, sort_keys=True, ensure_ascii=False).replace(mode, 'MODE')
    data = json.loads(text)

    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if k not in VOLATILE}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value
    return clean(data)


def test_warm_path_gives_the_results_of_the_nsenter_path(node):
    lab = node['lab']
    stop_servers(lab)
    results = {}
    for mode, warm in (('cold', 'false'), ('warm', 'true')):
        res = play(node, SAME_TASKS % {'text': TEXT, 'mode': mode},
                   env={'K8SLAB_WARM': warm})
        assert res.rc == 0, res
        results[mode] = [normalized(t, mode) for t in res.tasks(NODE)]
        # the cold run starts no server, the warm one does (and it serves every module task)
        assert bool(server_pids(lab)) == (warm == 'true'), (mode, server_pids(lab))
    assert [t['task'] for t in results['warm']] == [t['task'] for t in results['cold']]
    for cold, warm in zip(results['cold'], results['warm']):
        if warm != cold:
            diff = {k: (cold.get(k), warm.get(k)) for k in set(cold) | set(warm)
                    if cold.get(k) != warm.get(k)}
            if 'stat' in diff:
                diff['stat'] = {k: (v, warm['stat'].get(k)) for k, v in cold['stat'].items()
                                if v != warm['stat'].get(k)}
            raise AssertionError('%s: %r' % (cold['task'], diff))
    warm = {t['task']: t for t in results['warm']}
    lines = warm['cmd']['stdout_lines']
    assert lines[0] == NODE and json.loads(lines[1])[0]['ifname'] == 'lo', lines
    assert lines[-2:] == ['/', TEXT], lines
    assert warm['ping']['ping'] == TEXT
    assert warm['env']['stdout'].startswith(TEXT + " 'q'")  # $x: as the shell env string
    assert warm['check-diff']['changed'] and warm['check-diff']['diff'][0]['after'].strip() == TEXT
    assert warm['write']['changed'] and not warm['rewrite']['changed']
    assert warm['rc']['rc'] == 3 and warm['rc']['stderr'] == 'err' and warm['rc']['failed']
    assert 'nonsense' in warm['bad-arg']['msg'] and warm['bad-arg']['failed']
    # its files: a root-only socket in a root-only directory under the lab's tree
    directory = '/run/k8slab/%s/warm' % lab
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    socks = glob.glob(directory + '/*.sock')
    assert len(socks) == 1 and stat.S_IMODE(os.stat(socks[0]).st_mode) == 0o600


CRASHER = """#!/usr/bin/python
import os
import shutil
import signal
import sys
import time

from ansible.module_utils.basic import AnsibleModule

module = AnsibleModule(argument_spec=dict(how=dict(type='str', required=True)))
how = module.params['how']
if how == 'exit':
    sys.exit(5)
if how == 'raise':
    raise RuntimeError('kd module blew up')
if how == '_exit':
    sys.stdout.write('half')
    sys.stdout.flush()
    os._exit(7)
if how == 'segv':
    os.kill(os.getpid(), signal.SIGSEGV)
if how == 'hang':
    with open('/run/podnet/kd-hang.pid', 'w') as f:
        f.write('%d' % os.getpid())
    time.sleep(600)
module.exit_json(changed=False, how=how)
"""


def test_crashing_and_hanging_modules_cost_their_task_only(node, tmp_path):
    lab = node['lab']
    (tmp_path / 'kd_crash.py').write_text(CRASHER)
    tasks = ''.join("""
    - name: %s
      kd_crash: {how: %s}
      ignore_errors: true
""" % (how, how) for how in ('exit', 'raise', '_exit', 'segv', 'ok'))
    # A module that dies leaves its AnsiballZ payload directory behind (its wrapper's cleanup
    # never runs): in this test's own TMPDIR, as a cold Python would use it, not in /tmp.
    tmpdir = tmp_path / 'tmp'
    tmpdir.mkdir()
    env = {'ANSIBLE_LIBRARY': str(tmp_path), 'TMPDIR': str(tmpdir)}
    results, left = {}, {}
    for warm in ('false', 'true'):
        res = play(node, tasks, env=dict(env, K8SLAB_WARM=warm))
        assert res.rc == 0, res
        results[warm] = {t['task']: t for t in res.tasks(NODE)}
        left[warm] = sorted(p.name for p in tmpdir.iterdir())
        for path in tmpdir.iterdir():
            shutil.rmtree(path)
    assert len(left['false']) == len(left['true']) == 2, left  # _exit and segv
    server = server_pids(lab)
    assert len(server) == 1
    for how in ('exit', 'raise', '_exit', 'segv'):
        cold, warm = results['false'][how], results['true'][how]
        assert warm['failed'] and cold['failed'], (how, warm)
        assert warm.get('rc') == cold.get('rc'), (how, cold, warm)
        assert warm.get('module_stdout') == cold.get('module_stdout'), (how, cold, warm)
    assert results['true']['segv']['rc'] == 128 + signal.SIGSEGV
    assert 'kd module blew up' in json.dumps(results['true']['raise'])
    assert results['true']['ok']['how'] == 'ok'
    # A module that hangs is killed when its task times out; the same server serves on.
    res = play(node, """
    - name: hang
      kd_crash: {how: hang}
      timeout: 3
      ignore_errors: true
    - name: after
      ansible.builtin.ping:
""", env=env)
    assert res.rc == 0, res
    assert 'timed out' in res.task('hang', NODE)['msg'].lower(), res.task('hang', NODE)
    assert res.task('after', NODE)['ping'] == 'pong'
    assert server_pids(lab) == server
    for _attempt in range(50):
        if not in_netns('%s-%s' % (lab, NODE)):
            break
        time.sleep(0.1)
    assert in_netns('%s-%s' % (lab, NODE)) == []


def test_the_warm_server_leaves_when_idle(node):
    lab = node['lab']
    stop_servers(lab)
    res = play(node, """
    - name: ping
      ansible.builtin.ping:
""", args=('-e', 'k8slab_warm_idle=2'))
    assert res.rc == 0, res
    assert server_pids(lab)
    for _attempt in range(100):
        if not server_pids(lab):
            break
        time.sleep(0.1)
    assert server_pids(lab) == []
    assert glob.glob('/run/k8slab/%s/warm/*.sock' % lab) == []
    assert glob.glob('/run/k8slab/%s/warm/*.pid' % lab) == []


def test_on_host_runs_in_the_hosts_namespaces_through_the_warm_server(node, tmp_path):
    """k8slab_on_host (the netns_lab role's tasks): no namespace entered, files and commands
    as the local connection has them, pipelined modules through the lab's warm server."""
    lab = node['lab']
    stop_servers(lab)
    dest = tmp_path / 'on-host.txt'
    tasks = """
    - name: where
      ansible.builtin.command: sh -c 'readlink /proc/self/ns/net /proc/self/ns/mnt; hostname'
      changed_when: false
      register: where
    - name: copy
      ansible.builtin.copy: {content: kd-on-host, dest: %s}
    - name: slurp
      ansible.builtin.slurp: {src: %s}
""" % (dest, dest)
    text = ('- hosts: localhost\n  gather_facts: false\n  vars:\n'
            '    ansible_connection: k8slab.podnet.netns\n    k8slab_on_host: true\n'
            '    k8slab_lab_name: %s\n    ansible_python_interpreter: "{{ ansible_playbook_python }}"\n'
            '  tasks:\n' % lab) + tasks
    host = [os.readlink('/proc/self/ns/net'), os.readlink('/proc/self/ns/mnt'),
            open('/proc/sys/kernel/hostname').read().strip()]
    for warm in ('false', 'true'):
        dest.unlink(missing_ok=True)
        res = run_playbook(text, env={'K8SLAB_WARM': warm})
        assert res.rc == 0, res
        got = {t['task']: t for t in res.tasks('localhost')}
        assert got['where']['stdout_lines'] == host, (warm, got['where'])
        assert dest.read_text() == 'kd-on-host'
        assert got['slurp']['content'] == 'a2Qtb24taG9zdA=='
        # the cold run starts no server; the warm one does, in the host's namespaces
        assert bool(server_pids(lab)) == (warm == 'true'), (warm, server_pids(lab))
    for pid in server_pids(lab):
        assert os.readlink('/proc/%d/ns/net' % pid) == host[0]


def test_compiled_module_code_is_kept_beside_ansibles_temporary_files(node, tmp_path):
    """The workers keep what they compile out of the payload in <local_tmp>/../k8slab-pycache
    (0700; local_tmp is ansible-local-*); a server started later (a lab built anew) loads it instead of compiling."""
    lab = node['lab']
    local_tmp = tmp_path / 'ansible' / 'tmp'
    code_dir = local_tmp / 'k8slab-pycache'
    env = {'ANSIBLE_LOCAL_TEMP': str(local_tmp)}
    tasks = """
    - name: veth
      k8slab.podnet.veth: {name: kdv0, peer: kdv1, state: absent}
"""
    stop_servers(lab)
    res = play(node, tasks, env=env)
    assert res.rc == 0, res
    assert oct(code_dir.stat().st_mode & 0o777) == '0o700'
    entries = sorted(p.name for p in code_dir.iterdir())
    assert len(entries) > 5, entries       # the module and the collection's module_utils
    # A new server loads them: each file read, none written again.
    stop_servers(lab)
    before = {p.name: p.stat().st_mtime_ns for p in code_dir.iterdir()}
    res = play(node, tasks, env=env)
    assert res.rc == 0, res
    assert {p.name: p.stat().st_mtime_ns for p in code_dir.iterdir()} == before
    stop_servers(lab)


@pytest.mark.exclusive  # it compares whether /run/k8slab exists, which other labs change
def test_create_lab_dir_lets_a_builds_first_module_run_warm():
    """The netns_lab role's first task of a build sets k8slab_create_lab_dir: the connection
    makes the lab's directory and starts the lab's server, so that module runs warm too. In
    check mode, or for an invalid lab name, it makes nothing (the module runs cold); when the
    module records no lab (it failed first), the directory goes again."""
    lab = 'kw' + secrets.token_hex(2)
    bad = '../kw' + secrets.token_hex(2)  # would be /run/kwXXXX
    play_text = """
- hosts: localhost
  gather_facts: false
  vars:
    ansible_connection: k8slab.podnet.netns
    k8slab_on_host: true
    k8slab_create_lab_dir: %s
    k8slab_lab_name: %s
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - name: node
      k8slab.podnet.netns_lab_nodes: {lab: %s, nodes: [%s], namespaces: [%s-%s], state: %s}
"""
    build = play_text % ('true', lab, lab, NODE, lab, NODE, 'present')
    had_state_dir = os.path.isdir('/run/k8slab')
    try:
        res = run_playbook(build, args=('--check',))
        assert res.rc == 0, res
        assert res.task('node')['changed']
        assert not os.path.exists('/run/k8slab/%s' % lab)
        assert server_pids(lab) == []
        res = run_playbook(play_text % ('true', bad, bad, NODE, 'kw', NODE, 'present'))
        assert res.rc != 0 and 'lab name' in res.task('node')['msg'], res
        assert not os.path.exists(os.path.normpath('/run/k8slab/' + bad))
        assert server_pids(bad) == []
        # A valid lab whose first module fails before it records anything (a node name the
        # lab refuses): the directory made for its server goes again, and the server with it.
        res = run_playbook(play_text % ('true', lab, lab, 'vboxnet0', lab, NODE, 'present'))
        assert res.rc != 0 and 'vboxnet0' in res.task('node')['msg'], res
        assert not os.path.exists('/run/k8slab/%s' % lab)
        assert os.path.isdir('/run/k8slab') == had_state_dir
        for _attempt in range(100):
            if not server_pids(lab):
                break
            time.sleep(0.05)
        assert server_pids(lab) == []
        # Without the option the first run is cold and starts no server (the test below);
        # with it, the first run went through a server it started.
        res = run_playbook(build)
        assert res.rc == 0, res
        assert res.task('node')['changed']
        assert len(server_pids(lab)) == 1, server_pids(lab)
    finally:
        stop_servers(bad)  # only if the name check failed
        shutil.rmtree(os.path.normpath('/run/k8slab/' + bad), ignore_errors=True)
        res = run_playbook(play_text % ('false', lab, lab, NODE, lab, NODE, 'absent'))
        assert res.rc == 0, res
    for _attempt in range(100):
        if not server_pids(lab):
            break
        time.sleep(0.02)
    assert server_pids(lab) == []
    assert not os.path.exists('/run/k8slab/%s' % lab)


def test_teardown_through_the_warm_path_takes_its_own_server_with_it():
    """The netns_lab role removes a lab through host mode (roles/netns_lab/tasks/absent.yml):
    netns_lab_nodes state=absent runs in the lab's warm server, stops the lab's other
    servers, and the one it runs under answers, then leaves with the lab's directory."""
    lab = 'kt' + secrets.token_hex(2)
    play_text = """
- hosts: localhost
  gather_facts: false
  vars:
    ansible_connection: %%s
    k8slab_on_host: true
    k8slab_lab_name: %s
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - name: node
      k8slab.podnet.netns_lab_nodes: {lab: %s, nodes: [%s], namespaces: [%s-%s], state: %%s}
""" % (lab, lab, NODE, lab, NODE)
    warm = play_text % ('k8slab.podnet.netns', '%s')
    other = tempfile.mkdtemp(prefix='kt-tmp-')
    try:
        assert run_playbook(warm % 'present').rc == 0  # makes the lab's directory: cold
        assert run_playbook(warm % 'present').rc == 0  # warm: starts the lab's server
        # A second server of the lab (another key: another local_tmp), which teardown stops.
        assert run_playbook(warm % 'present', env={'ANSIBLE_LOCAL_TEMP': other}).rc == 0
        before = server_pids(lab)
        assert len(before) == 2, before
        res = run_playbook(warm % 'absent')
        assert res.rc == 0, res
        gone = res.task('node')
        assert gone['changed'], gone
        # It stopped the other server only: its own (it ran warm) was not signalled.
        killed = [int(k.split()[0]) for k in gone['killed'] if k.endswith('netns_warm')]
        assert len(killed) == 1 and killed[0] in before, gone['killed']
        for _attempt in range(100):  # its own server exits once its handler has answered
            if not server_pids(lab):
                break
            time.sleep(0.02)
        assert server_pids(lab) == []
        assert not os.path.exists('/run/k8slab/%s' % lab)
        assert '%s-%s' % (lab, NODE) not in [n['name'] for n in ipj('netns list')]
    finally:
        run_playbook(play_text % ('local', 'absent'))
        shutil.rmtree(other, ignore_errors=True)

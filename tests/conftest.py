"""Shared pytest fixtures: unique names, a real Ansible runner, and namespace cleanup.

Integration tests drive the collection through ``ansible-playbook`` (never a mocked ``ip``)
and need root. Names carry a per-run random prefix so parallel runs cannot collide.
"""

import json
import os
import secrets
import subprocess
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)


def ansible_env(**extra):
    env = dict(os.environ)
    env.update({
        'ANSIBLE_CONFIG': os.path.join(ROOT, 'ansible.cfg'),
        'ANSIBLE_COLLECTIONS_PATH': os.path.join(ROOT, '.collections'),
        'ANSIBLE_STDOUT_CALLBACK': 'test_json',
        'ANSIBLE_CALLBACK_PLUGINS': os.path.join(ROOT, 'tests', 'callback_plugins'),
        'ANSIBLE_LOAD_CALLBACK_PLUGINS': '1',
        'ANSIBLE_NOCOLOR': '1',
        'ANSIBLE_PYTHON_INTERPRETER': sys.executable,
        'ANSIBLE_INVENTORY_UNPARSED_WARNING': 'False',
        'ANSIBLE_LOCALHOST_WARNING': 'False',
        'PATH': BIN + os.pathsep + env.get('PATH', ''),
    })
    env.update(extra)
    return env


class PlaybookResult(object):
    def __init__(self, proc):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        try:
            self.data = json.loads(proc.stdout)
        except ValueError:
            self.data = {'plays': [], 'stats': {}}

    def tasks(self, host='localhost'):
        """Results of every task for host, in order, as dicts (with 'task' = name)."""
        out = []
        for play in self.data.get('plays', []):
            for task in play.get('tasks', []):
                res = task.get('hosts', {}).get(host)
                if res is not None:
                    res = dict(res)
                    res['task'] = task['task']['name']
                    out.append(res)
        return out

    def task(self, name, host='localhost'):
        for res in self.tasks(host):
            if res['task'] == name:
                return res
        raise KeyError('no task %r in %s' % (name, [t['task'] for t in self.tasks(host)]))

    @property
    def changed(self):
        return sum(s.get('changed', 0) for s in self.data.get('stats', {}).values())

    @property
    def failed(self):
        stats = self.data.get('stats', {}).values()
        return sum(s.get('failures', 0) + s.get('unreachable', 0) for s in stats)

    def __repr__(self):
        return 'PlaybookResult(rc=%s)\nSTDOUT:\n%s\nSTDERR:\n%s' % (
            self.rc, self.stdout[-6000:], self.stderr[-3000:])


def run_playbook(playbook_yaml, inventory='localhost,', check=False, diff=False,
                 extra_vars=None, args=(), env=None):
    """Run a playbook given as YAML text (or a path) and return a PlaybookResult."""
    tmp = None
    if '\n' in playbook_yaml:
        fd, tmp = tempfile.mkstemp(suffix='.yml', prefix='k8slab-test-')
        with os.fdopen(fd, 'w') as f:
            f.write(playbook_yaml)
        path = tmp
    else:
        path = playbook_yaml
    cmd = [os.path.join(BIN, 'ansible-playbook'), '-i', inventory, path]
    if check:
        cmd.append('--check')
    if diff:
        cmd.append('--diff')
    if extra_vars:
        cmd += ['-e', json.dumps(extra_vars)]
    cmd += list(args)
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=ansible_env(**(env or {})),
                              capture_output=True, text=True, timeout=900, check=False)
    finally:
        if tmp:
            os.unlink(tmp)
    return PlaybookResult(proc)


def run_module(module, module_args, check=False, diff=False):
    """Run one module on localhost (connection local) and return its result dict."""
    play = ("- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n"
            "    - name: the module\n      %s: %s\n" % (module, json.dumps(module_args)))
    result = run_playbook(play, check=check, diff=diff)
    return result.task('the module'), result


def run_tasks(module, args_list, check=False, env=None):
    """Several calls of one module in ONE playbook (failures ignored); their results,
    in order (each ansible-playbook run costs seconds). env: variables for ansible-playbook
    (and so for a module on localhost)."""
    tasks = ''.join('    - name: call %d\n      %s: %s\n      ignore_errors: true\n'
                    % (n, module, json.dumps(a)) for n, a in enumerate(args_list))
    play = '- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n' + tasks
    result = run_playbook(play, check=check, env=env)
    return [result.task('call %d' % n) for n in range(len(args_list))]


# A test pod's web server: http.server serving a directory, without the reverse lookup of
# its address (HTTPServer.server_bind's getfqdn) that waits out the resolver's timeout (5 s)
# in a namespace with no DNS. argv: ADDRESS PORT DIRECTORY.
HTTP_SERVER = [sys.executable, '-c', """
import functools, http.server, socketserver, sys
class Server(http.server.ThreadingHTTPServer):
    def server_bind(self):
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = 'pod', self.server_address[1]
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[3])
Server((sys.argv[1], int(sys.argv[2])), handler).serve_forever()
"""]


def sh(cmd, check=True):
    """Run a shell command (for setting up and inspecting real state in tests)."""
    proc = subprocess.run(cmd, shell=True, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError('%s -> rc=%d\n%s%s' % (cmd, proc.returncode, proc.stdout, proc.stderr))
    return proc.stdout


def ipj(args):
    """``ip -j ARGS`` parsed."""
    out = sh('ip -j ' + args)
    return json.loads(out) if out.strip() else []


@pytest.fixture
def uid():
    """A short unique token for names (interface names allow only 15 bytes)."""
    return secrets.token_hex(3)


@pytest.fixture
def netns_cleanup():
    """Collects namespace names; deletes them after the test, passed or failed."""
    names = []
    yield names
    for name in names:
        subprocess.run(['ip', 'netns', 'del', name], capture_output=True, check=False)


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'exclusive: compares host-wide state (the root namespace, /run/k8slab) before '
        'and after, or changes it for a while, so no other test may run beside it: a parallel '
        'run (make test-integration) runs these afterwards, one at a time. Every test that uses '
        'root_snapshot is one.')


def pytest_collection_modifyitems(config, items):
    for item in items:
        if 'root_snapshot' in getattr(item, 'fixturenames', ()):
            item.add_marker('exclusive')


@pytest.fixture
def root_snapshot():
    """State of the root namespace, to assert a test left it as it found it."""
    def snap():
        return {
            'links': sorted((l['ifname'], l.get('operstate')) for l in ipj('link show')),
            'addrs': sorted(json.dumps(a, sort_keys=True) for a in ipj('addr show')),
            'routes': sorted(json.dumps(r, sort_keys=True) for r in ipj('route show table all')),
        }
    return snap


def root_changes(before, after, markers):
    """What changed in the root namespace that mentions one of our names or addresses
    (other work on this machine, e.g. libvirt's bridges, may change the rest meanwhile)."""
    changed = []
    for key in before:
        for item in set(before[key]) ^ set(after[key]):
            if any(m in str(item) for m in markers):
                changed.append(item)
    return changed

"""The k8slab.podnet.vagrant inventory plugin, without Vagrant.

The parsing tests use output recorded from a real `vagrant up` of this lab (vagrant 2.3.4,
vagrant-libvirt 0.11.2; tests/unit/vagrant_recordings/). The end-to-end tests run the real
`ansible-inventory` and the real python-vagrant against a stand-in `vagrant` executable that
replays those recordings and logs how it was called, so caching and error paths are exercised
exactly as a user meets them.
"""

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
REC = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'vagrant_recordings')
sys.path.insert(0, os.path.join(ROOT, '.collections'))

from ansible_collections.k8slab.podnet.plugins.inventory import vagrant as plugin  # noqa: E402


def recording(name):
    with open(os.path.join(REC, name)) as f:
        return f.read()


# --- pure parsing -------------------------------------------------------------------------

def test_parse_ssh_config_recorded_three_machines():
    hosts = plugin.parse_ssh_config(recording('ssh-config.txt'))
    assert list(hosts) == ['controlplane', 'node-1', 'node-2']
    cp = plugin.ssh_host_vars(hosts['controlplane'])
    assert cp['ansible_host'].startswith('192.168.124.')  # its own management network
    assert cp['ansible_port'] == 22
    assert cp['ansible_user'] == 'vagrant'
    assert cp['ansible_ssh_private_key_file'].endswith('/.vagrant/machines/controlplane/libvirt/private_key')
    # Vagrant's other options reach ssh unchanged.
    assert '-o StrictHostKeyChecking=no' in cp['ansible_ssh_common_args']
    assert '-o UserKnownHostsFile=/dev/null' in cp['ansible_ssh_common_args']
    # Each machine has its own management network (no node-to-node path over eth0).
    nets = set(plugin.ssh_host_vars(h)['ansible_host'].rsplit('.', 1)[0] for h in hosts.values())
    assert len(nets) == 3


def test_ssh_config_quoting_repeats_and_proxy():
    text = textwrap.dedent('''\
        Host web
          HostName 127.0.0.1
          User vagrant
          Port 2222
          IdentityFile "/home/a user/.vagrant.d/insecure_private_key"
          IdentityFile /home/a user/second_key
          ProxyCommand ssh -W %h:%p jump.example
        ''')
    hv = plugin.ssh_host_vars(plugin.parse_ssh_config(text)['web'])
    assert hv['ansible_ssh_private_key_file'] == '/home/a user/.vagrant.d/insecure_private_key'
    assert hv['ansible_port'] == 2222
    args = hv['ansible_ssh_common_args']
    assert "-o 'IdentityFile=/home/a user/second_key'" in args
    assert "-o 'ProxyCommand=ssh -W %h:%p jump.example'" in args


def test_machines_from_recorded_status():
    # Vagrant 2.3 prints metadata lines first and ui lines without a machine: every machine
    # must come out once, in the Vagrantfile's order, with its state.
    import vagrant
    raw = vagrant.Vagrant()._parse_status(recording('status-partial.txt'))
    assert plugin.machines_from_status(raw) == [
        {'name': 'controlplane', 'state': 'running', 'provider': 'libvirt'},
        {'name': 'node-1', 'state': 'not_created', 'provider': 'libvirt'},
        {'name': 'node-2', 'state': 'not_created', 'provider': 'libvirt'},
    ]


def test_vagrant_error_exit_message():
    out = ('1,,error-exit,Vagrant::Errors::NoEnvironmentError,A Vagrant environment or target '
           'machine is required to run this\\ncommand. Run `vagrant init`%!(VAGRANT_COMMA) or\n')
    assert plugin.vagrant_error(out) == ('A Vagrant environment or target machine is required '
                                         'to run this command. Run `vagrant init`, or')
    assert plugin.vagrant_error('1,cp,state,running\n') is None


# --- end to end: ansible-inventory + python-vagrant + a replaying `vagrant` ----------------

FAKE_VAGRANT = r'''#!{python}
# Replays recorded Vagrant output. FAKE_VAGRANT_STATUS names the status recording.
import os, sys
rec = {rec!r}
with open(os.environ['FAKE_VAGRANT_LOG'], 'a') as log:
    log.write(' '.join(sys.argv[1:]) + '\n')
args = [a for a in sys.argv[1:] if not a.startswith('-')]
if args[0] == 'status':
    sys.stdout.write(open(os.path.join(rec, os.environ['FAKE_VAGRANT_STATUS'])).read())
elif args[0] == 'ssh-config':
    # `ssh-config NAME` as recorded for that machine, else its block of the full recording.
    named = os.path.join(rec, 'ssh-config-%s.txt' % args[1]) if len(args) > 1 else None
    if named and os.path.exists(named):
        text = open(named).read()
    else:
        text = open(os.path.join(rec, 'ssh-config.txt')).read()
        if named:
            blocks = ['Host ' + b for b in text.split('Host ')[1:]]
            text = ''.join(b for b in blocks if b.split()[1] == args[1])
    if not text:
        sys.stderr.write('The provider for this Vagrant-managed machine is reporting that it\n'
                         'is not yet ready for SSH.\n')
        sys.exit(1)
    sys.stdout.write(text)
else:
    sys.exit(3)
'''


def plain(data):
    """ansible-inventory --export wraps untrusted (not to be templated) strings; unwrap them."""
    if isinstance(data, dict):
        if set(data) == {'__ansible_unsafe'}:
            return data['__ansible_unsafe']
        return {k: plain(v) for k, v in data.items()}
    if isinstance(data, list):
        return [plain(v) for v in data]
    return data


@pytest.fixture
def fake(tmp_path):
    """A PATH with the replaying vagrant, a HOME for the inventory cache, and a call log."""
    bindir = tmp_path / 'bin'
    bindir.mkdir()
    exe = bindir / 'vagrant'
    exe.write_text(FAKE_VAGRANT.format(python=sys.executable, rec=REC))
    exe.chmod(0o755)
    home = tmp_path / 'home'
    home.mkdir()
    log = tmp_path / 'calls.log'
    log.write_text('')

    def run(inventory, status='status-running.txt', path=None, unparsed_failed=False,
            playbook=None):
        env = dict(os.environ)
        env.pop('VAGRANT_CWD', None)
        env.update({
            'PATH': os.pathsep.join([str(bindir) if path is None else path, BIN]),
            'HOME': str(home),
            'ANSIBLE_CONFIG': os.path.join(ROOT, 'ansible.cfg'),
            'ANSIBLE_COLLECTIONS_PATH': os.path.join(ROOT, '.collections'),
            'ANSIBLE_NOCOLOR': '1',
            'ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED': '1' if unparsed_failed else '0',
            'FAKE_VAGRANT_LOG': str(log),
            'FAKE_VAGRANT_STATUS': status,
        })
        if playbook:
            # ansible-playbook as the Vagrant path runs it: the repository's ansible.cfg alone.
            del env['ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED']
            env['ANSIBLE_CALLBACK_RESULT_FORMAT'] = 'json'
            proc = subprocess.run([os.path.join(BIN, 'ansible-playbook'), '-i', str(inventory),
                                   playbook], cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=120, check=False)
            return proc, None
        proc = subprocess.run([os.path.join(BIN, 'ansible-inventory'), '-i', str(inventory),
                               '--list', '--export'],
                              env=env, capture_output=True, text=True, timeout=120, check=False)
        data = plain(json.loads(proc.stdout)) if proc.returncode == 0 else None
        return proc, data

    run.calls = lambda: log.read_text().splitlines()
    run.tmp = tmp_path
    return run


def own_inventory(tmp_path, **options):
    """A Vagrant environment of our own (an empty Vagrantfile) with a plugin config."""
    env = tmp_path / 'env'
    (env / 'inv').mkdir(parents=True)
    (env / 'Vagrantfile').write_text('# replayed\n')
    config = {'plugin': 'k8slab.podnet.vagrant'}
    config.update(options)
    (env / 'inv' / 'vagrant.yml').write_text(json.dumps(config))
    return env


def test_shipped_inventory_groups_vars_and_group_vars(fake):
    proc, data = fake(os.path.join(ROOT, 'inventories', 'vagrant'))
    assert proc.returncode == 0, proc.stderr
    assert set(data['k8s_cluster']['children']) == {'control_plane', 'workers'}
    assert data['control_plane']['hosts'] == ['controlplane']
    assert sorted(data['workers']['hosts']) == ['node-1', 'node-2']
    assert data['all']['vars']['lab_backend'] == 'vagrant'
    hv = data['_meta']['hostvars']
    assert hv['node-1']['ansible_user'] == 'vagrant'
    assert hv['node-1']['ansible_port'] == 22
    assert hv['node-1']['vagrant_state'] == 'running'
    # group_vars/all: the shared topology and the vagrant backend's traits (links).
    gv = os.path.join(ROOT, 'inventories', 'vagrant', 'group_vars', 'all')
    assert os.readlink(os.path.join(gv, 'lab.yml')) == '../../../topology.yml'
    assert os.readlink(os.path.join(gv, 'backend.yml')) == '../../../../backends/vagrant.yml'
    # One `vagrant status` and one `vagrant ssh-config` for all machines.
    assert fake.calls() == ['status --machine-readable', 'ssh-config']


def test_relative_vagrant_cwd_is_relative_to_the_file_from_anywhere(fake, monkeypatch):
    """issue 16 item 12: `vagrant_cwd: ../..` in inventories/x/vagrant.yml worked only when
    ansible ran from inventories/x (the option was made absolute against the current
    directory). From the root, from elsewhere and from the file's directory it is the same."""
    env = fake.tmp / 'proj'
    inv = env / 'inventories' / 'x'
    inv.mkdir(parents=True)
    (env / 'Vagrantfile').write_text('# replayed\n')
    (inv / 'vagrant.yml').write_text(json.dumps({'plugin': 'k8slab.podnet.vagrant',
                                                 'vagrant_cwd': '../..'}))
    (fake.tmp / 'elsewhere').mkdir()
    for where in (env, fake.tmp / 'elsewhere', inv):
        monkeypatch.chdir(str(where))
        proc, data = fake(inv / 'vagrant.yml')
        assert proc.returncode == 0, (where, proc.stderr)
        assert sorted(data['workers']['hosts']) == ['node-1', 'node-2'], where
    # a wrong relative path names the resolved directory
    (inv / 'vagrant.yml').write_text(json.dumps({'plugin': 'k8slab.podnet.vagrant',
                                                 'vagrant_cwd': '../nowhere'}))
    proc, data = fake(inv / 'vagrant.yml', unparsed_failed=True)
    # (older ansible-core wraps the warning at any '-': compare without whitespace)
    assert proc.returncode != 0
    assert str(env / 'inventories' / 'nowhere') in ''.join(proc.stderr.split()), proc.stderr


def test_not_running_machines_reported_not_dropped(fake):
    env = own_inventory(fake.tmp)
    proc, data = fake(env / 'inv' / 'vagrant.yml', status='status-partial.txt')
    assert proc.returncode == 0, proc.stderr
    assert data['control_plane']['hosts'] == ['controlplane']
    assert 'workers' not in data or not data['workers'].get('hosts')
    assert sorted(data['vagrant_not_running']['hosts']) == ['node-1', 'node-2']
    assert data['_meta']['hostvars']['node-2']['vagrant_state'] == 'not_created'
    stderr = ' '.join(proc.stderr.split())
    assert 'Vagrant machines not running, left out of k8s_cluster' in stderr
    assert 'node-1 (not_created), node-2 (not_created)' in stderr
    # ssh-config asked only for the running machine.
    assert fake.calls() == ['status --machine-readable', 'ssh-config controlplane']


def test_no_machine_running_is_a_clear_error(fake):
    env = own_inventory(fake.tmp)
    proc = fake(env / 'inv' / 'vagrant.yml', status='status-not-created.txt',
                unparsed_failed=True)[0]
    assert proc.returncode != 0
    # The plugin's message reaches the user: 2.18+ print it as the error, 2.17 inside the
    # warning of each plugin that tried the source, wrapped to the terminal's width (even
    # inside a path, at a hyphen), so compare without whitespace.
    stderr = re.sub(r'\s+', '', proc.stderr)
    for words in ('No Vagrant machine is running in %s' % env, 'controlplane: not_created',
                  'node-2: not_created', 'Start the lab with `vagrant up`'):
        assert re.sub(r'\s+', '', words) in stderr, proc.stderr


def test_vagrant_not_installed_is_a_clear_error(fake):
    env = own_inventory(fake.tmp)
    proc = fake(env / 'inv' / 'vagrant.yml', path=str(fake.tmp / 'empty'),
                unparsed_failed=True)[0]
    assert proc.returncode != 0
    assert 'Vagrant is not installed' in ' '.join(proc.stderr.split())
    assert fake.calls() == []


def test_cache_reused_until_the_environment_changes(fake):
    env = own_inventory(fake.tmp, cache=True, cache_plugin='ansible.builtin.jsonfile',
                        cache_connection=str(fake.tmp / 'cache'))
    machines = env / '.vagrant' / 'machines' / 'controlplane' / 'libvirt'
    machines.mkdir(parents=True)
    (machines / 'id').write_text('a')
    config = env / 'inv' / 'vagrant.yml'

    first, data1 = fake(config)
    assert first.returncode == 0, first.stderr
    assert len(fake.calls()) == 2
    second, data2 = fake(config)
    assert second.returncode == 0, second.stderr
    assert len(fake.calls()) == 2, 'served from the cache: no vagrant call'
    assert data2 == data1
    # A re-created machine (new id file) makes the cached entry stale.
    (machines / 'id').write_text('bb')
    third, data3 = fake(config)
    assert third.returncode == 0, third.stderr
    assert len(fake.calls()) == 4
    assert data3 == data1


def test_partial_result_is_not_cached(fake):
    env = own_inventory(fake.tmp, cache=True, cache_plugin='ansible.builtin.jsonfile',
                        cache_connection=str(fake.tmp / 'cache'))
    config = env / 'inv' / 'vagrant.yml'
    for attempt in range(2):
        proc = fake(config, status='status-partial.txt')[0]
        assert proc.returncode == 0, (attempt, proc.stderr)
    assert fake.calls().count('status --machine-readable') == 2


def test_site_stops_at_once_when_no_machine_runs(fake):
    """`ansible-playbook site.yml` with no VM up: the inventory plugin's message, and the
    first play stops the run before its roles."""
    env = own_inventory(fake.tmp)
    # The vagrant backend's traits, as the shipped inventory links them.
    (env / 'inv' / 'group_vars' / 'all').mkdir(parents=True)
    (env / 'inv' / 'group_vars' / 'all' / 'backend.yml').write_text(
        open(os.path.join(ROOT, 'backends', 'vagrant.yml')).read())
    proc = fake(env / 'inv' / 'vagrant.yml', status='status-not-created.txt',
                playbook='site.yml')[0]
    assert proc.returncode != 0
    assert re.sub(r'\s+', '', 'No Vagrant machine is running in %s' % env) in re.sub(
        r'\s+', '', proc.stderr + proc.stdout), proc.stderr
    # The backend check passes, the next task stops the run.
    assert proc.stdout.count('TASK [') == 2, proc.stdout
    assert 'has no lab nodes (group k8s_cluster is empty)' in ' '.join(proc.stdout.split())

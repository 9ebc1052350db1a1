"""What can be checked of the Vagrant path without starting a VM: the Vagrantfile validates
for both providers, two checkouts name their VMs apart, and scripts/vagrant-lab.sh's non-VM
steps work on a host without nft and say what failed when they fail.
"""

import os
import pwd
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, 'scripts', 'vagrant-lab.sh')

# Vagrant's configure block, recorded: every `x.name = ...` and `x.default_prefix = ...`.
RUBY_STUB = r'''
class Rec
  def initialize(log) @log = log end
  def method_missing(m, *a, &b)
    @log << a[0] if m == :name= || m == :default_prefix=
    b.call(Rec.new(@log)) if b
    Rec.new(@log)
  end
  def respond_to_missing?(*) true end
end
module Vagrant
  def self.configure(_v) log = []; yield Rec.new(log); puts log end
end
load ARGV[0]
'''


def copy_checkout(where):
    os.makedirs(os.path.join(where, 'inventories'))
    shutil.copy(os.path.join(ROOT, 'Vagrantfile'), where)
    shutil.copy(os.path.join(ROOT, 'inventories', 'topology.yml'),
                os.path.join(where, 'inventories'))
    return os.path.join(where, 'Vagrantfile')


@pytest.mark.skipif(not shutil.which('ruby'), reason='needs ruby')
def test_two_checkouts_name_their_vms_apart(tmp_path):
    stub = tmp_path / 'stub.rb'
    stub.write_text(RUBY_STUB)
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith('K8SLAB_'))
    names = []
    for d in ('a/k8slab', 'b/k8slab'):
        out = subprocess.run(['ruby', str(stub), copy_checkout(str(tmp_path / d))], env=env,
                             capture_output=True, text=True, check=True).stdout.split()
        vms = [n for n in out if not n.endswith('-')]
        assert len(vms) == 3 and all(n.startswith('k8slab-k8slab-') for n in vms), out
        names.append(set(out))
    assert not names[0] & names[1], names


@pytest.mark.skipif(not shutil.which('vagrant'), reason='needs vagrant (Debian package vagrant)')
@pytest.mark.parametrize('provider', ['virtualbox', 'libvirt'])
def test_vagrant_validate(tmp_path, provider):
    checkout = tmp_path / 'checkout'
    copy_checkout(str(checkout))
    env = dict(os.environ, VAGRANT_DEFAULT_PROVIDER=provider, HOME=str(tmp_path))
    if provider == 'virtualbox':
        # No VirtualBox here: Vagrant only needs VBoxManage to tell its version.
        fake = tmp_path / 'bin'
        fake.mkdir()
        (fake / 'VBoxManage').write_text('#!/bin/sh\necho 7.0.14r161095\n')
        (fake / 'VBoxManage').chmod(0o755)
        env['PATH'] = '%s:%s' % (fake, env['PATH'])
    elif 'vagrant-libvirt' not in subprocess.run(['vagrant', 'plugin', 'list'], env=env,
                                                 capture_output=True, text=True,
                                                 check=False).stdout:
        pytest.skip('needs vagrant-libvirt')
    proc = subprocess.run(['vagrant', 'validate'], cwd=str(checkout), env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0 and 'validated successfully' in proc.stdout, proc.stdout + proc.stderr


def path_without(tmp_path, *missing):
    """A PATH with every program of the current one except `missing`."""
    bindir = tmp_path / 'path'
    bindir.mkdir()
    for d in os.environ['PATH'].split(os.pathsep):
        for name in os.listdir(d) if os.path.isdir(d) else []:
            if name not in missing and not (bindir / name).exists():
                (bindir / name).symlink_to(os.path.join(d, name))
    return str(bindir)


def script(step, tmp_path, **env):
    full = dict(os.environ, K8SLAB_BOX_DIR=str(tmp_path / 'work'))
    full.update(env)
    return subprocess.run(['bash', SCRIPT, step], env=full, capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.mark.exclusive  # it compares the root namespace's links and firewall before and after
@pytest.mark.skipif(os.geteuid() != 0, reason='reads the root namespace firewall: needs root')
def test_snapshot_and_check_clean_without_nft(tmp_path):
    path = path_without(tmp_path, 'nft')
    proc = script('snapshot', tmp_path, PATH=path)
    assert proc.returncode == 0, proc.stderr
    before = (tmp_path / 'work' / 'state' / 'root.before').read_text()
    assert '(nft not installed)' in before and '## links' in before
    proc = script('check-clean', tmp_path, PATH=path)
    assert proc.returncode == 0 and 'unchanged' in proc.stdout, proc.stdout + proc.stderr


def test_a_failing_step_says_what_failed(tmp_path):
    (tmp_path / 'work').write_text('a file where the work directory should be')
    proc = script('snapshot', tmp_path)
    assert proc.returncode != 0
    assert 'vagrant-lab.sh snapshot: failed (exit 1) at line' in proc.stderr, proc.stderr
    assert 'mkdir -p' in proc.stderr


def test_unknown_step_and_non_root(tmp_path):
    proc = script('bogus', tmp_path)
    assert proc.returncode == 2 and 'usage:' in proc.stderr
    if os.geteuid() == 0:
        user = pwd.getpwnam('nobody')

        def drop():
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
        # A checkout in a private directory (mktemp -d is 0700) cannot be read by the user.
        if subprocess.run(['test', '-r', SCRIPT], preexec_fn=drop, check=False).returncode:
            pytest.skip('user nobody cannot read %s' % SCRIPT)
        proc = subprocess.run(['bash', SCRIPT, 'deps'], preexec_fn=drop, capture_output=True,
                              text=True, timeout=60, check=False, cwd='/')
        assert proc.returncode == 1 and 'run it as root' in proc.stderr, proc.stderr

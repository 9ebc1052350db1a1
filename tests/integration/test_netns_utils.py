"""plugins/module_utils/netns.py and the interface sysctls it serves (iproute.Sysctls), on real
network namespaces made for the test (needs root): the thread enters a namespace and always
comes back, /proc/sys/net answers for the namespace entered, a namespace's sysctls are read
and written without starting a process, and pods.spawn starts a detached process there. Nothing here changes the root namespace."""

import errno
import os
import subprocess
import sys
import threading
import time

import pytest

from conftest import ROOT, sh

sys.path.insert(0, os.path.join(ROOT, '.collections'))
from ansible_collections.k8slab.podnet.plugins.module_utils import command  # noqa: E402
from ansible_collections.k8slab.podnet.plugins.module_utils import iproute  # noqa: E402
from ansible_collections.k8slab.podnet.plugins.module_utils import pods as P  # noqa: E402
from ansible_collections.k8slab.podnet.plugins.module_utils.netns import (  # noqa: E402
    InNetns, NetnsError, interface_ipv4)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='needs root')


def here():
    """(dev, ino) of the calling thread's network namespace."""
    st = os.stat('/proc/thread-self/ns/net')
    return st.st_dev, st.st_ino


def ns_id(name):
    st = os.stat('/run/netns/' + name)
    return st.st_dev, st.st_ino


@pytest.fixture
def two_netns(uid, netns_cleanup):
    """Two namespaces, each with a veth pair d0-d1 whose d0 accept_ra differs (1 and 2)."""
    names = ['nu%s-a' % uid, 'nu%s-b' % uid]
    netns_cleanup.extend(names)
    for n, ra in zip(names, (1, 2)):
        sh('ip netns add %s && ip -n %s link add d0 type veth peer name d1 && '
           'ip netns exec %s sh -c "echo %d > /proc/sys/net/ipv6/conf/d0/accept_ra"'
           % (n, n, n, ra))
    return names


def test_in_netns_enters_and_always_comes_back(two_netns):
    a, b = two_netns
    home = here()
    with InNetns(a):
        assert here() == ns_id(a)
        with open('/proc/sys/net/ipv6/conf/d0/accept_ra') as f:
            assert f.read().strip() == '1'
        with InNetns(b):  # nested: back to a, not to home
            assert here() == ns_id(b)
        assert here() == ns_id(a)
    assert here() == home
    with pytest.raises(RuntimeError):
        with InNetns(b):
            raise RuntimeError('body failed')
    assert here() == home
    with InNetns(None):
        assert here() == home


def test_in_netns_is_per_thread(two_netns):
    """Only the calling thread moves: a thread already running stays where it was."""
    a = two_netns[0]
    seen, inside, looked = {}, threading.Event(), threading.Event()

    def other():
        inside.wait(5)
        seen['other'] = here()
        looked.set()

    t = threading.Thread(target=other)
    t.start()
    with InNetns(a):
        inside.set()
        looked.wait(5)
        assert here() == ns_id(a)
    t.join()
    assert seen['other'] == here() != ns_id(a)


def test_in_netns_names_a_missing_namespace(uid):
    home = here()
    with pytest.raises(NetnsError, match='network namespace nu%s-none: No such file' % uid):
        with InNetns('nu%s-none' % uid):
            pass
    assert here() == home


def test_sysctls_read_and_write_in_the_namespace_without_a_process(two_netns, monkeypatch):
    a, b = two_netns
    path = iproute.conf_sysctl('ipv6', 'd0', 'accept_ra')

    def no_process(*args, **kwargs):
        raise AssertionError('a process was started: %r' % (args,))
    monkeypatch.setattr(command, 'run', no_process)
    monkeypatch.setattr(subprocess, 'Popen', no_process)
    s = iproute.Sysctls()
    assert s.read(a, [path]) == {path: '1'}
    assert s.read(b, [path, path + 'x']) == {path: '2', path + 'x': None}
    s.plan(a, path, 0, '1')
    s.plan(b, path, 1, '2')
    s.apply()
    monkeypatch.undo()
    assert sh('ip netns exec %s cat %s' % (a, path)).strip() == '0'
    assert sh('ip netns exec %s cat %s' % (b, path)).strip() == '1'
    with pytest.raises(iproute.IprouteError, match='network namespace %s-gone' % a):
        s.read(a + '-gone', [path])


def test_sysctls_undo_earlier_writes_when_one_fails(two_netns):
    a, b = two_netns
    path = iproute.conf_sysctl('ipv6', 'd0', 'accept_ra')
    s = iproute.Sysctls()
    s.plan(a, path, 0, '1')
    s.plan(b, iproute.conf_sysctl('ipv6', 'nosuch0', 'accept_ra'), 0, None)
    with pytest.raises(iproute.IprouteError, match="nosuch0.*in netns '%s'" % b):
        s.apply()
    assert sh('ip netns exec %s cat %s' % (a, path)).strip() == '1'  # undone
    assert here() != ns_id(a) and here() != ns_id(b)


def test_spawn_starts_a_detached_process_in_the_namespace(two_netns):
    a = two_netns[0]
    pids = []
    try:
        pids.append(P.spawn(['/bin/sleep', '30'], a))
        # ...and by the namespace file of a process in it, as pod_container joins the pause.
        pids.append(P.spawn(['sleep', '31'], '/proc/%d/ns/net' % pids[0]))
        for pid, argv in zip(pids, (['/bin/sleep', '30'], ['sleep', '31'])):
            st = os.stat('/proc/%d/ns/net' % pid)
            assert (st.st_dev, st.st_ino) == ns_id(a)
            assert os.getsid(pid) == pid  # a session of its own
            # The exec is under way when spawn returns: the kernel fills /proc/PID/cmdline a
            # moment after it closed the descriptor spawn waits on, and the dynamic loader
            # may still hold libc open. Only stdio is inherited: wait for the loader to close
            # what it opened itself.
            deadline = time.time() + 5
            while (P.cmdline(pid) != argv or sorted(os.listdir('/proc/%d/fd' % pid))
                   != ['0', '1', '2']) and time.time() < deadline:
                time.sleep(0.01)
            assert P.cmdline(pid) == argv
            assert sorted(os.listdir('/proc/%d/fd' % pid)) == ['0', '1', '2']
            assert all(os.readlink('/proc/%d/fd/%d' % (pid, fd)) == '/dev/null'
                       for fd in (0, 1, 2))
        assert here() != ns_id(a)
        with pytest.raises(P.PodError, match='cannot start /nonexistent/x in %s' % a):
            P.spawn(['/nonexistent/x'], a)
        with pytest.raises(P.PodError, match='network namespace %s-none' % a):
            P.spawn(['/bin/sleep', '1'], a + '-none')
        assert here() != ns_id(a)
    finally:
        for pid in pids:
            os.kill(pid, 9)
            os.waitpid(pid, 0)


def test_spawn_binds_files_in_a_private_mount_namespace_of_its_own(two_netns, tmp_path):
    """binds: the process sees the file over /etc/resolv.conf (as kubelet mounts a pod's
    resolv.conf), in a mount namespace of its own; the caller's mounts, and the file it sees
    there, stay as they were. A bind that cannot be made fails naming it."""
    a = two_netns[0]
    src = tmp_path / 'resolv.conf'
    src.write_text('nameserver 10.96.0.10\n')
    host = open('/etc/resolv.conf').read()
    # A target in a shared mount too: were the process's mounts not private, the host would
    # see its bind there (on hosts where / is shared, over /etc/resolv.conf as well).
    shared = tmp_path / 'shared'
    shared.mkdir()
    (shared / 'target').write_text('')
    sh('mount --bind {0} {0} && mount --make-shared {0}'.format(shared))

    def mine():  # the mount table entries this test could make: its own paths, resolv.conf
        with open('/proc/self/mountinfo') as f:
            return [line for line in f if str(tmp_path) in line or ' /etc/resolv.conf ' in line]

    mounts = mine()
    pids = []
    try:
        binds = [(str(src), '/etc/resolv.conf'), (str(src), str(shared / 'target'))]
        pids.append(P.spawn(['/bin/sleep', '30'], a, binds=binds))
        for target in ('/etc/resolv.conf', shared / 'target'):
            with open('/proc/%d/root/%s' % (pids[0], target)) as f:
                assert f.read() == 'nameserver 10.96.0.10\n'
        assert (shared / 'target').read_text() == ''
        assert os.stat('/proc/%d/ns/mnt' % pids[0]).st_ino != os.stat('/proc/self/ns/mnt').st_ino
        assert open('/etc/resolv.conf').read() == host
        assert mine() == mounts
        missing = str(tmp_path / 'missing')
        with pytest.raises(P.PodError, match='bind mounts %s over /etc/resolv.conf failed'
                           % missing):
            pids.append(P.spawn(['/bin/sleep', '30'], a, binds=[(missing, '/etc/resolv.conf')]))
        assert mine() == mounts
    finally:
        for pid in pids:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        sh('umount -R %s' % shared)
        # A bind that leaked would hide the host's resolver file: never leave it there.
        if any(str(src) in line for line in mine()):
            sh('umount /etc/resolv.conf')


def test_interface_ipv4_reads_the_primary_address_in_the_namespace(two_netns):
    """As ``ip -4 addr show`` lists it first, read in the namespace, not the caller's; None
    without an address; ENODEV for a missing interface, NetnsError for a missing namespace."""
    a, b = two_netns
    assert interface_ipv4(a, 'd0') is None
    sh('ip -n %s addr add 10.244.7.9/24 dev d0 && ip -n %s addr add 10.244.8.1/16 dev d0 && '
       'ip -n %s addr add 10.1.2.3/30 dev d0' % (a, a, b))
    assert interface_ipv4(a, 'd0') == '10.244.7.9/24'
    assert interface_ipv4(b, 'd0') == '10.1.2.3/30'
    assert interface_ipv4('/run/netns/' + b, 'd0') == '10.1.2.3/30'
    with pytest.raises(OSError) as e:
        interface_ipv4(a, 'nothere0')
    assert e.value.errno == errno.ENODEV
    with pytest.raises(OSError) as e:
        interface_ipv4(a, 'd0' + 'x' * 14)  # 16 bytes: never cut short to another name
    assert e.value.errno == errno.EINVAL
    with pytest.raises(NetnsError, match='network namespace %s-none' % a):
        interface_ipv4(a + '-none', 'd0')

"""plugins/module_utils/nschild.py on real mount and UTS namespaces (needs root): a forked
child makes or enters them and works there; a new namespace is pinned only when the work
succeeded, the caller's own namespaces never change, and no child is left behind. Everything
lives below a private directory of the test's own, removed afterwards. Named network
namespaces made and removed as ``ip netns add/del`` do, seen by ``ip`` itself, with names of
the test's own (deleted after it)."""

import json
import os
import socket
import subprocess
import sys

import pytest

from conftest import ROOT, sh

sys.path.insert(0, os.path.join(ROOT, '.collections'))
from ansible_collections.k8slab.podnet.plugins.module_utils.netns import NetnsError  # noqa: E402
from ansible_collections.k8slab.podnet.plugins.module_utils.nschild import (  # noqa: E402
    CLONE_NEWNS, CLONE_NEWUTS, in_child, mount, netns_add, netns_delete, sethostname)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='needs root')


def mounted(path):
    with open('/proc/self/mountinfo') as f:
        return any(line.split()[4] == path for line in f)


def own_namespaces():
    return [os.stat('/proc/self/ns/' + n).st_ino for n in ('mnt', 'uts')]


def no_children():
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


@pytest.fixture(autouse=True)
def host_name_kept():
    """Were a child's UTS namespace not its own, the host's name would change: put it back."""
    name = socket.gethostname()
    yield
    if socket.gethostname() != name:
        sethostname(name)


@pytest.fixture
def pins(uid):
    """A private bind mount of a fresh directory (namespace files can only be bound into a
    private mount) with the files mnt and uts in it, and a shared mount beside it with a
    directory mp (so a mount there would reach the host, were the child's copy not private);
    all unmounted and removed after the test."""
    base = '/run/kc%s' % uid
    try:
        os.makedirs(base + '-shared/mp')
        os.makedirs(base)
        sh('mount --bind {0} {0} && mount --make-private {0}'.format(base))
        sh('mount --bind {0}-shared {0}-shared && mount --make-shared {0}-shared'.format(base))
        for name in ('mnt', 'uts'):
            open(os.path.join(base, name), 'w').close()
        yield base
    finally:
        for path in (base + '/mnt', base + '/uts', base + '-shared/mp', base + '-shared', base):
            subprocess.run(['umount', path], capture_output=True, check=False)
        sh('rm -rf {0} {0}-shared'.format(base))


def test_new_namespaces_are_pinned_only_when_the_work_succeeded(pins):
    mnt, uts = pins + '/mnt', pins + '/uts'
    before, host_name = own_namespaces(), socket.gethostname()

    def fails():
        sethostname('kc-broken')
        raise ValueError('the setup broke')
    with pytest.raises(NetnsError, match='the setup broke'):
        in_child(fails, new={CLONE_NEWNS: mnt, CLONE_NEWUTS: uts})
    assert not mounted(mnt) and not mounted(uts)

    def works():
        sethostname('kc-node')
        mount('kc-test', pins + '-shared/mp', 'tmpfs', 0, 'size=1m')
        return socket.gethostname()
    assert in_child(works, new={CLONE_NEWNS: mnt, CLONE_NEWUTS: uts}) == 'kc-node'
    assert mounted(mnt) and mounted(uts)
    assert sh('nsenter --uts=%s hostname' % uts).strip() == 'kc-node'
    assert 'kc-test' in sh('nsenter --mount=%s cat /proc/self/mountinfo' % mnt)
    # Entered again: the UTS pin is out of sight inside the node's mount namespace (made
    # before the pin), so both files are opened before either is entered.
    assert in_child(socket.gethostname, enter={CLONE_NEWNS: mnt, CLONE_NEWUTS: uts}) == 'kc-node'
    # A half-made pair (the mount namespace pinned, the UTS one not): enter one, make the other.
    sh('umount %s' % uts)

    def renamed():
        sethostname('kc-again')
        return socket.gethostname()
    assert in_child(renamed, enter={CLONE_NEWNS: mnt}, new={CLONE_NEWUTS: uts}) == 'kc-again'
    assert sh('nsenter --uts=%s hostname' % uts).strip() == 'kc-again'
    assert 'kc-test' in sh('nsenter --mount=%s cat /proc/self/mountinfo' % mnt)
    # The caller stayed where it was: namespaces, host name, mount table.
    assert own_namespaces() == before and socket.gethostname() == host_name
    assert not mounted(pins + '-shared/mp')
    assert no_children()


def test_a_failed_pin_undoes_the_pins_made_before_it(pins):
    mnt, missing = pins + '/mnt', pins + '/gone/uts'
    with pytest.raises(NetnsError, match='cannot pin the uts namespace at ' + missing):
        in_child(lambda: None, new={CLONE_NEWNS: mnt, CLONE_NEWUTS: missing})
    assert not mounted(mnt)
    assert no_children()


def test_a_namespace_that_cannot_be_entered_is_named(pins):
    with pytest.raises(NetnsError, match='cannot enter the uts namespace %s' % (pins + '/uts')):
        in_child(lambda: 'never', enter={CLONE_NEWUTS: pins + '/uts'})  # a plain file
    with pytest.raises(NetnsError, match='cannot open the mnt namespace %s: No such file' % (pins + '/nothing')):
        in_child(lambda: 'never', enter={CLONE_NEWNS: pins + '/nothing'})
    assert no_children()


def test_named_network_namespaces_as_ip_netns_add_and_del_make_them(uid, netns_cleanup):
    name = 'kc%s-pod' % uid
    netns_cleanup.append(name)
    home = os.readlink('/proc/thread-self/ns/net')
    assert netns_add(name) == '/run/netns/' + name
    assert os.readlink('/proc/thread-self/ns/net') == home  # the caller stays where it was
    assert name in sh('ip netns list').split()
    links = json.loads(sh('ip -j -n %s link show' % name))
    assert [(l['ifname'], 'UP' in l['flags']) for l in links] == [('lo', True)]
    assert sh('findmnt -n -o PROPAGATION /run/netns').strip() == 'shared'  # as iproute2 leaves it
    inode = os.stat('/run/netns/' + name).st_ino
    # An existing name fails, named, and the namespace there stays as it was.
    with pytest.raises(NetnsError, match='/run/netns/%s: File exists' % name):
        netns_add(name)
    assert os.stat('/run/netns/' + name).st_ino == inode
    for bad in ('../kc%s' % uid, '', '..', 'x' * 256, 'kc\0x', b'kc'):
        with pytest.raises(NetnsError, match='not a plain name'):
            netns_add(bad)
        with pytest.raises(NetnsError, match='not a plain name'):
            netns_delete(bad)  # '' would be /run/netns itself
    # Checked while ours is there: a lab's teardown elsewhere removes an empty /run/netns.
    assert mounted('/run/netns')
    netns_delete(name)
    netns_delete(name)  # gone already: no error
    assert not os.path.exists('/run/netns/' + name) and not mounted('/run/netns/' + name)
    assert name not in sh('ip netns list').split()
    without_lo = 'kc%s-down' % uid
    netns_cleanup.append(without_lo)
    netns_add(without_lo, loopback_up=False)
    assert 'UP' not in json.loads(sh('ip -j -n %s link show lo' % without_lo))[0]['flags']
    netns_delete(without_lo)

"""Unit tests of the host-local store and allocator (plugins/module_utils/hostlocal.py).

Pure logic plus a real file system under tmp_path; no root needed. The comparison with the
real plugin is in tests/integration/test_cni_ipam.py.
"""

import errno
import json
import fcntl
import os
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, '.collections'))

from ansible_collections.k8slab.podnet.plugins.module_utils.hostlocal import (  # noqa: E402
    HostLocalError, Range, StoreView, ensure, render_diff, validate_container_id,
    read_store, validate_ifname, validate_network_name, validate_requests)


def req(*ids, **kw):
    return validate_requests([dict(container_id=i, ifname=kw.get('ifname', 'eth0'),
                                   ip=kw.get('ip')) for i in ids],
                             kw.get('state', 'present'), kw.get('rng'))


def snapshot(path):
    """Every file under path -> (bytes, mode), to prove a store is unchanged."""
    out = {}
    for root, _dirs, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            with open(p, 'rb') as fh:
                out[os.path.relpath(p, path)] = (fh.read(), os.stat(p).st_mode)
    return out


# ---- ranges ---------------------------------------------------------------------------------

def test_range_defaults_ipv4():
    r = Range('10.244.1.0/24')
    assert (str(r.start), str(r.end), str(r.gateway)) == ('10.244.1.1', '10.244.1.254',
                                                          '10.244.1.1')
    assert str(r) == '10.244.1.1-10.244.1.254'
    assert r.interface(r.end) == '10.244.1.254/24'


def test_range_defaults_ipv6():
    r = Range('fd00:244:1::/120')
    assert str(r) == 'fd00:244:1::1-fd00:244:1::ff'
    assert str(r.gateway) == 'fd00:244:1::1'


@pytest.mark.parametrize('kw, word', [
    (dict(subnet='10.244.1.0/33'), "'10.244.1.0/33'"),
    (dict(subnet='10.244.1.0'), "'10.244.1.0'"),
    (dict(subnet='nonsense/24'), "'nonsense/24'"),
    (dict(subnet='10.244.1.5/24'), 'host bits'),
    (dict(subnet='10.244.1.0/31'), "'10.244.1.0/31'"),
    (dict(subnet='10.244.1.1/32'), "'10.244.1.1/32'"),
    (dict(subnet='fd00::/127'), "'fd00::/127'"),
    (dict(subnet='10.244.1.0/24', range_start='10.244.2.1'), 'range_start 10.244.2.1'),
    (dict(subnet='10.244.1.0/24', range_end='10.244.2.1'), 'range_end 10.244.2.1'),
    (dict(subnet='10.244.1.0/24', range_start='10.244.1.9', range_end='10.244.1.8'),
     'range_end 10.244.1.8'),
    (dict(subnet='10.244.1.0/24', gateway='10.244.0.1'), 'gateway 10.244.0.1'),
    (dict(subnet='10.244.1.0/24', gateway='fd00::1'), 'gateway fd00::1'),
    (dict(subnet='10.244.1.0/24', range_start='bogus'), "range_start 'bogus'"),
])
def test_range_refuses_bad_input(kw, word):
    with pytest.raises(HostLocalError) as e:
        Range(**kw)
    assert word in str(e.value)


@pytest.mark.parametrize('value', ['', '-abc', '_abc', 'a b', 'abc\n', 'a/b', 'a:b', u'\xe9t\xe9'])
def test_container_id_refused(value):
    with pytest.raises(HostLocalError) as e:
        validate_container_id(value)
    assert repr(value) in str(e.value)


@pytest.mark.parametrize('value', ['a', '0abc', 'pod.1_x-Y', 'f' * 64])
def test_container_id_accepted(value):
    assert validate_container_id(value) == value


@pytest.mark.parametrize('value', ['', '.', '..', 'eth 0', 'eth/0', 'eth:0', 'a' * 16,
                                   u'\xe9' * 8, 'eth0\n'])
def test_ifname_refused(value):
    with pytest.raises(HostLocalError) as e:
        validate_ifname(value)
    assert repr(value) in str(e.value)


@pytest.mark.parametrize('value', ['', '-cbr0', 'cb r0', 'cbr0\n', '../x', 'a/b'])
def test_network_name_refused(value):
    with pytest.raises(HostLocalError) as e:
        validate_network_name(value)
    assert repr(value) in str(e.value)


def test_requests_refuse_duplicates_and_bad_ip():
    rng = Range('10.244.1.0/24')
    with pytest.raises(HostLocalError, match='listed twice'):
        req('a', 'a', rng=rng)
    with pytest.raises(HostLocalError, match="ifname must be a non-empty string, got ''"):
        req('a', ifname='', rng=rng)
    assert validate_requests([{'container_id': 'a'}], 'present', rng)[0]['ifname'] == 'eth0'
    for ip, word in (('10.244.1.1', "gateway"), ('10.244.1.x', "'10.244.1.x'")):
        with pytest.raises(HostLocalError, match=word):
            req('a', ip=ip, rng=rng)
    # outside the range: refused later, by ensure(), after moving the cursor as host-local
    assert str(req('a', ip='10.244.2.7', rng=rng)[0]['ip']) == '10.244.2.7'
    # a requested ip is irrelevant to a release
    assert req('a', ip='junk', state='absent')[0]['ip'] is None


# ---- round robin ----------------------------------------------------------------------------

def order(rng, last, n):
    out = []
    for addr in rng.candidates(last):
        out.append(str(addr))
        if len(out) == n:
            break
    return out


def test_candidates_start_after_gateway_and_wrap():
    rng = Range('10.244.1.0/24')
    assert order(rng, None, 2) == ['10.244.1.2', '10.244.1.3']
    last = rng.end
    assert order(rng, last, 2) == ['10.244.1.2', '10.244.1.3']  # .254 -> wrap, skip gw .1
    assert len(list(rng.candidates(None))) == 253
    full = list(rng.candidates(rng.start.__class__(u'10.244.1.100')))
    assert str(full[0]) == '10.244.1.101' and str(full[-1]) == '10.244.1.100'
    assert len(full) == 253


def test_candidates_gateway_in_the_middle():
    rng = Range('10.244.1.0/24', range_start='10.244.1.1', range_end='10.244.1.254',
                gateway='10.244.1.128')
    got = [str(a) for a in rng.candidates(None)]
    assert got[0] == '10.244.1.1' and got[-1] == '10.244.1.254'
    assert '10.244.1.128' not in got and len(got) == 253


# issue 16 item 9: host-local 1.1.1 hands out 10.66.6.255/24 for range .255-.255; neighbours
# cannot reach it. Network and (IPv4) broadcast addresses are bad input wherever they appear.
@pytest.mark.parametrize('kw, word', [
    (dict(range_start='10.66.6.255', range_end='10.66.6.255'),
     'range_start 10.66.6.255 is the broadcast address of subnet 10.66.6.0/24'),
    (dict(range_end='10.66.6.255'), 'range_end 10.66.6.255 is the broadcast address'),
    (dict(range_start='10.66.6.0'), 'range_start 10.66.6.0 is the network address'),
    (dict(gateway='10.66.6.255'), 'gateway 10.66.6.255 is the broadcast address'),
    (dict(gateway='10.66.6.0'), 'gateway 10.66.6.0 is the network address'),
])
def test_range_refuses_network_and_broadcast(kw, word):
    with pytest.raises(HostLocalError) as e:
        Range('10.66.6.0/24', **kw)
    assert word in str(e.value)
    with pytest.raises(HostLocalError, match='network address'):
        Range('fd00::/64', range_start='fd00::')
    assert str(Range('fd00::/64', range_end='fd00::ffff:ffff:ffff:ffff').end).endswith('ffff')


def test_candidates_cursor_outside_range_restarts():
    rng = Range('10.244.1.0/24', range_start='10.244.1.10', range_end='10.244.1.20')
    assert order(rng, rng.start.__class__(u'10.244.1.50'), 1) == ['10.244.1.10']


# ---- allocation against an in-memory store ----------------------------------------------------

def test_round_robin_release_then_next():
    rng = Range('10.244.1.0/24')
    view = StoreView()
    got = [str(view.allocate(rng, c, 'eth0')[0]) for c in ('a', 'b', 'c')]
    assert got == ['10.244.1.2', '10.244.1.3', '10.244.1.4']
    assert view.release('b', 'eth0') == ['10.244.1.3']
    assert str(view.allocate(rng, 'd', 'eth0')[0]) == '10.244.1.5'
    assert view.files['10.244.1.5'] == b'd\r\neth0'
    assert view.files['last_reserved_ip.0'] == b'10.244.1.5'


def test_reallocation_is_idempotent_per_ifname():
    rng = Range('10.244.1.0/24')
    view = StoreView({'10.244.1.7': b'a\r\neth0', 'last_reserved_ip.0': b'10.244.1.7'})
    assert view.allocate(rng, 'a', 'eth0') == (rng.start.__class__(u'10.244.1.7'), False)
    assert view.changes() == []
    addr, changed = view.allocate(rng, 'a', 'net1')
    assert str(addr) == '10.244.1.8' and changed


def test_held_ip_outside_range_is_not_reused():
    rng = Range('10.244.1.0/24', range_start='10.244.1.100')
    view = StoreView({'10.244.1.7': b'a\r\neth0'})
    assert str(view.allocate(rng, 'a', 'eth0')[0]) == '10.244.1.100'


def test_old_format_and_whitespace_count_as_held():
    rng = Range('10.244.1.0/24')
    view = StoreView({'10.244.1.9': b'old\n', '10.244.1.10': b'  new\r\neth0\n'})
    assert str(view.allocate(rng, 'old', 'eth5')[0]) == '10.244.1.9'
    assert str(view.allocate(rng, 'new', 'eth0')[0]) == '10.244.1.10'


def test_release_exact_first_then_id_only():
    view = StoreView({'10.244.1.2': b'a\r\neth0', '10.244.1.3': b'a', '10.244.1.4': b'a\r\nnet1'})
    assert view.release('a', 'eth0') == ['10.244.1.2']
    assert view.release('a', 'eth9') == ['10.244.1.3']
    assert view.release('a', 'eth9') == []
    assert sorted(view.files) == ['10.244.1.4']


def test_last_reserved_ip_is_parsed_strictly():
    rng = Range('10.244.1.0/24')
    view = StoreView({'last_reserved_ip.0': b'10.244.1.50\n'})
    assert str(view.allocate(rng, 'a', 'eth0')[0]) == '10.244.1.2'
    view = StoreView({'last_reserved_ip.0': b'10.244.1.50'})
    assert str(view.allocate(rng, 'a', 'eth0')[0]) == '10.244.1.51'


def test_requested_ip_moves_cursor_and_conflicts():
    rng = Range('10.244.1.0/24')
    view = StoreView()
    ip = rng.check_requested('10.244.1.100')
    assert view.allocate(rng, 'a', 'eth0', ip) == (ip, True)
    assert view.files['last_reserved_ip.0'] == b'10.244.1.100'
    assert str(view.allocate(rng, 'b', 'eth0')[0]) == '10.244.1.101'
    with pytest.raises(HostLocalError, match='10.244.1.100 is not available'):
        view.allocate(rng, 'c', 'eth0', ip)
    with pytest.raises(HostLocalError, match='already holds 10.244.1.101'):
        view.allocate(rng, 'b', 'eth0', ip)
    assert view.allocate(rng, 'a', 'eth0', ip) == (ip, False)


def test_foreign_entries_block_reservation():
    rng = Range('10.244.1.0/24')
    view = StoreView({'10.244.1.2': b'someone\r\neth0'}, names={'10.244.1.2', '10.244.1.3'})
    assert str(view.allocate(rng, 'a', 'eth0')[0]) == '10.244.1.4'


def test_exhaustion_message():
    rng = Range('10.244.1.0/24', range_start='10.244.1.1', range_end='10.244.1.3')
    view = StoreView()
    view.allocate(rng, 'a', 'eth0')
    view.allocate(rng, 'b', 'eth0')
    with pytest.raises(HostLocalError) as e:
        view.allocate(rng, 'c', 'eth0')
    assert str(e.value).endswith('no IP addresses available in range set: '
                                 '10.244.1.1-10.244.1.3')


# ---- ensure(): the store on disk --------------------------------------------------------------

def test_ensure_writes_exact_bytes_and_modes(tmp_path):
    os.umask(0o022)
    rng = Range('10.244.1.0/24')
    res = ensure(str(tmp_path), 'cbr0', rng, req('a', 'b'))
    store = tmp_path / 'cbr0'
    assert res['changed'] and res['store'] == str(store)
    assert [a['ip'] for a in res['allocations']] == ['10.244.1.2/24', '10.244.1.3/24']
    snap = snapshot(str(store))
    assert snap == {'10.244.1.2': (b'a\r\neth0', 0o100644), '10.244.1.3': (b'b\r\neth0', 0o100644),
                    'last_reserved_ip.0': (b'10.244.1.3', 0o100644), 'lock': (b'', 0o100750)}
    assert oct(os.stat(str(store)).st_mode) == oct(0o40755)
    again = ensure(str(tmp_path), 'cbr0', rng, req('a', 'b'))
    assert not again['changed'] and again['allocations'] == res['allocations']
    assert snapshot(str(store)) == snap


def test_check_mode_writes_nothing(tmp_path):
    rng = Range('10.244.1.0/24')
    res = ensure(str(tmp_path / 'x'), 'cbr0', rng, req('a'), check_mode=True)
    assert res['changed'] and res['allocations'][0]['ip'] == '10.244.1.2/24'
    assert not (tmp_path / 'x').exists()
    ensure(str(tmp_path), 'cbr0', rng, req('a'))
    before = snapshot(str(tmp_path))
    res = ensure(str(tmp_path), 'cbr0', rng, req('b', 'c'), check_mode=True)
    assert [a['ip'] for a in res['allocations']] == ['10.244.1.3/24', '10.244.1.4/24']
    res = ensure(str(tmp_path), 'cbr0', rng, req('a'), state='absent', check_mode=True)
    assert res['changed'] and res['released'][0]['ips'] == ['10.244.1.2']
    assert snapshot(str(tmp_path)) == before


def test_diff_shows_changed_files(tmp_path):
    rng = Range('10.244.1.0/24')
    res = ensure(str(tmp_path), 'cbr0', rng, req('a'))
    diff = render_diff(res['store'], res['changes'])
    assert [d['after_header'] for d in diff] == [str(tmp_path / 'cbr0' / '10.244.1.2'),
                                                 str(tmp_path / 'cbr0' / 'last_reserved_ip.0')]
    assert diff[0]['before'] == '' and diff[0]['after'] == 'a\\r\neth0'
    res = ensure(str(tmp_path), 'cbr0', rng, req('a'), state='absent')
    diff = render_diff(res['store'], res['changes'])
    assert len(diff) == 1 and diff[0]['after'] == '' and diff[0]['after_header'].endswith('(absent)')


def test_release_of_unknown_changes_nothing(tmp_path):
    res = ensure(str(tmp_path / 'none'), 'cbr0', None, req('zz', state='absent'), state='absent')
    assert not res['changed'] and not (tmp_path / 'none').exists()
    ensure(str(tmp_path), 'cbr0', Range('10.244.1.0/24'), req('a'))
    before = snapshot(str(tmp_path))
    res = ensure(str(tmp_path), 'cbr0', None, req('zz', state='absent'), state='absent')
    assert not res['changed'] and res['released'] == [{'container_id': 'zz', 'ifname': 'eth0',
                                                       'ips': []}]
    assert snapshot(str(tmp_path)) == before


def test_list_exhaustion_leaves_store_unchanged(tmp_path):
    rng = Range('10.244.1.0/24', range_end='10.244.1.5')
    ensure(str(tmp_path), 'cbr0', rng, req('a', 'b'))
    before = snapshot(str(tmp_path))
    with pytest.raises(HostLocalError) as e:
        ensure(str(tmp_path), 'cbr0', rng, req('c', 'd', 'e'))
    assert 'container e ifname eth0: no IP addresses available in range set: ' \
           '10.244.1.1-10.244.1.5' in str(e.value)
    assert snapshot(str(tmp_path)) == before


def test_fresh_store_exhaustion_creates_nothing(tmp_path):
    rng = Range('10.244.1.0/24', range_start='10.244.1.1', range_end='10.244.1.2')
    with pytest.raises(HostLocalError, match='no IP addresses available'):
        ensure(str(tmp_path / 'new'), 'cbr0', rng, req('a', 'b'))
    assert not (tmp_path / 'new').exists()


def test_unwritable_data_dir_creates_nothing(tmp_path):
    (tmp_path / 'file').write_text('x')
    with pytest.raises(HostLocalError) as e:
        ensure(str(tmp_path / 'file' / 'sub'), 'cbr0', Range('10.244.1.0/24'), req('a'))
    assert str(tmp_path / 'file' / 'sub') in str(e.value)
    with pytest.raises(HostLocalError, match="'relative/dir'"):
        ensure('relative/dir', 'cbr0', Range('10.244.1.0/24'), req('a'))
    (tmp_path / 'cbr0').write_text('x')
    with pytest.raises(HostLocalError, match='not a directory'):
        ensure(str(tmp_path), 'cbr0', Range('10.244.1.0/24'), req('a'))
    assert sorted(os.listdir(str(tmp_path))) == ['cbr0', 'file']


def test_write_failure_rolls_back(tmp_path):
    """A last_reserved_ip.0 that is a directory makes the final write fail (EISDIR): the IP
    files written before it are removed again."""
    store = tmp_path / 'cbr0'
    (store / 'last_reserved_ip.0').mkdir(parents=True)
    before = snapshot(str(tmp_path))
    with pytest.raises(HostLocalError, match='last_reserved_ip.0'):
        ensure(str(tmp_path), 'cbr0', Range('10.244.1.0/24'), req('a', 'b'))
    assert before == {}
    assert sorted(os.listdir(str(store))) == ['last_reserved_ip.0', 'lock']


CHILD = """
import sys
sys.path.insert(0, %r)
from ansible_collections.k8slab.podnet.plugins.module_utils.hostlocal import *
res = ensure(%r, 'cbr0', Range('10.244.1.0/24'), validate_requests(
    [dict(container_id=sys.argv[1], ifname='eth0')], 'present'))
print(res['allocations'][0]['ip'])
"""


def child(data_dir, container_id='child'):
    return subprocess.Popen([sys.executable, '-c', CHILD % (os.path.join(ROOT, '.collections'),
                                                            data_dir), container_id],
                            stdout=subprocess.PIPE, text=True)


def test_store_directory_made_concurrently_is_fine(tmp_path, monkeypatch):
    """Another allocator creating the store directory between our check and our mkdir (the
    EEXIST race of a fresh store) is not an error, as with Go's MkdirAll."""
    real_mkdir = os.mkdir

    def someone_else_first(path, mode=0o777):
        real_mkdir(path, mode)
        raise OSError(errno.EEXIST, 'File exists', path)
    monkeypatch.setattr(os, 'mkdir', someone_else_first)
    res = ensure(str(tmp_path / 'a' / 'b'), 'cbr0', Range('10.244.1.0/24'), req('x'))
    assert res['allocations'][0]['ip'] == '10.244.1.2/24'


def test_flock_excludes_a_concurrent_allocation(tmp_path):
    """While someone holds flock(LOCK_EX) on the lock file, ensure() waits. (The child is a
    fresh process: a forked one would share our open file description and thus our lock.)"""
    store = tmp_path / 'cbr0'
    store.mkdir()
    fd = os.open(str(store / 'lock'), os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o750)
    fcntl.flock(fd, fcntl.LOCK_EX)
    proc = child(str(tmp_path))
    try:
        time.sleep(1.0)
        assert proc.poll() is None and not (store / '10.244.1.2').exists(), \
            'allocated while the lock was held'
        # what host-local would do while holding the lock: take .2 itself
        (store / '10.244.1.2').write_bytes(b'plugin\r\neth0')
        (store / 'last_reserved_ip.0').write_bytes(b'10.244.1.2')
    finally:
        os.close(fd)
        out = proc.communicate(timeout=20)[0]
    assert out.strip() == '10.244.1.3/24'


# ---- issue 16 items 10 and 11 -------------------------------------------------------------

def test_requested_ip_outside_range_moves_cursor_like_host_local(tmp_path):
    """host-local 1.1.1: ADD a (.2), ADD r1 IP=10.98.0.5 fails after allocating and
    releasing .3, ADD b gets .4. Only last_reserved_ip.0 is written by the failed call."""
    rng = Range('10.99.0.0/24')
    data = str(tmp_path)
    ensure(data, 'cbr0', rng, req('a', rng=rng))
    before = snapshot(str(tmp_path / 'cbr0'))
    with pytest.raises(HostLocalError, match='10.98.0.5') as e:
        ensure(data, 'cbr0', rng, req('r1', ip='10.98.0.5', rng=rng))
    assert 'not in range set' in str(e.value)
    after = snapshot(str(tmp_path / 'cbr0'))
    assert after['last_reserved_ip.0'][0] == b'10.99.0.3'
    del before['last_reserved_ip.0'], after['last_reserved_ip.0']
    assert after == before  # nothing else written
    res = ensure(data, 'cbr0', rng, req('b', rng=rng))
    assert res['allocations'][0]['ip'] == '10.99.0.4/24'
    assert res['before'] == {'b/eth0': []} and res['after'] == {'b/eth0': ['10.99.0.4']}


def test_requested_ip_outside_range_check_mode_and_fresh_store(tmp_path):
    rng = Range('10.99.0.0/24')
    with pytest.raises(HostLocalError, match='10.98.0.5'):
        ensure(str(tmp_path), 'cbr0', rng, req('r1', ip='10.98.0.5', rng=rng), check_mode=True)
    assert os.listdir(str(tmp_path)) == []
    with pytest.raises(HostLocalError, match='10.98.0.5'):
        ensure(str(tmp_path), 'cbr0', rng, req('r1', ip='10.98.0.5', rng=rng))
    assert sorted(os.listdir(str(tmp_path / 'cbr0'))) == ['last_reserved_ip.0', 'lock']
    with open(str(tmp_path / 'cbr0' / 'last_reserved_ip.0'), 'rb') as f:
        assert f.read() == b'10.99.0.2'


@pytest.mark.parametrize('content', [b'\xff\xfe\x00junk', b'abc\r\n\xc3(', b'', b'\r\n'])
def test_read_store_survives_any_bytes(tmp_path, content):
    store = tmp_path / 'cbr0'
    store.mkdir()
    (store / '10.244.1.2').write_bytes(content)
    (store / '10.244.1.3').write_bytes(b'httpd\r\neth0')
    (store / 'last_reserved_ip.0').write_bytes(b'\xff')
    (store / 'lock').write_bytes(b'')
    (store / b'\xff\xfe'.decode('utf-8', 'surrogateescape')).write_bytes(b'x')
    got = read_store(str(store))
    assert sorted(got) == ['10.244.1.2', '10.244.1.3']
    assert got['10.244.1.3'] == {'container_id': 'httpd', 'ifname': 'eth0'}
    json.dumps(got)  # printable as JSON (node_info, k8slab status --json)
    assert read_store(str(tmp_path / 'missing')) == {}

"""The AnsiballZ payloads kept between runs (plugins/plugin_utils/ansiballz_cache.py): the
fingerprint of their sources, which files are kept, where, and who may have written them."""

import hashlib
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), '.collections'))

from ansible_collections.k8slab.podnet.plugins.plugin_utils import (  # noqa: E402
    ansiballz_cache as cache)

OURS = 'ansible_collections.k8slab.podnet.plugins.modules.bridge-ZIP_DEFLATED-none'
CORE = 'ansible.modules.ping-ZIP_DEFLATED-none'


def _tree(root):
    """A stand-in ansible-core package and collection under root: (ansible_dir, collection)."""
    files = ['ansible/modules/ping.py', 'ansible/module_utils/basic.py',
             'coll/plugins/modules/bridge.py', 'coll/plugins/module_utils/iproute.py']
    for rel in files:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text('# %s\n' % rel)
    return str(root / 'ansible'), str(root / 'coll')


def test_fingerprint_follows_every_source_but_not_bytecode(tmp_path):
    ansible_dir, coll = _tree(tmp_path)
    key = cache.fingerprint(ansible_dir, '2.19.0', coll)
    assert key == cache.fingerprint(ansible_dir, '2.19.0', coll)
    pycache = tmp_path / 'coll/plugins/module_utils/__pycache__'
    pycache.mkdir()
    (pycache / 'iproute.cpython-311.pyc').write_bytes(b'\0')
    (tmp_path / 'coll/plugins/modules/README').write_text('not Python')
    assert cache.fingerprint(ansible_dir, '2.19.0', coll) == key
    assert cache.fingerprint(ansible_dir, '2.19.1', coll) != key
    seen = {key}
    # ansible-core's files (a release's) by size and mtime; the collection's by content.
    for rel in ('ansible/module_utils/basic.py', 'ansible/modules/ping.py'):
        path = tmp_path / rel
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # same size, touched
        now = cache.fingerprint(ansible_dir, '2.19.0', coll)
        assert now not in seen, rel
        seen.add(now)
    for rel in ('coll/plugins/modules/bridge.py', 'coll/plugins/module_utils/iproute.py'):
        path = tmp_path / rel
        os.utime(path)
        assert cache.fingerprint(ansible_dir, '2.19.0', coll) == now, rel
        path.write_text(path.read_text() + '# edited\n')
        now = cache.fingerprint(ansible_dir, '2.19.0', coll)
        assert now not in seen, rel
        seen.add(now)
    (tmp_path / 'coll/plugins/module_utils/new.py').write_text('')
    now = cache.fingerprint(ansible_dir, '2.19.0', coll)
    assert now not in seen
    seen.add(now)
    # The collection's files by content: an edit of the same size with its old mtime restored
    # (cp -p, tar) is still seen; so is its routing.
    util = tmp_path / 'coll/plugins/module_utils/iproute.py'
    st = util.stat()
    util.write_text(util.read_text().upper())
    os.utime(util, ns=(st.st_atime_ns, st.st_mtime_ns))
    now = cache.fingerprint(ansible_dir, '2.19.0', coll)
    assert now not in seen
    seen.add(now)
    (tmp_path / 'coll/meta').mkdir()
    (tmp_path / 'coll/meta/runtime.yml').write_text('plugin_routing: {}\n')
    now = cache.fingerprint(ansible_dir, '2.19.0', coll)
    assert now not in seen
    seen.add(now)
    # A playbook's own module_utils (they shadow ansible-core's), by content too.
    mine = tmp_path / 'play/module_utils'
    mine.mkdir(parents=True)
    (mine / 'basic.py').write_text('# mine\n')
    utils = cache.user_module_utils([str(mine), str(tmp_path / 'nowhere'),
                                     str(tmp_path / 'ansible/module_utils')], ansible_dir)
    assert utils == [str(mine)]
    now = cache.fingerprint(ansible_dir, '2.19.0', coll, utils)
    assert now not in seen
    (mine / 'basic.py').write_text('# MINE\n')
    assert cache.fingerprint(ansible_dir, '2.19.0', coll, utils) != now


def _run_cache(local_tmp, names):
    run = local_tmp / cache.RUN_CACHE_DIR
    run.mkdir(parents=True)
    for name in names:
        (run / name).write_bytes(name.encode())
    return run


def _stored(store):
    """{run cache name: store entry} of a store directory."""
    return dict((e.rpartition('~')[0], e) for e in os.listdir(store))


def test_store_keeps_finished_payloads_of_covered_modules_and_seed_links_them(tmp_path):
    local_tmp = tmp_path / 'tmp' / 'ansible-local-1abc'
    names = [OURS, CORE, OURS + '.lock', CORE + '-part',
             'ansible_collections.other.coll.plugins.modules.x-ZIP_DEFLATED-none',
             'ansible.legacy.mine-ZIP_DEFLATED-none']
    _run_cache(local_tmp, names)
    assert cache.store(str(local_tmp), 'k1') == sorted([OURS, CORE])
    store = tmp_path / 'tmp' / cache.STORE_DIR
    assert oct(store.stat().st_mode & 0o777) == oct(0o700)
    assert oct((store / 'k1').stat().st_mode & 0o777) == oct(0o700)
    entries = _stored(store / 'k1')
    assert sorted(entries) == sorted([OURS, CORE])
    assert entries[OURS] == OURS + '~' + hashlib.sha256(OURS.encode()).hexdigest()
    assert cache.store(str(local_tmp), 'k1') == []  # already there
    # What the run had before this fingerprint's sources applied is not stored under it.
    assert cache.store(str(local_tmp), 'k0', skip={OURS}) == [CORE]
    assert sorted(cache.run_cache_names(str(local_tmp))) == sorted(names)
    # A later run: seeded before its workers start, its own files left alone.
    later = tmp_path / 'tmp' / 'ansible-local-2def'
    run = _run_cache(later, [CORE])
    (run / CORE).write_bytes(b'this run built it')
    assert cache.seed(str(later), 'k1') == [OURS]
    assert (run / OURS).read_bytes() == OURS.encode()
    assert (run / CORE).read_bytes() == b'this run built it'
    assert cache.seed(str(later), 'other-key') == []


def test_a_damaged_payload_is_removed_not_read_and_stored_again(tmp_path):
    local_tmp = tmp_path / 'tmp' / 'ansible-local-1abc'
    _run_cache(local_tmp, [OURS, CORE])
    cache.store(str(local_tmp), 'k1')
    store = tmp_path / 'tmp' / cache.STORE_DIR / 'k1'
    (store / _stored(store)[OURS]).write_bytes(b'')  # truncated by a crash, say
    later = tmp_path / 'tmp' / 'ansible-local-2def'
    (later / cache.RUN_CACHE_DIR).mkdir(parents=True)
    assert cache.seed(str(later), 'k1') == [CORE]
    assert sorted(_stored(store)) == [CORE]
    # The next run builds it and stores it afresh.
    assert cache.store(str(local_tmp), 'k1') == [OURS]
    assert sorted(_stored(store)) == sorted([OURS, CORE])


def test_what_others_can_write_is_not_read(tmp_path):
    local_tmp = tmp_path / 'tmp' / 'ansible-local-1abc'
    _run_cache(local_tmp, [OURS, CORE])
    assert cache.store(str(local_tmp), 'k1') == sorted([OURS, CORE])
    root = tmp_path / 'tmp' / cache.STORE_DIR
    later = tmp_path / 'tmp' / 'ansible-local-2def'
    (later / cache.RUN_CACHE_DIR).mkdir(parents=True)
    # A file others may write, a file of another user's: not read.
    os.chmod(root / 'k1' / _stored(root / 'k1')[OURS], 0o666)
    os.chown(root / 'k1' / _stored(root / 'k1')[CORE], 65534, 65534)
    assert cache.seed(str(later), 'k1') == []
    # A fingerprint directory, or the store, others may write: not read.
    os.chmod(root / 'k1' / _stored(root / 'k1')[OURS], 0o644)
    os.chown(root / 'k1' / _stored(root / 'k1')[CORE], os.geteuid(), os.getegid())
    os.chmod(root / 'k1', 0o777)
    assert cache.seed(str(later), 'k1') == []
    os.chmod(root / 'k1', 0o700)
    os.chmod(root, 0o777)
    assert cache.seed(str(later), 'k1') == []
    assert not os.listdir(later / cache.RUN_CACHE_DIR)
    assert cache.store(str(local_tmp), 'k2') == []
    os.chmod(root, 0o700)
    assert cache.seed(str(later), 'k1') == sorted([OURS, CORE])


def test_store_prunes_to_the_most_recently_used_fingerprints(tmp_path):
    local_tmp = tmp_path / 'tmp' / 'ansible-local-1abc'
    _run_cache(local_tmp, [OURS])
    store = tmp_path / 'tmp' / cache.STORE_DIR
    for age, key in enumerate(['k4', 'k3', 'k2', 'k1']):
        assert cache.store(str(local_tmp), key, keep=3) == [OURS]
        os.utime(store / key, (1000 - age, 1000 - age))
    later = tmp_path / 'tmp' / 'ansible-local-2def'
    (later / cache.RUN_CACHE_DIR).mkdir(parents=True)
    assert cache.seed(str(later), 'k1') == [OURS]  # used now: the newest
    cache.store(str(local_tmp), 'k5', keep=3)
    assert sorted(os.listdir(store)) == ['k1', 'k4', 'k5']

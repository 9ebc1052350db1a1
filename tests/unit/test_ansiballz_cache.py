"""The AnsiballZ payloads kept between runs (plugins/plugin_utils/ansiballz_cache.py): the
fingerprint of their sources, which files are kept, where, and who may have written them."""

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
    for rel in ('ansible/module_utils/basic.py', 'ansible/modules/ping.py',
                'coll/plugins/modules/bridge.py', 'coll/plugins/module_utils/iproute.py'):
        path = tmp_path / rel
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # same size, touched
        now = cache.fingerprint(ansible_dir, '2.19.0', coll)
        assert now not in seen, rel
        seen.add(now)
    (tmp_path / 'coll/plugins/module_utils/new.py').write_text('')
    assert cache.fingerprint(ansible_dir, '2.19.0', coll) not in seen


def _run_cache(local_tmp, names):
    run = local_tmp / cache.RUN_CACHE_DIR
    run.mkdir(parents=True)
    for name in names:
        (run / name).write_bytes(name.encode())
    return run


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
    assert sorted(os.listdir(store / 'k1')) == sorted([OURS, CORE])
    assert cache.store(str(local_tmp), 'k1') == []  # already there
    # A later run: seeded before its workers start, its own files left alone.
    later = tmp_path / 'tmp' / 'ansible-local-2def'
    run = _run_cache(later, [CORE])
    (run / CORE).write_bytes(b'this run built it')
    assert cache.seed(str(later), 'k1') == [OURS]
    assert (run / OURS).read_bytes() == OURS.encode()
    assert (run / CORE).read_bytes() == b'this run built it'
    assert cache.seed(str(later), 'other-key') == []


def test_a_store_others_can_write_is_not_read(tmp_path):
    local_tmp = tmp_path / 'tmp' / 'ansible-local-1abc'
    _run_cache(local_tmp, [OURS])
    assert cache.store(str(local_tmp), 'k1') == [OURS]
    later = tmp_path / 'tmp' / 'ansible-local-2def'
    (later / cache.RUN_CACHE_DIR).mkdir(parents=True)
    os.chmod(tmp_path / 'tmp' / cache.STORE_DIR, 0o777)
    assert cache.seed(str(later), 'k1') == []
    assert not os.listdir(later / cache.RUN_CACHE_DIR)
    assert cache.store(str(local_tmp), 'k2') == []


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

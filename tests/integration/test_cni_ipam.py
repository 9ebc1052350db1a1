"""k8slab.podnet.cni_ipam against the real CNI host-local plugin (/usr/lib/cni/host-local).

Every scenario runs operation by operation on three stores: one driven only by the plugin (the
reference), one only by the module, one alternating module and plugin (so each tool works on
what the other wrote, both ways). After every operation the results must agree with the
plugin's and with the known host-local answer, and all stores must be byte-identical (names,
contents, modes). Stores live under tmp_path, never in /var/lib/cni.
"""

import json
import os
import random
import secrets

import pytest

import hostlocal_ref as ref
from conftest import run_playbook

pytestmark = pytest.mark.skipif(not os.access(ref.PLUGIN, os.X_OK),
                                reason='containernetworking-plugins is not installed')

NET = '10.244.1.'

# (conf, ops). An op is (command, container_id[, ifname], expected) with command add/del, or
# ('write', file, bytes) to set up the store the same way for every tool. `expected` of an add
# is the address/prefix, or 'fail:<text both tools must say>'; for a del it is None.
SCENARIOS = {
    'sequential': ({}, [
        ('add', 'a', NET + '2/24'), ('add', 'b', NET + '3/24'), ('add', 'c', NET + '4/24'),
        ('add', 'd', NET + '5/24'),
    ]),
    'release_round_robin': ({}, [
        ('add', 'a', NET + '2/24'), ('add', 'b', NET + '3/24'), ('add', 'c', NET + '4/24'),
        ('del', 'b', None), ('add', 'd', NET + '5/24'), ('add', 'b', NET + '6/24'),
        ('del', 'a', None), ('del', 'unknown', None), ('add', 'e', NET + '7/24'),
    ]),
    'wrap_and_exhaustion': ({'range_end': NET + '5'}, [
        ('add', 'a', NET + '2/24'), ('add', 'b', NET + '3/24'), ('add', 'c', NET + '4/24'),
        ('add', 'd', NET + '5/24'), ('del', 'b', None), ('add', 'e', NET + '3/24'),
        ('del', 'a', None), ('del', 'c', None), ('add', 'f', NET + '4/24'),
        ('add', 'g', NET + '2/24'),
        ('add', 'h', 'fail:no IP addresses available in range set: 10.244.1.1-10.244.1.5'),
    ]),
    'gateway_in_the_middle_wrap': ({'range_start': NET + '1', 'range_end': NET + '254',
                                    'gateway': NET + '253'}, [
        ('add', 'a', NET + '1/24'), ('add', 'b', NET + '2/24'),
        ('write', 'last_reserved_ip.0', b'10.244.1.252'),
        ('add', 'c', NET + '254/24'), ('add', 'd', NET + '3/24'),
    ]),
    # issue 16 item 10: host-local allocates the next address for a request no range holds,
    # then releases it: the cursor moves, and the next container gets the address after it
    'requested_ip_outside_range': ({'range_end': NET + '50'}, [
        ('add', 'a', NET + '2/24'),
        ('add', 'r1', '', '10.98.0.5', 'fail:10.98.0.5'),
        ('add', 'b', NET + '4/24'),
        ('add', 'r2', '', NET + '60', 'fail:10.244.1.60'),
        ('add', 'c', NET + '6/24'),
        ('add', 'b', '', '10.98.0.5', 'fail:'),  # holds .4 already: no cursor move
        ('add', 'd', NET + '7/24'),
    ]),
    'gateway_is_range_start': ({'range_start': NET + '10', 'range_end': NET + '12',
                                'gateway': NET + '10'}, [
        ('add', 'a', NET + '11/24'), ('add', 'b', NET + '12/24'),
        ('add', 'c', 'fail:no IP addresses available in range set: 10.244.1.10-10.244.1.12'),
        ('del', 'a', None), ('add', 'c', NET + '11/24'),
    ]),
    'requested_ips': ({}, [
        ('add', 'a', '', NET + '100', NET + '100/24'), ('add', 'b', NET + '101/24'),
        ('add', 'c', '', NET + '100', 'fail:10.244.1.100'),
        ('add', 'c', '', NET + '1', 'fail:10.244.1.1'),
        ('del', 'a', None), ('add', 'e', '', NET + '100', NET + '100/24'),
        ('add', 'f', NET + '102/24'),
    ]),
    'cursor_parsed_strictly': ({}, [
        ('write', 'last_reserved_ip.0', b'10.244.1.50\n'), ('add', 'a', NET + '2/24'),
        ('write', 'last_reserved_ip.0', b'10.244.1.50'), ('add', 'b', NET + '51/24'),
        ('write', 'last_reserved_ip.0', b'junk'), ('add', 'c', NET + '3/24'),
        ('write', 'last_reserved_ip.0', b'10.244.2.9'), ('add', 'd', NET + '4/24'),
    ]),
    'old_format_and_ifnames': ({}, [
        ('write', '10.244.1.7', b'old'), ('write', '10.244.1.8', b'old\r\neth1'),
        ('add', 'a', NET + '2/24'), ('add', 'a', 'net1', NET + '3/24'),
        ('del', 'a', None), ('add', 'b', NET + '4/24'),
        ('del', 'old', None), ('del', 'old', 'eth1', None), ('del', 'a', 'net1', None),
    ]),
    'ipv6': ({'subnet': 'fd00:244:1::/120', 'range_end': 'fd00:244:1::4'}, [
        ('add', 'a', 'fd00:244:1::2/120'), ('add', 'b', 'fd00:244:1::3/120'),
        ('add', 'c', 'fd00:244:1::4/120'),
        ('add', 'd', 'fail:no IP addresses available in range set: '
                     'fd00:244:1::1-fd00:244:1::4'),
        ('del', 'a', None), ('add', 'd', 'fd00:244:1::2/120'),
    ]),
}


def parse_op(op):
    """(command, container_id, ifname, requested ip, expected)"""
    if op[0] == 'write':
        return op
    cmd, cid, rest = op[0], op[1], list(op[2:])
    expected = rest.pop()
    ifname = rest.pop(0) if rest else ''
    ip = rest.pop(0) if rest else None
    return cmd, cid, ifname or 'eth0', ip, expected


def launch(tool, conf, cmd, cid, ifname, ip):
    if tool == 'plugin':
        return ref.plugin_popen(conf, 'ADD' if cmd == 'add' else 'DEL', cid, ifname, ip)
    args = ref.module_args(conf, container_id=cid, ifname=ifname,
                           state='present' if cmd == 'add' else 'absent')
    if ip:
        args['ip'] = ip
    return ref.module_popen(args)


def outcome(tool, proc):
    """(ok, ip, gateway, message) of either tool."""
    if tool == 'plugin':
        r = ref.plugin_result(proc)
    else:
        r = ref.module_result(proc)
    return r['ok'], r.get('ip'), r.get('gateway'), r.get('msg', '')


@pytest.mark.parametrize('name', sorted(SCENARIOS))
def test_same_results_and_bytes_as_host_local(name, tmp_path):
    conf_kw, ops = SCENARIOS[name]
    network = 'kb' + secrets.token_hex(3)
    stores = {}
    for label in ('plugin', 'module', 'mixed'):
        stores[label] = ref.netconf(str(tmp_path / label), network=network, **conf_kw)
    turn = 0  # the mixed store alternates tools on every add/del
    for step, op in enumerate(ops):
        op = parse_op(op)
        if op[0] == 'write':
            for conf in stores.values():
                path = os.path.join(conf['ipam']['dataDir'], network)
                if not os.path.isdir(path):
                    os.makedirs(path)
                with open(os.path.join(path, op[1]), 'wb') as f:
                    f.write(op[2])
            continue
        cmd, cid, ifname, ip, expected = op
        tools = {'plugin': 'plugin', 'module': 'module',
                 'mixed': 'module' if turn % 2 == 0 else 'plugin'}
        turn += 1
        procs = dict((label, launch(tools[label], stores[label], cmd, cid, ifname, ip))
                     for label in stores)
        results = dict((label, outcome(tools[label], procs[label])) for label in stores)
        where = '%s step %d %r: %r' % (name, step, op, results)
        for label, (ok, got_ip, gw, msg) in results.items():
            if cmd == 'del':
                assert ok, where
            elif expected.startswith('fail:'):
                assert not ok and expected[5:] in msg, where
            else:
                assert ok and got_ip == expected, where
                assert gw == ('fd00:244:1::1' if ':' in expected else
                              stores[label]['ipam']['ranges'][0][0].get('gateway', NET + '1'))
        snaps = dict((label, ref.store(conf['ipam']['dataDir'], network))
                     for label, conf in stores.items())
        assert snaps['module'] == snaps['plugin'], where
        assert snaps['mixed'] == snaps['plugin'], where


def test_reallocation_is_idempotent_where_host_local_refuses(tmp_path):
    conf = ref.netconf(str(tmp_path))
    first = ref.module(ref.module_args(conf, container_id='a'))
    assert first['changed'] and first['ip'] == NET + '2/24'
    before = ref.store(str(tmp_path))
    dup = ref.plugin(conf, 'ADD', 'a')
    assert not dup['ok'] and 'duplicate allocation is not allowed' in dup['msg']
    again = ref.module(ref.module_args(conf, container_id='a'))
    assert not again['changed'] and again['ip'] == NET + '2/24'
    assert ref.store(str(tmp_path)) == before
    # and the module returns what the plugin allocated
    assert ref.plugin(conf, 'ADD', 'p')['ip'] == NET + '3/24'
    held = ref.module(ref.module_args(conf, container_id='p'))
    assert (held['changed'], held['ip'], held['gateway']) == (False, NET + '3/24', NET + '1')
    assert ref.store(str(tmp_path))['10.244.1.3'][0] == b'p\r\neth0'


def test_network_and_broadcast_refused_where_host_local_hands_them_out(tmp_path):
    """issue 16 item 9: host-local 1.1.1 gives out 10.66.6.255/24 (its bug); the module
    refuses a range holding the network or broadcast address, and creates nothing."""
    conf = ref.netconf(str(tmp_path / 'plugin'), subnet='10.66.6.0/24',
                       range_start='10.66.6.255', range_end='10.66.6.255')
    assert ref.plugin(conf, 'ADD', 'a')['ip'] == '10.66.6.255/24'
    conf['ipam']['dataDir'] = str(tmp_path / 'module')
    for override, word in (({}, 'range_start 10.66.6.255 is the broadcast address'),
                           ({'range_start': '10.66.6.0'}, 'range_start 10.66.6.0 is the network'),
                           ({'range_start': None}, 'range_end 10.66.6.255 is the broadcast')):
        args = dict(ref.module_args(conf, container_id='a'), **override)
        res = ref.module(dict((k, v) for k, v in args.items() if v is not None))
        assert res['failed'] and word in res['msg'], res
    assert not os.path.exists(str(tmp_path / 'module'))


def test_parallel_module_and_plugin_share_one_store(tmp_path):
    """140 allocations racing into one /24: 50 plugin processes, 20 single-form and 5
    list-form (8 containers each) module runs, and 30 processes calling the module_utils API
    (cheaper than the module: no Ansible import), all started before any is collected."""
    conf = ref.netconf(str(tmp_path))
    jobs = [('plugin', ['kbp%02d' % i]) for i in range(50)]
    jobs += [('module', ['kbm%02d' % i]) for i in range(20)]
    jobs += [('list', ['kbl%d-%d' % (j, k) for k in range(8)]) for j in range(5)]
    jobs += [('api', ['kba%02d' % i]) for i in range(30)]
    random.Random(7).shuffle(jobs)
    procs = []
    for kind, ids in jobs:
        if kind == 'plugin':
            procs.append(ref.plugin_popen(conf, 'ADD', ids[0]))
        elif kind == 'api':
            procs.append(ref.api_popen(str(tmp_path), ids[0]))
        elif kind == 'module':
            procs.append(ref.module_popen(ref.module_args(conf, container_id=ids[0])))
        else:
            procs.append(ref.module_popen(ref.module_args(
                conf, containers=[{'container_id': i} for i in ids])))
    got = {}
    for (kind, ids), proc in zip(jobs, procs):
        if kind in ('plugin', 'api'):
            r = ref.plugin_result(proc)
            assert r['ok'], r
            got[ids[0]] = r['ip']
        else:
            r = ref.module_result(proc)
            assert r['ok'] and r['changed'], r
            for alloc in r['allocations']:
                got[alloc['container_id']] = alloc['ip']
    assert len(got) == 140
    ips = sorted(ip.split('/')[0] for ip in got.values())
    assert len(set(ips)) == 140, 'duplicate addresses handed out'
    files = ref.store(str(tmp_path))
    addr_files = dict((k, v[0]) for k, v in files.items() if k.startswith('10.'))
    assert sorted(addr_files) == sorted(ips)
    for cid, ip in got.items():
        assert addr_files[ip.split('/')[0]] == cid.encode() + b'\r\neth0'
    assert NET + '1' not in addr_files
    assert files['last_reserved_ip.0'][0].decode() in addr_files
    assert files['lock'][0] == b''


# ---- through Ansible -------------------------------------------------------------------------

def play(tasks):
    lines = ['- hosts: localhost', '  connection: local', '  gather_facts: false', '  tasks:']
    for name, args, extra in tasks:
        lines += ['    - name: %s' % name,
                  '      k8slab.podnet.cni_ipam: %s' % json.dumps(args),
                  '      ignore_errors: true']
        lines += ['      %s: %s' % kv for kv in sorted(extra.items())]
    return '\n'.join(lines) + '\n'


def test_list_form_check_diff_and_release_via_ansible(tmp_path):
    base = {'network': 'cbr0', 'subnet': '10.244.1.0/24', 'data_dir': str(tmp_path)}
    pods = dict(base, containers=[{'container_id': 'httpd'}, {'container_id': 'client'},
                                  {'container_id': 'dns', 'ip': NET + '53'}])
    result = run_playbook(play([
        ('check', pods, {'check_mode': 'true', 'diff': 'true'}),
        ('allocate', pods, {'diff': 'true'}),
        ('again', pods, {}),
        ('single', dict(base, container_id='httpd'), {}),
        ('release check', dict(base, containers=[{'container_id': 'client'}], state='absent'),
         {'check_mode': 'true'}),
        ('release', dict(base, containers=[{'container_id': 'client'}], state='absent'),
         {'diff': 'true'}),
        ('release again', dict(base, container_id='client', state='absent'), {}),
        ('bad id', dict(base, containers=[{'container_id': 'ok'}, {'container_id': '-x'}]), {}),
        ('exhausted', dict(base, range_end=NET + '2', container_id='late'), {}),
    ]))
    assert result.rc == 0, result
    for name, word in (('bad id', "'-x'"), ('exhausted', 'no IP addresses available in range '
                                                         'set: 10.244.1.1-10.244.1.2')):
        assert result.task(name)['failed'] and word in result.task(name)['msg']
    want = [{'container_id': 'httpd', 'ifname': 'eth0', 'ip': NET + '2/24', 'gateway': NET + '1'},
            {'container_id': 'client', 'ifname': 'eth0', 'ip': NET + '3/24', 'gateway': NET + '1'},
            {'container_id': 'dns', 'ifname': 'eth0', 'ip': NET + '53/24', 'gateway': NET + '1'}]
    check = result.task('check')
    assert check['changed'] and check['allocations'] == want
    headers = [d['after_header'] for d in check['diff']]
    assert headers == [str(tmp_path / 'cbr0' / n) for n in
                       ('10.244.1.2', '10.244.1.3', '10.244.1.53', 'last_reserved_ip.0')]
    alloc = result.task('allocate')
    assert alloc['changed'] and alloc['allocations'] == want and 'ip' not in alloc
    assert [d['after'] for d in alloc['diff']] == ['httpd\\r\neth0', 'client\\r\neth0',
                                                   'dns\\r\neth0', '10.244.1.53']
    assert not result.task('again')['changed'] and result.task('again')['allocations'] == want
    single = result.task('single')
    assert not single['changed'] and (single['ip'], single['gateway']) == (NET + '2/24', NET + '1')
    assert result.task('release check')['changed']
    rel = result.task('release')
    assert rel['changed'] and rel['released'] == [{'container_id': 'client', 'ifname': 'eth0',
                                                   'ips': [NET + '3']}]
    assert rel['diff'][0]['before'] == 'client\\r\neth0' and rel['diff'][0]['after'] == ''
    assert not result.task('release again')['changed']
    files = ref.store(str(tmp_path))
    assert dict((k, v[0]) for k, v in files.items()) == {
        '10.244.1.2': b'httpd\r\neth0', '10.244.1.53': b'dns\r\neth0',
        'last_reserved_ip.0': b'10.244.1.53', 'lock': b''}


def test_bad_input_fails_naming_the_value_and_creates_nothing(tmp_path):
    """Each bad value fails with a message naming it and no store directory appears. (The
    module file runs directly, in parallel; the Ansible path of a failure is tested above.)"""
    ok = {'network': 'cbr0', 'subnet': '10.244.1.0/24', 'data_dir': str(tmp_path / 'new'),
          'container_id': 'a'}
    (tmp_path / 'afile').write_text('x')
    cases = [
        ({'subnet': '10.244.1.0/33'}, '10.244.1.0/33'),
        ({'subnet': '10.244.1.7/24'}, '10.244.1.7/24'),
        ({'subnet': '10.244.1.0/31'}, '10.244.1.0/31'),
        ({'subnet': '10.244.1.1/32'}, '10.244.1.1/32'),
        ({'range_start': '10.244.2.1'}, '10.244.2.1'),
        ({'range_end': '10.244.2.254'}, '10.244.2.254'),
        ({'range_start': '10.244.1.9', 'range_end': '10.244.1.8'}, '10.244.1.8'),
        ({'gateway': '10.244.0.1'}, '10.244.0.1'),
        ({'container_id': '-abc'}, '-abc'),
        ({'container_id': 'a b'}, 'a b'),
        ({'ifname': 'x' * 16}, 'x' * 16),
        ({'ifname': 'eth/0'}, 'eth/0'),
        ({'ifname': 'eth:0'}, 'eth:0'),
        ({'ifname': 'eth 0'}, 'eth 0'),
        ({'network': 'cbr 0'}, 'cbr 0'),
        ({'network': '../etc'}, '../etc'),
        ({'ip': '10.244.1.1'}, '10.244.1.1'),
        ({'range_end': '10.244.1.255'}, 'range_end 10.244.1.255 is the broadcast'),
        ({'range_start': '10.244.1.0'}, 'range_start 10.244.1.0 is the network'),
        ({'containers': 'a'}, "containers must be a list of dicts, got 'a'"),
        ({'containers': ['a']}, "containers[0] must be a dict, got 'a'"),
        ({'container_id': ['a']}, "container_id must be a single value, not a list: ['a']"),
        ({'data_dir': str(tmp_path / 'afile' / 'sub')}, str(tmp_path / 'afile' / 'sub')),
        ({'container_id': None, 'containers': [{'container_id': 'ok'}, {'container_id': '_x'}]},
         '_x'),
        ({'range_end': '10.244.1.1'}, 'no IP addresses available in range set: '
                                      '10.244.1.1-10.244.1.1'),
    ]
    procs = []
    for override, word in cases:
        args = dict(ok, **override)
        args = dict((k, v) for k, v in args.items() if v is not None)
        procs.append(ref.module_popen(args))
    for (override, word), proc in zip(cases, procs):
        res = ref.module_result(proc)
        assert res.get('failed') and word in res['msg'], (override, res)
    assert sorted(os.listdir(str(tmp_path))) == ['afile']

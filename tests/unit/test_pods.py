"""plugins/module_utils/pods.py: the pod record, the kubectl-like listing, logs and container
validation. Records written to a temp dir; no root, no processes."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), '.collections'))

from ansible_collections.k8slab.podnet.plugins.module_utils import pods as P  # noqa: E402

SID = 'c0ffee' + '0' * 58


def write(runtime, name, containers, pid=None, exits=None):
    rec = dict(name=name, namespace='test001', labels={}, uid='u',
               sandbox=dict(id=SID, pid=pid, netns='/run/netns/' + name, ip='10.244.2.3/24'),
               containers=containers, ready='0/%d' % len(containers))
    P.write_record(runtime, rec)
    for cname, (code, log) in (exits or {}).items():
        files = P.container_files(runtime, name, cname)
        if code is not None:
            with open(files['exit'], 'w') as f:
                f.write('%d\n' % code)
        with open(files['log'], 'w') as f:
            f.write(log)


def test_sandbox_id_is_64_hex_and_random():
    a, b = P.new_sandbox_id(), P.new_sandbox_id()
    assert a != b and len(a) == 64 and int(a, 16) >= 0


@pytest.mark.parametrize('installed, expected', [
    ({'catatonit': '/usr/bin/catatonit', 'sleep': '/bin/sleep'}, ('/usr/bin/catatonit', ['-P'])),
    ({'sleep': '/bin/sleep'}, ('/bin/sleep', ['infinity'])),
])
def test_pause_program_prefers_catatonit_and_falls_back_to_sleep(installed, expected):
    assert P.pause_program(installed.get) == expected


def test_pause_program_names_what_it_looked_for():
    with pytest.raises(P.PodError, match='none of catatonit, sleep is installed'):
        P.pause_program({}.get)


def test_list_pods_reports_exit_reasons_and_ready(tmp_path):
    runtime = str(tmp_path)
    cs = [dict(name='lab-web', workload='http', port=80, argv=['x'], pid=None),
          dict(name='lab-web-2', workload='http', port=80, argv=['y'], pid=None),
          dict(name='job', workload='command', argv=['true'], pid=None)]
    write(runtime, 'test-pod', cs, exits={
        'lab-web': (None, ''),
        'lab-web-2': (1, 'listening\nbind() to 0.0.0.0:80 failed (98: Address already in use)\n'),
        'job': (0, 'done\n')})
    rows = P.list_pods(runtime, node='node-2')
    assert len(rows) == 1
    r = rows[0]
    assert (r['name'], r['namespace'], r['ip'], r['ready'], r['sandbox_id'], r['node']) == (
        'test-pod', 'test001', '10.244.2.3', '0/3', SID, 'node-2')
    # No live pause: the sandbox is not ready, whatever the containers say.
    assert r['status'] == 'SandboxNotReady' and r['sandbox_state'] == 'SANDBOX_NOTREADY'
    by = dict((c['name'], c) for c in r['containers'])
    assert by['lab-web']['reason'] == 'Unknown'
    assert (by['lab-web-2']['reason'], by['lab-web-2']['exit_code']) == ('Error', 1)
    assert by['lab-web-2']['message'] == \
        'bind() to 0.0.0.0:80 failed (98: Address already in use)'
    assert (by['job']['reason'], by['job']['exit_code'], by['job']['message']) == (
        'Completed', 0, '')
    table = P.format_pods(rows)
    assert table.splitlines()[0].split() == ['NAMESPACE', 'NAME', 'READY', 'STATUS',
                                             'RESTARTS', 'IP', 'NODE', 'POD', 'ID']
    assert 'test001' in table and SID[:13] in table and SID[:14] not in table
    assert '- lab-web-2  Exited (Error, exit 1)' in table
    assert '- lab-web  Exited (Unknown)  pid -' in table  # no status recorded: no "exit None"


def test_container_log(tmp_path):
    runtime = str(tmp_path)
    write(runtime, 'one', [dict(name='web', argv=['x'])], exits={'web': (None, 'a\nb\nc\n')})
    assert P.container_log(runtime, 'one') == 'a\nb\nc\n'
    assert P.container_log(runtime, 'one', 'web', tail=2) == 'b\nc\n'
    write(runtime, 'two', [dict(name='a', argv=['x']), dict(name='b', argv=['y'])])
    with pytest.raises(P.PodError, match='containers a, b: name one'):
        P.container_log(runtime, 'two')
    with pytest.raises(P.PodError, match='container zz is not in pod two'):
        P.container_log(runtime, 'two', 'zz')
    with pytest.raises(P.PodError, match='pod nope has no record'):
        P.container_log(runtime, 'nope')
    assert P.sandbox_owners(runtime) == {SID: 'two'}  # both share SID here: the last wins


@pytest.mark.parametrize('containers, fragment', [
    ([], 'containers is empty'),
    ([dict(name='a', workload='sleep'), dict(name='a', workload='sleep')],
     'container name a is used twice'),
    ([dict(name='a', workload='nginx')], "workload 'nginx' is unknown"),
    ([dict(name='a', workload='echo', port=65536)], 'port 65536 is outside 1-65535'),
    ([dict(name='a', workload='http', port=True)], 'port True'),
    ([dict(name='a', workload='command')], 'needs command'),
])
def test_container_errors(containers, fragment):
    errs = P.container_errors('p', containers)
    assert len(errs) == 1 and fragment in errs[0], errs


def test_container_errors_accept_good_and_legacy():
    assert P.container_errors('p', [dict(name='httpd', workload='httpd', port=80),
                                    dict(name='s', workload='sleep'),
                                    dict(name='c', workload='command', command=['true'])]) == []

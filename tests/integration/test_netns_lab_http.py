"""k8slab.podnet.netns_lab_http: the outside's HTTP server in a real namespace (needs root)."""

import os
import signal

import pytest

from conftest import run_module, sh

M = 'k8slab.podnet.netns_lab_http'


@pytest.fixture
def outside(uid, netns_cleanup, tmp_path):
    """A namespace with 192.0.2.1/24 on a veth inside it, and the module's arguments."""
    ns = 'kh%s' % uid
    netns_cleanup.append(ns)
    sh('ip netns add %s && ip -n %s link add d0 type veth peer name d1 && '
       'ip -n %s addr add 192.0.2.1/24 dev d0 && ip -n %s link set d0 up' % (ns, ns, ns, ns))
    args = dict(netns=ns, address='192.0.2.1', port=8080, root=str(tmp_path / 'www'),
                pidfile=str(tmp_path / 'http.pid'))
    os.makedirs(args['root'])
    yield args
    run_module(M, dict(args, state='absent'))
    for pid in sh('ip netns pids %s' % ns, check=False).split():
        os.kill(int(pid), signal.SIGKILL)


def test_serves_as_soon_as_the_module_returns_and_reruns_change_nothing(outside):
    res = run_module(M, outside)[0]
    assert res['changed'] and res['pid'], res
    # No retry: the module waited until the server listens.
    body = sh('ip netns exec %s curl -s --max-time 2 http://192.0.2.1:8080/' % outside['netns'])
    assert body == 'k8slab outside\n'
    again = run_module(M, outside)[0]
    assert not again['changed'] and again['pid'] == res['pid'], again


def test_a_server_that_cannot_bind_fails_naming_its_log(outside, tmp_path):
    run_module(M, outside)
    other = dict(outside, pidfile=str(tmp_path / 'other' / 'http.pid'))
    os.makedirs(os.path.dirname(other['pidfile']))
    res = run_module(M, other)[0]
    assert res.get('failed'), res
    log = os.path.join(os.path.dirname(other['pidfile']), 'http.log')
    assert res['msg'] == 'the HTTP server in %s exited; see %s' % (outside['netns'], log), res
    with open(log) as f:
        assert 'Address already in use' in f.read()
    assert not os.path.exists(other['pidfile']), 'a pidfile of a server that is gone'


@pytest.mark.parametrize('port', [0, 65536])
def test_a_bad_port_fails_naming_it_before_anything_starts(outside, port):
    res = run_module(M, dict(outside, port=port))[0]
    assert res.get('failed') and res['msg'] == 'port %d must be 1-65535' % port, res
    assert not os.path.exists(outside['pidfile'])
    assert sh('ip netns pids %s' % outside['netns']).split() == []

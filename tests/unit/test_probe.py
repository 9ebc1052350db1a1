"""The pure parts of the probe module (plugins/module_utils/probe.py): decoding the kernel's
IP_RECVERR messages and ICMP packets, judging observations against expectations.
No root, no network."""

import os
import socket
import struct
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), '.collections'))

from ansible_collections.k8slab.podnet.plugins.module_utils.probe import (  # noqa: E402
    ICMP_DEST_UNREACH, ICMP_ECHO, ICMP_ECHOREPLY, ICMP_TIME_EXCEEDED, SO_EE_ORIGIN_ICMP,
    SO_EE_ORIGIN_LOCAL, classify_hop, echo_request, evaluate, icmp_checksum,
    parse_extended_err, parse_icmp_reply, select_route)


def ee(origin, icmp_type, code, offender=None, err=113):
    """A struct sock_extended_err followed by the offender's sockaddr_in, as the kernel
    sends it with IP_RECVERR."""
    data = struct.pack('=IBBBBII', err, origin, icmp_type, code, 0, 0, 0)
    if offender:
        data += struct.pack('=H', socket.AF_INET) + b'\0\0' + socket.inet_aton(offender) + b'\0' * 8
    else:
        data += b'\0' * 16
    return data


def ip_header(src, dst, proto=1, ihl=5):
    return struct.pack('!BBHHHBBH4s4s', 0x40 | ihl, 0, 20, 0, 0, 64, proto, 0,
                       socket.inet_aton(src), socket.inet_aton(dst)) + b'\0' * (4 * (ihl - 5))


# ---- IP_RECVERR --------------------------------------------------------------------------

def test_extended_err_time_exceeded_names_the_router():
    err = parse_extended_err(ee(SO_EE_ORIGIN_ICMP, ICMP_TIME_EXCEEDED, 0, '10.244.2.1'))
    assert err['origin'] == SO_EE_ORIGIN_ICMP and err['type'] == 11
    assert err['offender'] == '10.244.2.1'
    assert classify_hop(err, '10.244.1.3') == ('10.244.2.1', '', False)


def test_port_unreachable_from_the_target_ends_the_trace():
    err = parse_extended_err(ee(SO_EE_ORIGIN_ICMP, ICMP_DEST_UNREACH, 3, '10.244.1.3'))
    assert classify_hop(err, '10.244.1.3') == ('10.244.1.3', '', True)


@pytest.mark.parametrize('code,flag', [(0, '!N'), (1, '!H'), (13, '!X'), (7, '!7')])
def test_unreachable_from_a_router_is_flagged_like_traceroute(code, flag):
    err = parse_extended_err(ee(SO_EE_ORIGIN_ICMP, ICMP_DEST_UNREACH, code, '10.0.2.2'))
    assert classify_hop(err, '10.244.1.3') == ('10.0.2.2', flag, True)


def test_port_unreachable_from_another_address_is_not_the_target():
    err = parse_extended_err(ee(SO_EE_ORIGIN_ICMP, ICMP_DEST_UNREACH, 3, '10.0.2.2'))
    assert classify_hop(err, '10.244.1.3') == ('10.0.2.2', '', True)


def test_no_answer_is_a_star():
    assert classify_hop(None, '10.244.1.3') == ('*', '', False)


def test_local_error_has_no_offender():
    err = parse_extended_err(ee(SO_EE_ORIGIN_LOCAL, 0, 0, None, err=90))
    assert err['offender'] is None
    assert classify_hop(err, '10.244.1.3') == ('*', '!E90', True)


def test_truncated_extended_err_is_refused():
    with pytest.raises(ValueError):
        parse_extended_err(b'\0' * 8)


# ---- ICMP echo ----------------------------------------------------------------------------

def test_echo_request_checksum_verifies():
    packet = echo_request(0x1234, 7)
    assert packet[0] == ICMP_ECHO
    assert icmp_checksum(packet) == 0  # a correct checksum sums to zero


def test_echo_reply_matches_identifier_and_sequence():
    body = struct.pack('!BBHHH', ICMP_ECHOREPLY, 0, 0, 0x1234, 7) + b'x'
    packet = ip_header('10.244.1.2', '10.244.2.2') + body
    assert parse_icmp_reply(packet, 0x1234, 7) == ('reply', '10.244.1.2')
    assert parse_icmp_reply(packet, 0x1234, 8) is None
    assert parse_icmp_reply(packet, 0x4321, 7) is None


def test_echo_reply_after_ip_options():
    body = struct.pack('!BBHHH', ICMP_ECHOREPLY, 0, 0, 5, 6)
    assert parse_icmp_reply(ip_header('1.2.3.4', '5.6.7.8', ihl=6) + body, 5, 6) == \
        ('reply', '1.2.3.4')


def test_unreachable_quoting_our_request_is_an_error():
    quoted = ip_header('10.244.2.2', '10.244.1.9') + echo_request(99, 3)[:8]
    body = struct.pack('!BBHI', ICMP_DEST_UNREACH, 1, 0, 0) + quoted
    found = parse_icmp_reply(ip_header('10.244.2.1', '10.244.2.2') + body, 99, 3)
    assert found == ('error', 'destination unreachable (code 1) from 10.244.2.1')
    assert parse_icmp_reply(ip_header('10.244.2.1', '10.244.2.2') + body, 98, 3) is None


def test_our_own_request_is_not_a_reply():
    packet = ip_header('10.0.2.15', '10.0.2.15') + echo_request(1, 1)
    assert parse_icmp_reply(packet, 1, 1) is None


def test_short_packets_are_ignored():
    assert parse_icmp_reply(b'\x45', 1, 1) is None
    assert parse_icmp_reply(ip_header('1.1.1.1', '2.2.2.2') + b'\0\0', 1, 1) is None


# ---- judging observations -----------------------------------------------------------------

def hops(*addrs, **kw):
    out = [dict(address=a, flag='', reached=False) for a in addrs]
    if out and kw.get('reached', True):
        out[-1]['reached'] = True
    return out


SEED = dict(kind='path', target='10.244.1.3', hops=['10.244.2.1', '192.168.56.11', '10.244.1.3'])


def test_path_exact_match_passes():
    passed, expected, observed, reason = evaluate(SEED, dict(hops=hops(*SEED['hops'])))
    assert passed and reason == ''
    assert expected == observed == '10.244.2.1 192.168.56.11 10.244.1.3'


def test_path_names_the_first_wrong_hop():
    # host-gw route missing: node-2 sends it to its NAT router instead of node-1's eth1.
    seen = hops('10.244.2.1', '10.0.2.2', reached=False)
    seen[-1]['flag'] = '!N'
    passed, _e, observed, reason = evaluate(SEED, dict(hops=seen))
    assert not passed
    assert reason == 'hop 2: expected 192.168.56.11, observed 10.0.2.2'
    assert observed == '10.244.2.1 10.0.2.2 !N'


def test_path_shorter_than_expected():
    passed, _e, _o, reason = evaluate(SEED, dict(hops=hops('10.244.2.1', reached=False)))
    assert not passed and reason == 'hop 2: expected 192.168.56.11, observed nothing'


def test_path_longer_than_expected():
    probe = dict(kind='path', target='10.244.1.3', hops=['10.244.1.3'])
    passed, _e, _o, reason = evaluate(probe, dict(hops=hops('10.244.1.1', '10.244.1.3')))
    assert not passed and reason == 'hop 1: expected 10.244.1.3, observed 10.244.1.1'
    probe = dict(kind='path', target='10.244.1.3', hops=['10.244.1.1'])
    passed, _e, _o, reason = evaluate(probe, dict(hops=hops('10.244.1.1', '10.244.1.3')))
    assert not passed and reason == 'hop 2: expected none, observed 10.244.1.3'


def test_path_right_hops_but_target_silent_fails():
    seen = hops(*SEED['hops'], reached=False)
    passed, _e, _o, reason = evaluate(SEED, dict(hops=seen))
    assert not passed and 'did not answer' in reason


def test_path_setup_error_fails():
    passed, _e, observed, reason = evaluate(SEED, dict(error='no such namespace', fatal=True))
    assert not passed and observed == 'error: no such namespace'


def test_reach_and_unreach():
    assert evaluate(dict(kind='reach'), dict(reply='10.244.1.2'))[0]
    assert not evaluate(dict(kind='reach'), dict(reply=None))[0]
    assert evaluate(dict(kind='unreach'), dict(reply=None, error='Network is unreachable'))[0]
    passed, _e, observed, _r = evaluate(dict(kind='unreach'), dict(reply='192.168.56.12'))
    assert not passed and observed == 'reply from 192.168.56.12'


def test_unreach_cannot_pass_when_the_probe_could_not_run():
    # No eth0 to bind to proves nothing about eth0.
    assert not evaluate(dict(kind='unreach'), dict(error='No such device', fatal=True))[0]


def test_http():
    probe = dict(kind='http', status=200, body='pod httpd')
    page = dict(status=200, length=30, body='<h1>Hello from pod httpd</h1>')
    assert evaluate(probe, page)[0]
    assert not evaluate(probe, dict(page, body='It works!'))[0]
    assert not evaluate(probe, dict(page, status=404))[0]
    passed, _e, observed, _r = evaluate(probe, dict(error='ConnectionRefusedError: refused'))
    assert not passed and 'refused' in observed


def test_route():
    probe = dict(kind='route', dev='eth1', gateway='192.168.56.11', forbid_dev=['eth0'])
    good = dict(route=dict(dev='eth1', gateway='192.168.56.11'))
    assert evaluate(probe, good)[0]
    passed, _e, observed, reason = evaluate(probe, dict(route=dict(dev='eth0',
                                                                   gateway='10.0.2.2')))
    assert not passed and observed == 'dev eth0 via 10.0.2.2'
    assert 'leaves via eth0, not eth1' in reason and 'forbidden dev eth0' in reason
    connected = dict(kind='route', dev='cni0', gateway='')
    assert evaluate(connected, dict(route=dict(dev='cni0')))[0]
    assert not evaluate(connected, dict(route=dict(dev='cni0', gateway='10.244.1.9')))[0]


def test_address():
    probe = dict(kind='address', dev='eth0', address='10.0.2.15/24')
    assert evaluate(probe, dict(addresses=['10.0.2.15/24']))[0]
    assert not evaluate(probe, dict(addresses=['10.0.2.16/24']))[0]
    assert not evaluate(probe, dict(addresses=[]))[0]


def test_select_route_reads_ip_json():
    got = select_route([{'dst': '10.244.1.2', 'gateway': '192.168.56.11', 'dev': 'eth1',
                         'prefsrc': '192.168.56.12', 'flags': [], 'uid': 0, 'cache': []}])
    assert got == dict(dev='eth1', gateway='192.168.56.11', prefsrc='192.168.56.12',
                       type='unicast')
    assert select_route([]) == {}


# ---- mtu and input validation ---------------------------------------------------------------

from ansible_collections.k8slab.podnet.plugins.module_utils.probe import (  # noqa: E402
    ProbeInputError, validate_probes)


def test_mtu_all_links_agree():
    probe = dict(kind='mtu', dev='eth0', mtu=1500)
    passed, expected, observed, reason = evaluate(probe, dict(mtus=[('eth0', 1500),
                                                                    ('veth1234', 1500)]))
    assert passed and (expected, observed, reason) == ('mtu 1500', 'eth0 1500, veth1234 1500', '')


def test_mtu_names_the_link_that_differs():
    probe = dict(kind='mtu', dev='eth0', mtu=1500)
    passed, _e, observed, reason = evaluate(probe, dict(mtus=[('eth0', 1400), ('veth1', 1500)]))
    assert not passed and observed == 'eth0 1400, veth1 1500' and reason == 'eth0 has mtu 1400'
    passed, _e, _o, reason = evaluate(probe, dict(mtus=[('eth0', 1500),
                                                        ('veth peer of eth0', None)]))
    assert not passed and reason == 'veth peer of eth0 has no link'


@pytest.mark.parametrize('probes,msg', [
    ([], 'at least one probe'),
    ([dict(name='a', kind='ping', target='1.1.1.1')], "kind 'ping' is not one of address"),
    ([dict(name='a', kind='mtu', dev='eth0')], 'kind mtu needs dev and mtu'),
    ([dict(name='a', kind='mtu', dev='eth0', mtu=20)], 'mtu 20 must be between'),
    ([dict(name='a', kind='mtu', dev='x' * 16, mtu=1500)], 'at most 15'),
    ([dict(name='a', kind='reach', target='1.1.1.1', netns='../x')], "'../x'"),
])
def test_bad_probe_input_is_a_probe_input_error(probes, msg):
    with pytest.raises(ProbeInputError, match=msg):
        validate_probes(probes)


def test_validated_probes_know_their_home_namespace():
    p = validate_probes([dict(name='a', kind='mtu', dev='eth0', mtu=1500, netns='pod')],
                        'node')[0]
    assert (p['netns'], p['home_netns']) == ('pod', 'node')


# ---- pacing path probes under the kernel's ICMP rate limit ----------------------------------

from ansible_collections.k8slab.podnet.plugins.module_utils.probe import HopPacer  # noqa: E402


def test_pacer_allows_a_burst_then_one_per_interval_per_hop():
    import time
    pacer = HopPacer(interval=0.05, burst=3)
    start = time.monotonic()
    for _n in range(3):
        pacer.take(('client-2', None, '10.244.2.1'))
    pacer.take(('client-2', None, '10.244.1.1'))  # another hop has its own bucket
    assert time.monotonic() - start < 0.04
    for _n in range(4):
        pacer.take(('client-2', None, '10.244.2.1'))
    assert time.monotonic() - start >= 4 * 0.05 * 0.9


def test_pacer_waits_a_full_interval_after_a_silent_hop():
    import time
    pacer = HopPacer(interval=0.1, burst=5)
    assert pacer.ask_again(('a', None, 'h'))
    start = time.monotonic()
    pacer.take(('a', None, 'h'))
    assert time.monotonic() - start >= 0.09


def test_silence_after_a_paid_turn_adds_no_debt():
    import time
    pacer = HopPacer(interval=0.1, burst=1)
    pacer.take(('a', None, 'h'))
    pacer.take(('a', None, 'h'))  # waits its turn: the bucket is back at 0 when it returns
    time.sleep(0.1)               # the probe's wait: a token comes back meanwhile
    assert pacer.ask_again(('a', None, 'h'))
    start = time.monotonic()
    pacer.take(('a', None, 'h'))
    assert 0.09 <= time.monotonic() - start < 0.19  # one interval, not two


def _traces(P, pacer, n, expected=('10.244.2.1', '192.168.56.11')):
    """n traces at once from pod p2 towards 10.244.1.2; their hop lists."""
    import threading
    out = [None] * n

    def one(i):
        out[i] = [h['address'] for h in P.trace('10.244.1.2', 3, 0, None, list(expected),
                                                pacer, 'p2')]
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def _fake_hop(P, monkeypatch, answers):
    """trace_hop replaced: each probe takes 50 ms and gets answers(ttl, n) (None: silence)."""
    import time
    asked = []

    def trace_hop(target, ttl, wait, dev):
        asked.append(ttl)
        time.sleep(0.05)
        return answers(ttl, len(asked))
    monkeypatch.setattr(P, 'trace_hop', trace_hop)
    return asked


TIME_EXCEEDED = dict(errno=113, origin=2, type=11, code=0, info=0, offender='10.244.2.1')


def test_a_hop_silent_when_asked_again_is_dead_for_a_while(monkeypatch):
    import time
    from ansible_collections.k8slab.podnet.plugins.module_utils import probe as P
    answer = [None]
    asked = _fake_hop(P, monkeypatch, lambda ttl, n: answer[0])
    pacer = HopPacer(interval=0.05, burst=5)
    key = ('p2', None, '10.244.2.1')
    # Three traces at once through a silent hop: each asks, one asks again, the hop is dead.
    assert _traces(P, pacer, 3) == [['*']] * 3
    assert len(asked) == 4 and key in pacer.dead
    assert _traces(P, pacer, 1) == [['*']]
    assert len(asked) == 5  # dead: asked once, no second try, no turn awaited
    time.sleep(pacer.DEAD_FOR * pacer.interval)  # the verdict expires: asked again
    assert _traces(P, pacer, 1) == [['*']] and len(asked) == 7
    answer[0] = TIME_EXCEEDED
    P.trace('10.244.1.2', 1, 0, None, ['10.244.2.1'], pacer, 'p2')
    assert key not in pacer.dead


def test_traces_waiting_for_a_hop_asked_again_go_on_when_it_answers(monkeypatch):
    # The first probe of each is lost (rate-limited), the hop answers the second try: every
    # trace asks again in turn and none is failed.
    from ansible_collections.k8slab.podnet.plugins.module_utils import probe as P
    asked = _fake_hop(P, monkeypatch, lambda ttl, n: TIME_EXCEEDED if n > 3 else None)
    pacer = HopPacer(interval=0.05, burst=5)
    found = _traces(P, pacer, 3, expected=['10.244.2.1'])
    assert all(hops[0] == '10.244.2.1' for hops in found), found
    assert len(asked) >= 6 and not pacer.dead and not pacer.asking


def test_a_second_try_that_fails_gives_no_verdict(monkeypatch):
    from ansible_collections.k8slab.podnet.plugins.module_utils import probe as P

    def answers(ttl, n):
        if n == 2:
            raise OSError(24, 'Too many open files')
    _fake_hop(P, monkeypatch, answers)
    pacer = HopPacer(interval=0.05, burst=5)
    with pytest.raises(OSError):
        P.trace('10.244.1.2', 3, 0, None, ['10.244.2.1'], pacer, 'p2')
    assert not pacer.dead and not pacer.asking  # nobody left waiting, nothing judged


def test_an_answer_heard_while_asking_again_keeps_the_hop_alive():
    pacer = HopPacer(interval=0.05, burst=5)
    key = ('p2', None, '10.244.2.1')
    assert pacer.ask_again(key)
    pacer.answered(key)            # another trace's first probe got through meanwhile
    pacer.asked_again(key, False)  # the second try was silent all the same
    assert key not in pacer.dead


def test_a_hop_that_stays_silent_is_named():
    seen = hops('10.244.2.1') + [dict(address='*', flag='', reached=False, silent=True)]
    passed, _e, observed, reason = evaluate(SEED, dict(hops=seen))
    assert not passed and observed == '10.244.2.1 *'
    assert reason == ('hop 2: expected 192.168.56.11, observed * (no answer from hop 2: '
                      'rate-limited or filtered?)')


# ---- pods (issue 12) -----------------------------------------------------------------------

def test_pod_netns_passes_only_when_all_three_inodes_agree():
    probe = dict(kind='pod_netns', pod='test-pod', container='lab-web')
    same = dict(pid=40, container=7, sandbox_pid=30, sandbox=7, pinned=7)
    passed, expected, observed, _r = evaluate(probe, same)
    assert passed and expected == 'lab-web in the sandbox netns'
    assert observed == 'pid 40, pause 30: net:[7]'
    passed, _e, observed, reason = evaluate(probe, dict(same, container=8))
    assert not passed and 'net:[8]' in observed and 'another network namespace' in reason
    assert not evaluate(probe, dict(same, pinned=9))[0]  # /run/netns/<pod> is another one
    passed, _e, _o, reason = evaluate(probe, dict(same, pid=None, container=None))
    assert not passed and reason == 'container lab-web is not running'
    passed, _e, _o, reason = evaluate(probe, dict(same, sandbox_pid=None, sandbox=None))
    assert not passed and 'sandbox (pause) of test-pod is not running' in reason


def test_store_holds_the_sandbox_id_and_ifname():
    sid = 'a' * 64
    probe = dict(kind='store', pod='test-pod', store='/var/lib/cni/networks/cbr0', dev='eth0')
    good = dict(sandbox_id=sid, ip='10.244.2.3', content='%s\r\neth0' % sid)
    passed, expected, observed, _r = evaluate(probe, good)
    assert passed and expected == 'sandbox id\\r\\neth0'
    assert observed == '10.244.2.3: %s...\\r\\neth0' % sid[:13]
    for content in ('%s\neth0' % sid, '%s\r\neth1' % sid, 'test-pod\r\neth0', None):
        passed, _e, observed, reason = evaluate(probe, dict(good, content=content))
        assert not passed and 'does not hold sandbox aaaaaaaaaaaaa and eth0' in reason, content
    assert 'no store file' in evaluate(probe, dict(good, content=None))[2]
    assert not evaluate(probe, dict(good, ip=None))[0]


def test_localhost_is_http_to_loopback():
    from ansible_collections.k8slab.podnet.plugins.module_utils.probe import (
        ProbeInputError, validate_probes)
    ok = dict(name='l', kind='localhost', target='127.0.0.1', port=8080, body='lab-web-2')
    assert validate_probes([ok], 'test-pod')[0]['netns'] == 'test-pod'
    with pytest.raises(ProbeInputError, match="loopback address, not '10.244.2.3'"):
        validate_probes([dict(ok, target='10.244.2.3')])
    with pytest.raises(ProbeInputError, match='needs pod and container'):
        validate_probes([dict(name='n', kind='pod_netns', pod='test-pod')])
    with pytest.raises(ProbeInputError, match='kind store needs pod, store and dev'):
        validate_probes([dict(name='s', kind='store', pod='test-pod', dev='eth0')])
    assert evaluate(ok, dict(status=200, length=60, body='... container lab-web-2'))[0]


def test_reads_are_shared_by_first_attempts_and_fresh_for_retries():
    """probe.Reads: one read per key for the probes' first attempts (concurrent askers wait
    for it), a copy each (no probe sees another's changes), a new read for a retry, and a
    failed read fails every asker."""
    import threading
    import time as _time
    from ansible_collections.k8slab.podnet.plugins.module_utils import probe as PR
    reads = PR.Reads()
    calls = []

    def read():
        calls.append(1)
        _time.sleep(0.05)
        return [{'ifname': 'eth0', 'mtu': 1500}]

    got = []
    threads = [threading.Thread(target=lambda: got.append(reads.get(('ip', 'x', ()), read)))
               for _n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(got) == 8 and all(g == got[0] for g in got)
    got[0][0]['mtu'] = 9000
    assert reads.get(('ip', 'x', ()), read)[0]['mtu'] == 1500 and len(calls) == 1
    reads.local.fresh = True
    assert reads.get(('ip', 'x', ()), read) and len(calls) == 2
    reads.local.fresh = False

    def broken():
        raise OSError('no such namespace')
    for _n in range(2):
        with pytest.raises(OSError):
            reads.get(('ip', 'y', ()), broken)


def test_a_lookup_is_awaited_only_a_moment_past_its_max_seconds(tmp_path, monkeypatch):
    # getent that answers a numeric address at once (the baseline) and a name never: the
    # check has failed at max_seconds, and the probe stops DNS_LATE later, not at the
    # resolver's own timeouts.
    from ansible_collections.k8slab.podnet.plugins.module_utils import probe as P
    getent = tmp_path / 'getent'
    getent.write_text('#!/bin/sh\n[ "$2" = 127.0.0.1 ] && exec echo "127.0.0.1 STREAM"\n'
                      'exec sleep 30\n')
    getent.chmod(0o755)
    monkeypatch.setenv('PATH', '%s:%s' % (tmp_path, os.environ['PATH']))
    result = P.run_probe(dict(name='lookup', kind='dns', qname='kube-dns', max_seconds=0.5),
                         wait=1.0, retries=0, retry_delay=0, ip_bin='ip')
    assert not result['passed'] and result['observed'].startswith('timed out in ')
    assert 0.5 < float(result["observed"].split()[-1].rstrip("s")) < 2.0  # not 5.5 s

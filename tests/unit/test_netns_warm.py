"""The warm module server's framing (plugins/plugin_utils/netns_warm.py) and how the netns
connection recognizes a pipelined module command (plugins/connection/netns.py)."""

import os
import socket
import sys
import threading

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), '.collections'))

from ansible_collections.k8slab.podnet.plugins.connection.netns import (  # noqa: E402
    pipelined_python)
from ansible_collections.k8slab.podnet.plugins.plugin_utils.netns_warm import (  # noqa: E402
    MAX_FRAME, HEADER, ProtocolError, _exit_code, frame, read_frame)


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def test_frames_round_trip_any_bytes(pair):
    a, b = pair
    data = 'grüße ✓'.encode() + bytes(range(256)) * 1000

    def send():
        a.sendall(frame(b'I', data) + frame(b'Q', b'') + frame(b'R', b'{"rc": 0}'))
        a.close()
    sender = threading.Thread(target=send)
    sender.start()
    assert read_frame(b) == (b'I', data)
    assert read_frame(b) == (b'Q', b'')
    assert read_frame(b) == (b'R', b'{"rc": 0}')
    assert read_frame(b) is None          # a clean EOF between frames
    sender.join()


@pytest.mark.parametrize('cut', [2, HEADER.size + 3])
def test_a_frame_cut_short_is_an_error(pair, cut):
    a, b = pair
    a.sendall(frame(b'O', b'0123456789')[:cut])
    a.close()
    with pytest.raises(ProtocolError):
        read_frame(b)


def test_an_oversized_frame_is_refused_before_reading_it(pair):
    a, b = pair
    a.sendall(HEADER.pack(b'I', MAX_FRAME + 1))
    with pytest.raises(ProtocolError, match='too large'):
        read_frame(b)


@pytest.mark.parametrize('code, rc', [(None, 0), (0, 0), (5, 5), (256 + 3, 3), ('msg', 1)])
def test_exit_codes_follow_python(code, rc):
    assert _exit_code(code) == rc


def test_pipelined_python_recognizes_only_the_module_command():
    py = '/usr/bin/python3'
    assert pipelined_python("/bin/sh -c '%s && sleep 0'" % py, '/bin/sh') == ({}, py)
    quoted = "/bin/sh -c 'A=1 B='\"'\"'x y'\"'\"' %s && sleep 0'" % py
    assert pipelined_python(quoted, '/bin/sh') == ({'A': '1', 'B': 'x y'}, py)
    for cmd in ("/bin/sh -c 'hostname'", "/bin/sh -c '%s -tt && sleep 0'" % py,
                "/bin/sh -c 'python3 && sleep 0'", "/bin/bash -c '%s && sleep 0'" % py,
                "/bin/sh -c '%s /tmp/x.py && sleep 0'" % py, "/bin/sh -c 'unbalanced",
                "/bin/sh -c 'sudo %s && sleep 0'" % py):
        assert pipelined_python(cmd, '/bin/sh') is None, cmd

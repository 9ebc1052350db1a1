"""The lab tools a learner looks through, on one live lab (built once for the module with
`scripts/k8slab --lab hi up`, torn down by a finalizer even when a test fails):

- `k8slab graph` draws what is live: every node, pod IP and host-gw route, every path check of
  the verification; a path broken for real (a host-gw route deleted) is red at its failing hop.
- `k8slab capture` runs tcpdump inside a node and a pod and sees a ping go by.

Needs root, Graphviz's dot and tcpdump.
"""

import html
import json
import os
import shutil
import subprocess
import threading
import time
import xml.etree.ElementTree as ET

import pytest

from conftest import ROOT, BIN, ansible_env

LAB = 'hi'
K8SLAB = os.path.join(ROOT, 'scripts', 'k8slab')
SVG_NS = '{http://www.w3.org/2000/svg}'

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root'),
    pytest.mark.skipif(not shutil.which('dot'), reason="needs Graphviz's dot"),
]


def k8slab(*args, env=None, timeout=600, check=True):
    out = subprocess.run([K8SLAB, '--lab', LAB] + list(args), capture_output=True, text=True,
                         env=env, timeout=timeout, check=False)
    if check:
        assert out.returncode == 0, 'k8slab %s:\n%s\n%s' % (
            ' '.join(args), out.stdout[-4000:], out.stderr[-4000:])
    return out


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    """The lab, up and verified, with its report in a directory of the module's own."""
    reports = str(tmp_path_factory.mktemp('hi-reports'))
    env = dict(os.environ, K8SLAB_ANSIBLE_BIN=BIN, K8SLAB_REPORT_DIR=reports)
    try:
        k8slab('up', env=env, timeout=900)
        with open(os.path.join(reports, LAB, 'verify.json')) as f:
            report = json.load(f)
        status = json.loads(k8slab('status', '--json', env=env).stdout)
        yield dict(env=env, reports=reports, report=report, status=status)
    finally:
        k8slab('down', env=env, timeout=600, check=False)


def svg_text(path):
    with open(path) as f:
        return html.unescape(f.read())


def edges(path):
    """[(title, stroke colours, texts)] of the SVG's edges (dot writes one <g class="edge">
    per edge: <title>tail->head</title>, the path, the label texts)."""
    out = []
    for g in ET.parse(path).getroot().iter(SVG_NS + 'g'):
        if g.get('class') != 'edge':
            continue
        title = g.find(SVG_NS + 'title').text
        strokes = {e.get('stroke') for e in g.iter(SVG_NS + 'path')}
        texts = ' '.join(t.text or '' for t in g.iter(SVG_NS + 'text'))
        out.append((title, strokes, texts))
    return out


def test_graph_shows_the_live_lab_and_every_verified_path(lab, tmp_path):
    svg = str(tmp_path / 'lab.svg')
    out = k8slab('graph', '-o', svg, '--report', os.path.join(lab['reports'], LAB, 'verify.json'),
                 env=lab['env'])
    assert os.path.getsize(svg) > 0 and os.path.getsize(svg[:-4] + '.png') > 0
    text = svg_text(svg)
    paths = [r for r in lab['report']['results'] if r['kind'] == 'path']
    assert paths and '%d paths drawn' % len(paths) in out.stdout
    for node in lab['status']['nodes']:
        assert 'node %s' % node['name'] in text
        for ifname, addrs in node['addresses'].items():
            if ifname in ('eth0', 'eth1', 'cni0'):
                assert addrs[0] in text, (ifname, addrs)
        for pod in node['pods']:
            assert 'pod %s' % pod['name'] in text and 'eth0 %s' % pod['ip'] in text
    # The host-gw routes: every peer's pod subnet via its eth1 address, on every node.
    nodes = lab['status']['nodes']
    for node in nodes:
        for peer in nodes:
            if peer is not node:
                route = '%s via %s dev eth1' % (
                    peer['addresses']['cni0'][0].rsplit('.', 1)[0] + '.0/24',
                    peer['addresses']['eth1'][0].split('/')[0])
                assert route in text
    # Every path check is in the legend and drawn green, hop by hop.
    for n, p in enumerate(paths, 1):
        assert '%s -> %s' % (p['source'], p['target']) in text
        assert 'P%d PASS' % n in text
        hops = [e for e in edges(svg) if e[2] == 'P%d' % n]
        assert len(hops) == len(p['hops']), (p['name'], hops)
        assert all(strokes == {'#1a9c3a'} for dummy, strokes, dummy2 in hops)
    assert ' FAIL' not in ' '.join(e[2] for e in edges(svg)) and 'FAIL<' not in text


def test_graph_draws_a_broken_path_red_at_the_failing_hop(lab, tmp_path):
    """node-2 loses its host-gw route to node-1's pods: from client-2 the first hop (its
    gateway) still answers, the second is no longer node-1's eth1."""
    env = dict(lab['env'], K8SLAB_REPORT_DIR=str(tmp_path))
    k8slab('exec', 'node-2', '--', 'ip', 'route', 'del', '10.244.1.0/24', env=env)
    try:
        verify = subprocess.run(
            [os.path.join(BIN, 'ansible-playbook'), '-i', os.path.join(ROOT, 'inventories', 'netns'),
             os.path.join(ROOT, 'playbooks', 'verify.yml'), '--tags', 'path',
             '-e', json.dumps({'lab_name': LAB, 'verify_fail': False})],
            cwd=ROOT, env=ansible_env(K8SLAB_REPORT_DIR=str(tmp_path)), capture_output=True,
            text=True, timeout=600, check=False)
        assert verify.returncode == 0, verify.stdout[-4000:] + verify.stderr[-2000:]
    finally:
        k8slab('exec', 'node-2', '--', 'ip', 'route', 'replace', '10.244.1.0/24', 'via',
               '192.168.56.11', 'dev', 'eth1', env=env)
    # A run of the path kind only writes verify-path.json (it never overwrites the full report).
    with open(os.path.join(str(tmp_path), LAB, 'verify-path.json')) as f:
        report = json.load(f)
    broken = [r for r in report['results'] if r['kind'] == 'path' and not r['passed']]
    # client-2 -> node-1's pods, and the way back (node-1's pods -> client-2: the replies
    # from node-2 to 10.244.1.0/24 now leave by eth0).
    assert {r['name'] for r in broken} == {'path node-2/client-2 -> node-1/httpd',
                                           'path node-1/client-1 -> node-2/client-2'}, broken
    # Graph ids of the hops: every node's cni0 and eth1 by address.
    ids = {}
    for node in lab['status']['nodes']:
        for ifname in ('cni0', 'eth1'):
            ids[node['addresses'][ifname][0].split('/')[0]] = '%s_%s' % (
                node['name'].replace('-', '_'), ifname)
    svg = str(tmp_path / 'broken.svg')
    k8slab('graph', '-o', svg, env=env)     # the report found through K8SLAB_REPORT_DIR
    paths = [r for r in report['results'] if r['kind'] == 'path']
    for n, p in enumerate(paths, 1):
        red = [e for e in edges(svg) if e[2].startswith('P%d hop' % n)]
        if p['passed']:
            assert not red
            continue
        assert len(red) == 1 and red[0][1] == {'#d62728'}, (p['name'], red)
        title, dummy, label = red[0]
        assert label == 'P%d hop 2 FAILED' % n
        # From hop 1 (the source pod's gateway, which answered) towards the hop that did not
        # come (the peer's eth1); dot may write the edge either way round, arrow reversed.
        want = p['expected'].split()
        assert set(title.split('->')) == {ids[want[0]], ids[want[1]]}, (p['name'], title)
        assert 'P%d FAIL' % n in svg_text(svg)


def test_capture_sees_a_ping_in_a_node_and_in_a_pod(lab):
    for target, iface in (('node-1', 'eth1'), ('node-1/httpd', 'eth0'), ('node-2', 'cni0')):
        result = {}

        def capture():
            result['out'] = k8slab('capture', target, iface, '--', '-c', '1', 'icmp',
                                   env=lab['env'], timeout=30, check=False)

        t = threading.Thread(target=capture)
        t.start()
        deadline = time.time() + 25
        while t.is_alive() and time.time() < deadline:  # ping until tcpdump has seen one
            k8slab('exec', 'node-2/client-2', '--', 'ping', '-c', '1', '-W', '1', '10.244.1.2',
                   env=lab['env'], check=False)
        t.join(5)
        out = result['out']
        assert out.returncode == 0, out.stderr
        assert 'IP 10.244.2.2 > 10.244.1.2: ICMP echo request' in out.stdout, (target, out.stdout)
        assert 'listening on %s' % iface in out.stderr


def test_capture_refuses_an_unknown_node(lab):
    out = k8slab('capture', 'node-9', 'eth1', env=lab['env'], check=False)
    assert out.returncode != 0 and "no node 'node-9'" in out.stderr

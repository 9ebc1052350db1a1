"""k8slab.podnet.cni_attachment runs the real CNI plugins (containernetworking-plugins in
/usr/lib/cni) as a container runtime does, inside a throwaway node namespace.

Every test builds its own node (a network namespace the module runs in, so cni0 and the host
veths never touch the root namespace), its own pod namespaces and a temporary directory for the
conf dir, the results cache, the host-local store, subnet.env and flannel's dataDir; all of it
is removed after the test, passed or failed.
"""

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from conftest import BIN, ROOT, PlaybookResult, ansible_env, ipj, sh

M = 'k8slab.podnet.cni_attachment'
SUBNET_ENV = ('FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1500\n'
              'FLANNEL_IPMASQ=true\n')

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists('/usr/lib/cni/bridge'),
                                reason='needs root and containernetworking-plugins')


class Node(object):
    """A throwaway node: namespace, pods, and the CNI files under one temp dir."""

    def __init__(self, uid):
        self.name = 'hg%sn' % uid
        self.uid = uid
        self.pods = []
        self.tmp = tempfile.mkdtemp(prefix='hg-cni-')
        self.conf_dir = os.path.join(self.tmp, 'net.d')
        self.cache_dir = os.path.join(self.tmp, 'cache')
        self.data_dir = os.path.join(self.tmp, 'networks')
        self.flannel_dir = os.path.join(self.tmp, 'flannel')
        self.subnet_file = os.path.join(self.tmp, 'subnet.env')
        self.plugin_dir = os.path.join(self.tmp, 'bin')
        os.makedirs(self.conf_dir)
        os.makedirs(self.plugin_dir)
        with open(self.subnet_file, 'w') as f:
            f.write(SUBNET_ENV)
        sh('ip netns add %s && ip -n %s link set lo up' % (self.name, self.name))

    def pod(self, n):
        name = 'hg%sp%d' % (self.uid, n)
        sh('ip netns add %s' % name)
        self.pods.append(name)
        return name, '/run/netns/%s' % name

    def conflist(self, conf, name='10-flannel.conflist'):
        path = os.path.join(self.conf_dir, name)
        with open(path, 'w') as f:
            f.write(json.dumps(conf, indent=2) + '\n')
        return path

    def flannel_conflist(self):
        """kube-flannel's conflist, pointed at this node's temp files."""
        return self.conflist({
            'name': 'cbr0', 'cniVersion': '0.3.1',
            'plugins': [
                {'type': 'flannel', 'subnetFile': self.subnet_file, 'dataDir': self.flannel_dir,
                 'ipam': {'dataDir': self.data_dir},
                 'delegate': {'hairpinMode': True, 'isDefaultGateway': True}},
                {'type': 'portmap', 'capabilities': {'portMappings': True}}]})

    def run(self, args, check=False, diff=False):
        """The module, run by ansible-playbook inside the node's namespace."""
        args = dict({'conf_dir': self.conf_dir, 'cache_dir': self.cache_dir}, **args)
        play = ("- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n"
                "    - name: the module\n      %s: %s\n" % (M, json.dumps(args)))
        path = os.path.join(self.tmp, 'play.yml')
        with open(path, 'w') as f:
            f.write(play)
        cmd = ['ip', 'netns', 'exec', self.name, os.path.join(BIN, 'ansible-playbook'),
               '-i', 'localhost,', path] + (['--check'] if check else []) + \
            (['--diff'] if diff else [])
        proc = subprocess.run(cmd, cwd=ROOT, env=ansible_env(), capture_output=True, text=True,
                              timeout=300, check=False)
        return PlaybookResult(proc).task('the module')

    def ipj(self, args, pod=None):
        return ipj('-n %s %s' % (pod or self.name, args))

    def store(self):
        d = os.path.join(self.data_dir, 'cbr0')
        if not os.path.isdir(d):
            return {}
        out = {}
        for f in os.listdir(d):
            if f[0].isdigit():
                with open(os.path.join(d, f), newline='') as fh:
                    out[f] = fh.read()
        return out

    def cleanup(self):
        for name in self.pods + [self.name]:
            subprocess.run(['ip', 'netns', 'del', name], capture_output=True, check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture
def node(uid):
    n = Node(uid)
    yield n
    n.cleanup()


def inet(node, pod, dev='eth0'):
    links = node.ipj('addr show dev %s' % dev, pod) if dev_exists(node, pod, dev) else []
    return [('%s/%s' % (a['local'], a['prefixlen'])) for link in links
            for a in link['addr_info'] if a['family'] == 'inet']


def dev_exists(node, ns, dev):
    return any(link['ifname'] == dev for link in node.ipj('link show', ns))


def test_add_rerun_check_repair_and_delete(node):
    conf_path = node.flannel_conflist()
    pod, netns = node.pod(1)
    cid = 'a5f99e13e6adefc620d7af17a559a6f51d584e3d6b4a4703728ebfe48de91a33'
    att = {'attachments': [{'container_id': cid, 'netns': netns}]}

    # Check mode: would add, runs nothing.
    res = node.run(att, check=True)
    assert res['changed'] is True and res['attachments'][0]['action'] == 'added', res
    assert res['commands'] == [] and not dev_exists(node, pod, 'eth0')
    assert not dev_exists(node, node.name, 'cni0')

    res = node.run(att, diff=True)
    assert res['changed'] is True, res
    assert res['flannel_emulated'] is True and res['commands'] == ['ADD bridge', 'ADD portmap']
    out = res['attachments'][0]
    assert out['action'] == 'added' and out['result']['ips'][0]['address'] == '10.244.1.2/24'
    assert inet(node, pod) == ['10.244.1.2/24']
    assert node.store() == {'10.244.1.2': '%s\r\neth0' % cid}
    routes = sorted((r['dst'], r.get('gateway')) for r in node.ipj('-4 route show', pod))
    assert routes == [('10.244.0.0/16', '10.244.1.1'), ('10.244.1.0/24', None),
                      ('default', '10.244.1.1')]

    # libcni's results cache, field for field.
    cache_file = os.path.join(node.cache_dir, 'results', 'cbr0-%s-eth0' % cid)
    assert out['cache_file'] == cache_file
    assert oct(os.stat(cache_file).st_mode & 0o777) == '0o600'
    with open(cache_file) as f:
        text = f.read()
    entry = json.loads(text)
    assert list(entry) == ['kind', 'containerId', 'config', 'ifName', 'networkName', 'netns',
                           'result']
    with open(conf_path, 'rb') as f:
        assert base64.b64decode(entry['config']) == f.read()
    assert (entry['kind'], entry['containerId'], entry['ifName'], entry['networkName'],
            entry['netns']) == ('cniCacheV1', cid, 'eth0', 'cbr0', netns)
    assert entry['result'] == out['result']

    # flannel's scratch file: the delegate it handed the bridge plugin.
    with open(os.path.join(node.flannel_dir, cid)) as f:
        assert json.loads(f.read()) == {
            'cniVersion': '0.3.1', 'hairpinMode': True, 'ipMasq': False,
            'isDefaultGateway': True, 'isGateway': True, 'mtu': 1500, 'name': 'cbr0',
            'type': 'bridge',
            'ipam': {'dataDir': node.data_dir, 'ranges': [[{'subnet': '10.244.1.0/24'}]],
                     'routes': [{'dst': '10.244.0.0/16'}], 'type': 'host-local'}}

    # Rerun: nothing to do, the cache is not rewritten.
    res = node.run(att)
    assert res['changed'] is False and res['attachments'][0]['action'] == 'unchanged', res
    with open(cache_file) as f:
        assert f.read() == text

    # Drift: the pod's address deleted. Check mode reports it and leaves it.
    sh('ip -n %s addr del 10.244.1.2/24 dev eth0' % pod)
    res = node.run(att, check=True)
    assert res['changed'] is True and res['attachments'][0]['action'] == 'repaired', res
    assert 'address 10.244.1.2/24 is missing on eth0' in res['attachments'][0]['drift']
    assert inet(node, pod) == []
    res = node.run(att, diff=True)
    assert res['changed'] is True and res['attachments'][0]['action'] == 'repaired', res
    assert res['commands'] == ['DEL portmap', 'DEL bridge', 'ADD bridge', 'ADD portmap']
    new_ip = res['attachments'][0]['result']['ips'][0]['address']
    assert inet(node, pod) == [new_ip]
    assert node.store() == {new_ip.split('/')[0]: '%s\r\neth0' % cid}
    assert node.run(att)['changed'] is False

    # Drift: the host side veth deleted (takes eth0 with it).
    veth = res['attachments'][0]['result']['interfaces'][1]['name']
    sh('ip -n %s link del %s' % (node.name, veth))
    res = node.run(att)
    assert res['attachments'][0]['action'] == 'repaired', res
    assert any(veth in d for d in res['attachments'][0]['drift']), res
    assert len(inet(node, pod)) == 1 and len(node.store()) == 1

    # DEL, then DEL again: the second succeeds and changes nothing.
    gone = {'state': 'absent', 'attachments': [{'container_id': cid}]}
    res = node.run(gone, check=True)
    assert res['changed'] is True and dev_exists(node, pod, 'eth0')
    res = node.run(gone, diff=True)
    assert res['changed'] is True and res['attachments'][0]['action'] == 'deleted', res
    assert not dev_exists(node, pod, 'eth0') and node.store() == {}
    assert not os.path.exists(cache_file)
    assert not os.path.exists(os.path.join(node.flannel_dir, cid))
    res = node.run(gone)
    assert res['changed'] is False and res['attachments'][0]['action'] == 'absent', res


def test_many_pods_in_one_call_and_plugin_check_for_cni_1_0(node):
    """A 1.0.0 list gets the plugins' own CHECK on an existing attachment; pods in one call."""
    node.conflist({'name': 'cbr0', 'cniVersion': '1.0.0', 'plugins': [
        {'type': 'bridge', 'bridge': 'cni0', 'isGateway': True, 'isDefaultGateway': True,
         'hairpinMode': True, 'ipam': {'type': 'host-local', 'dataDir': node.data_dir,
                                       'ranges': [[{'subnet': '10.244.1.0/24'}]]}},
        {'type': 'portmap', 'capabilities': {'portMappings': True}}]})
    pods = [node.pod(n) for n in (1, 2)]
    att = {'attachments': [{'container_id': 'hgsandbox%d' % n, 'netns': netns}
                           for n, (_pod, netns) in enumerate(pods)]}
    res = node.run(att)
    assert res['changed'] is True, res
    assert [a['action'] for a in res['attachments']] == ['added', 'added']
    assert sorted(node.store()) == ['10.244.1.2', '10.244.1.3']
    res = node.run(att)
    assert res['changed'] is False, res
    assert res['commands'] == ['CHECK bridge', 'CHECK portmap'] * 2
    # The 1.0.0 cache is a prevResult for DEL.
    res = node.run(dict(att, state='absent'))
    assert [a['action'] for a in res['attachments']] == ['deleted', 'deleted'], res
    assert node.store() == {}


def test_plugin_missing_from_cni_path_fails_before_anything_runs(node):
    node.conflist({'name': 'cbr0', 'cniVersion': '0.3.1', 'plugins': [
        {'type': 'bridge', 'ipam': {'type': 'host-local', 'dataDir': node.data_dir,
                                    'subnet': '10.244.1.0/24'}},
        {'type': 'hg-nosuch'}]})
    pod, netns = node.pod(1)
    res = node.run({'attachments': [{'container_id': 'hgc1', 'netns': netns}]})
    assert res.get('failed') is True, res
    assert "plugin 'hg-nosuch'" in res['msg'] and '/usr/lib/cni' in res['msg'], res
    assert not dev_exists(node, node.name, 'cni0') and not dev_exists(node, pod, 'eth0')
    assert node.store() == {} and not os.path.exists(node.cache_dir)


def test_plugin_failing_half_way_is_rolled_back_with_its_own_error(node):
    fail = os.path.join(node.plugin_dir, 'hg-fail')
    with open(fail, 'w') as f:
        f.write('#!/bin/sh\ncat >/dev/null\n'
                'if [ "$CNI_COMMAND" = ADD ]; then\n'
                '  echo \'{"cniVersion":"0.3.1","code":11,"msg":"hg says no",'
                '"details":"try later"}\'\n  exit 1\nfi\n')
    os.chmod(fail, 0o755)
    node.flannel_conflist()
    path = os.path.join(node.conf_dir, '10-flannel.conflist')
    with open(path) as f:
        conf = json.load(f)
    conf['plugins'].insert(1, {'type': 'hg-fail'})
    node.conflist(conf)
    pod, netns = node.pod(1)
    res = node.run({'cni_path': [node.plugin_dir, '/usr/lib/cni'],
                    'attachments': [{'container_id': 'hgc1', 'netns': netns}]})
    assert res.get('failed') is True, res
    assert res['cni_error']['code'] == 11 and res['cni_error']['msg'] == 'hg says no', res
    assert res['cni_error']['details'] == 'try later'
    assert 'type="hg-fail"' in res['msg'] and '[code 11] hg says no' in res['msg'], res
    assert res['commands'] == ['ADD bridge', 'ADD hg-fail', 'DEL portmap', 'DEL hg-fail',
                               'DEL bridge'], res
    assert not dev_exists(node, pod, 'eth0')
    assert [l['ifname'] for l in node.ipj('link show')
            if l.get('linkinfo', {}).get('info_kind') == 'veth'] == []
    assert node.store() == {}
    assert not os.path.exists(os.path.join(node.cache_dir, 'results', 'cbr0-hgc1-eth0'))
    assert not os.path.exists(os.path.join(node.flannel_dir, 'hgc1'))


@pytest.mark.parametrize('attachments, fragment', [
    ([{'container_id': 'bad id!', 'netns': '/run/netns/x'}], "container_id 'bad id!'"),
    ([{'container_id': 'c1'}], 'netns is required'),
    ([{'container_id': 'c1', 'netns': '/run/netns/hg-nosuch'}], '/run/netns/hg-nosuch'),
    ([{'container_id': 'c1', 'netns': '/proc/self/ns/net', 'ifname': 'x' * 16}], 'ifname'),
    ([{'container_id': 'c1', 'netns': '/proc/self/ns/net'}] * 2, 'listed twice'),
])
def test_bad_input_fails_naming_the_value(node, attachments, fragment):
    node.flannel_conflist()
    res = node.run({'attachments': attachments})
    assert res.get('failed') is True and fragment in res['msg'], res
    assert not dev_exists(node, node.name, 'cni0') and node.store() == {}


def test_no_conflist_names_the_directory(node):
    res = node.run({'attachments': [{'container_id': 'c1', 'netns': '/proc/self/ns/net'}]})
    assert res.get('failed') is True and node.conf_dir in res['msg'], res


if __name__ == '__main__':
    sys.exit(pytest.main([__file__, '-q']))

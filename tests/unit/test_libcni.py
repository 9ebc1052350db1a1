"""Unit tests of the runtime side of CNI (plugins/module_utils/libcni.py): conflist parsing,
what each plugin gets on stdin (name, cniVersion, prevResult, runtimeConfig), result and error
parsing, the results cache format and flannel's delegate. The real plugins run in
tests/integration/test_cni_attachment.py; here plugins are small shell scripts in tmp_path."""

import base64
import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, '.collections'))

from ansible_collections.k8slab.podnet.plugins.module_utils import libcni  # noqa: E402
from ansible_collections.k8slab.podnet.plugins.module_utils.libcni import CNIError  # noqa: E402

KUBE_FLANNEL = {'name': 'cbr0', 'cniVersion': '0.3.1', 'plugins': [
    {'type': 'flannel', 'delegate': {'hairpinMode': True, 'isDefaultGateway': True}},
    {'type': 'portmap', 'capabilities': {'portMappings': True}}]}
ENV = libcni.parse_subnet_env('FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\n'
                              'FLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n')


def test_find_conflist_picks_the_lexically_first(tmp_path):
    for name in ('20-b.conflist', '10-a.conflist', '05-c.conf'):
        (tmp_path / name).write_text('{}')
    assert libcni.find_conflist(str(tmp_path)) == str(tmp_path / '10-a.conflist')
    assert libcni.find_conflist(str(tmp_path), '20-b.conflist') == str(tmp_path / '20-b.conflist')
    with pytest.raises(CNIError, match='nosuch'):
        libcni.find_conflist(str(tmp_path), 'nosuch')
    with pytest.raises(CNIError, match='holds no .conflist'):
        libcni.find_conflist(str(tmp_path / 'empty'))


@pytest.mark.parametrize('conf, fragment', [
    ('not json', 'not JSON'),
    ({'name': 'bad name', 'plugins': [{'type': 'bridge'}]}, "name 'bad name'"),
    ({'name': 'n', 'cniVersion': 'x', 'plugins': [{'type': 'bridge'}]}, "cniVersion 'x'"),
    ({'name': 'n', 'plugins': []}, 'plugins must be a non-empty list'),
    ({'name': 'n', 'plugins': [{'type': 'bridge'}, {}]}, 'plugins[1] has no type'),
])
def test_parse_conflist_rejects(conf, fragment):
    with pytest.raises(CNIError) as e:
        libcni.parse_conflist(conf if isinstance(conf, str) else json.dumps(conf), 'F')
    assert fragment in str(e.value)


def test_build_plugin_conf_injects_name_version_prevresult_and_capabilities():
    prev = {'cniVersion': '0.3.1', 'ips': [{'address': '10.244.1.2/24'}]}
    caps = {'portMappings': [{'hostPort': 8080, 'containerPort': 80, 'protocol': 'tcp'}],
            'bandwidth': {'ingressRate': 1}}
    out = libcni.build_plugin_conf(KUBE_FLANNEL, KUBE_FLANNEL['plugins'][1], prev, caps)
    assert out == {'type': 'portmap', 'capabilities': {'portMappings': True}, 'name': 'cbr0',
                   'cniVersion': '0.3.1', 'prevResult': prev,
                   'runtimeConfig': {'portMappings': caps['portMappings']}}
    first = libcni.build_plugin_conf(KUBE_FLANNEL, KUBE_FLANNEL['plugins'][0], None, caps)
    assert 'prevResult' not in first and 'runtimeConfig' not in first
    assert KUBE_FLANNEL['plugins'][1] == {'type': 'portmap',
                                          'capabilities': {'portMappings': True}}


def test_parse_plugin_output():
    assert libcni.parse_plugin_output(b'{"cniVersion":"0.3.1"}', 0, 'p', 'ADD') == {
        'cniVersion': '0.3.1'}
    assert libcni.parse_plugin_output(b'', 0, 'p', 'DEL') is None
    with pytest.raises(CNIError) as e:
        libcni.parse_plugin_output(b'{"code":7,"msg":"no","details":"d"}', 1, 'type="x"', 'ADD')
    assert (e.value.code, e.value.msg, e.value.details) == (7, 'no', 'd')
    assert str(e.value) == 'plugin type="x" failed (add): [code 7] no; details: d'
    with pytest.raises(CNIError, match='exited 2 without an error object: boom'):
        libcni.parse_plugin_output(b'boom', 2, 'p', 'ADD')
    with pytest.raises(CNIError, match='printed no JSON'):
        libcni.parse_plugin_output(b'[1]', 0, 'p', 'ADD')


def test_subnet_env_as_flannel_reads_it():
    assert ENV == {'network': '10.244.0.0/16', 'subnet': '10.244.1.0/24', 'ipv6_network': None,
                   'ipv6_subnet': None, 'mtu': 1450, 'ipmasq': True}
    assert libcni.parse_subnet_env('FLANNEL_NETWORK=10.0.0.0/8\nFLANNEL_SUBNET=10.1.0.1/24\n'
                                   'FLANNEL_MTU=1500\nFLANNEL_IPMASQ=yes\n')['ipmasq'] is False
    with pytest.raises(CNIError, match='is missing FLANNEL_MTU, FLANNEL_IPMASQ'):
        libcni.parse_subnet_env('FLANNEL_NETWORK=10.0.0.0/8\nFLANNEL_SUBNET=10.1.0.1/24\n')
    with pytest.raises(CNIError, match="FLANNEL_SUBNET='10.1.0.300/24'"):
        libcni.parse_subnet_env('FLANNEL_SUBNET=10.1.0.300/24\n')


def test_flannel_delegate_of_kube_flannels_conflist():
    netconf = libcni.build_plugin_conf(KUBE_FLANNEL, KUBE_FLANNEL['plugins'][0])
    delegate = libcni.flannel_delegate(netconf, ENV)
    assert delegate == {
        'name': 'cbr0', 'cniVersion': '0.3.1', 'type': 'bridge', 'hairpinMode': True,
        'isDefaultGateway': True, 'isGateway': True, 'ipMasq': False, 'mtu': 1450,
        'ipam': {'type': 'host-local', 'ranges': [[{'subnet': '10.244.1.0/24'}]],
                 'routes': [{'dst': '10.244.0.0/16'}]}}
    # As Go's json.Marshal writes the map flannel saves under /var/lib/cni/flannel/<id>.
    assert libcni.go_json(delegate).startswith(
        '{"cniVersion":"0.3.1","hairpinMode":true,"ipMasq":false,"ipam":{"ranges":')


def test_flannel_delegate_keeps_explicit_values_and_rejects_ipam():
    netconf = {'name': 'n', 'cniVersion': '0.4.0', 'type': 'flannel',
               'ipam': {'dataDir': '/d', 'routes': [{'dst': '1.1.1.1/32'}]},
               'delegate': {'mtu': 1400, 'ipMasq': True, 'isGateway': False}}
    d = libcni.flannel_delegate(netconf, dict(ENV, ipmasq=False))
    assert (d['mtu'], d['ipMasq'], d['isGateway']) == (1400, True, False)
    assert d['ipam'] == {'dataDir': '/d', 'type': 'host-local',
                         'ranges': [[{'subnet': '10.244.1.0/24'}]],
                         'routes': [{'dst': '1.1.1.1/32'}, {'dst': '10.244.0.0/16'}]}
    assert 'isGateway' not in libcni.flannel_delegate(
        {'name': 'n', 'delegate': {'type': 'ipvlan'}}, ENV)
    for bad in ({'ipam': {}}, {'name': 'x'}, {'type': 1}):
        with pytest.raises(CNIError):
            libcni.flannel_delegate({'name': 'n', 'delegate': bad}, ENV)


def test_cache_entry_is_libcnis_format():
    att = {'container_id': 'abc', 'ifname': 'eth0', 'netns': '/run/netns/p',
           'args': {'K8S_POD_NAME': 'httpd', 'IgnoreUnknown': '1'}}
    text = libcni.cache_entry('cbr0', b'{"x":1}\n', att, {'ips': [], 'cniVersion': '0.3.1'})
    assert text == ('{"kind":"cniCacheV1","containerId":"abc","config":"%s","ifName":"eth0",'
                    '"networkName":"cbr0","netns":"/run/netns/p","cniArgs":[["IgnoreUnknown",'
                    '"1"],["K8S_POD_NAME","httpd"]],"result":{"cniVersion":"0.3.1","ips":[]}}'
                    % base64.b64encode(b'{"x":1}\n').decode())


PLUGIN = '''#!/bin/sh
in=$(cat)
echo "$CNI_COMMAND $(basename $0) $in" >> %(log)s
if [ "$CNI_COMMAND" = ADD ]; then
  if [ "$(basename $0)" = bad ]; then echo '{"code":4,"msg":"nope"}'; exit 1; fi
  echo '{"cniVersion":"0.4.0","ips":[{"address":"10.0.0.2/24","version":"4"}],"by":"'$(basename $0)'"}'
fi
'''


@pytest.fixture
def plugins(tmp_path):
    log = tmp_path / 'log'
    bindir = tmp_path / 'bin'
    bindir.mkdir()
    for name in ('one', 'two', 'bad', 'bridge'):
        path = bindir / name
        path.write_text(PLUGIN % {'log': log})
        path.chmod(0o755)
    return str(bindir), log


def calls(log):
    out = []
    for line in log.read_text().splitlines():
        cmd, name, conf = line.split(' ', 2)
        out.append((cmd, name, json.loads(conf)))
    return out


def runtime(tmp_path, bindir, types, version='0.4.0', extra=None):
    conf = {'name': 'net', 'cniVersion': version,
            'plugins': [dict({'type': t}, **(extra or {}).get(t, {})) for t in types]}
    data = json.dumps(conf).encode()
    return libcni.Runtime(libcni.parse_conflist(data), data, [bindir], str(tmp_path / 'cache'))


ATT = {'container_id': 'c1', 'netns': '/run/netns/p', 'ifname': 'eth0'}


def test_add_chains_prev_result_and_caches(tmp_path, plugins):
    bindir, log = plugins
    rt = runtime(tmp_path, bindir, ['one', 'two'])
    result = rt.add(ATT)
    assert result['by'] == 'two'
    c1, c2 = [conf for _cmd, _name, conf in calls(log)]
    assert 'prevResult' not in c1 and c2['prevResult']['by'] == 'one'
    assert c2['name'] == 'net' and c2['cniVersion'] == '0.4.0'
    assert rt.cache_read(ATT)['result'] == result
    assert rt.cache_read(ATT)['config'] == rt.conf_bytes.decode()
    # DEL: reverse order, cached result as prevResult (>= 0.4.0), cache dropped.
    log.write_text('')
    rt.delete(ATT)
    assert [(c, n, conf['prevResult']['by']) for c, n, conf in calls(log)] == [
        ('DEL', 'two', 'two'), ('DEL', 'one', 'two')]
    assert rt.cache_read(ATT) is None
    rt.delete(ATT)      # a second DEL is fine


def test_failed_add_is_rolled_back(tmp_path, plugins):
    bindir, log = plugins
    rt = runtime(tmp_path, bindir, ['one', 'bad', 'two'])
    with pytest.raises(CNIError) as e:
        rt.add(ATT)
    assert (e.value.code, e.value.msg, e.value.plugin) == (4, 'nope', 'type="bad" name="net"')
    assert [(c, n) for c, n, _conf in calls(log)] == [
        ('ADD', 'one'), ('ADD', 'bad'), ('DEL', 'two'), ('DEL', 'bad'), ('DEL', 'one')]
    assert rt.cache_read(ATT) is None


def test_missing_plugin_fails_before_running(tmp_path, plugins):
    bindir, log = plugins
    with pytest.raises(CNIError, match="plugin 'nosuch' named in the conflist is not in CNI_PATH"):
        runtime(tmp_path, bindir, ['one', 'nosuch'])
    with pytest.raises(CNIError, match="delegate 'ipvlan'"):
        runtime(tmp_path, bindir, ['flannel'], extra={'flannel': {'delegate': {'type': 'ipvlan'}}})
    assert not log.exists()


def test_check_only_from_0_4_0(tmp_path, plugins):
    bindir, log = plugins
    assert runtime(tmp_path, bindir, ['one'], version='0.3.1').check(ATT, {}) is False
    assert not log.exists()
    assert runtime(tmp_path, bindir, ['one']).check(ATT, {'by': 'x'}) is True
    assert [(c, n, conf['prevResult']) for c, n, conf in calls(log)] == [
        ('CHECK', 'one', {'by': 'x'})]


def test_flannel_emulated_saves_and_consumes_its_delegate(tmp_path, plugins):
    bindir, log = plugins
    env_file = tmp_path / 'subnet.env'
    env_file.write_text('FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\n'
                        'FLANNEL_MTU=1500\nFLANNEL_IPMASQ=false\n')
    flannel = {'subnetFile': str(env_file), 'dataDir': str(tmp_path / 'flannel'),
               'delegate': {'isDefaultGateway': True}}
    rt = runtime(tmp_path, bindir, ['flannel', 'one'], version='0.3.1',
                 extra={'flannel': flannel})
    assert rt.plan[0]['flannel_emulated'] is True
    rt.add(ATT)
    scratch = tmp_path / 'flannel' / 'c1'
    (_cmd, name, delegate), second = calls(log)[0], calls(log)[1][2]
    assert name == 'bridge' and scratch.read_text() == libcni.go_json(delegate)
    assert delegate['ipMasq'] is True and delegate['ipam']['ranges'] == [
        [{'subnet': '10.244.1.0/24'}]]
    assert second['prevResult']['by'] == 'bridge'
    log.write_text('')
    rt.delete(ATT)
    assert [(c, n) for c, n, _conf in calls(log)] == [('DEL', 'one'), ('DEL', 'bridge')]
    assert calls(log)[1][2] == delegate and not scratch.exists()
    log.write_text('')
    rt.delete(ATT)          # no saved delegate: flannel's DEL has nothing to do
    assert [(c, n) for c, n, _conf in calls(log)] == [('DEL', 'one')]


def test_result_drift():
    result = {'interfaces': [{'name': 'cni0', 'mac': 'aa:aa:aa:aa:aa:aa'}, {'name': 'veth1'},
                             {'name': 'eth0', 'sandbox': '/run/netns/p'}],
              'ips': [{'address': '10.244.1.2/24', 'interface': 2, 'gateway': '10.244.1.1'}],
              'routes': [{'dst': '10.244.0.0/16'}, {'dst': '0.0.0.0/0', 'gw': '10.244.1.1'}]}
    node = {'cni0': {'address': 'aa:aa:aa:aa:aa:aa'}, 'veth1': {}}
    pod = {'eth0': {'addr_info': [{'local': '10.244.1.2', 'prefixlen': 24}]}}
    routes = [{'dst': 'default', 'gateway': '10.244.1.1'},
              {'dst': '10.244.0.0/16', 'gateway': '10.244.1.1'}]

    def drift(node, pod, routes):
        return libcni.result_drift(result, '/run/netns/p', lambda ns: pod if ns else node,
                                   lambda ns: routes)
    assert drift(node, pod, routes) == []
    assert drift({'cni0': node['cni0']}, pod, routes) == ['interface veth1 is missing on the node']
    assert drift(node, {'eth0': {'addr_info': []}}, routes) == [
        'address 10.244.1.2/24 is missing on eth0']
    assert drift(node, pod, routes[1:]) == [
        'route 0.0.0.0/0 via 10.244.1.1 is missing in /run/netns/p']
    assert drift(dict(node, cni0={'address': 'bb:bb:bb:bb:bb:bb'}), pod, routes) == [
        'interface cni0 on the node has MAC bb:bb:bb:bb:bb:bb, the result says aa:aa:aa:aa:aa:aa']

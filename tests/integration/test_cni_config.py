"""k8slab.podnet.cni_config writes a flannel node's two files, exactly, idempotently."""

import json
import os

import pytest

from conftest import run_module

M = 'k8slab.podnet.cni_config'


@pytest.fixture
def paths(tmp_path):
    return {'conf_file': str(tmp_path / 'etc/cni/net.d/10-flannel.conflist'),
            'subnet_file': str(tmp_path / 'run/flannel/subnet.env')}


def test_writes_flannel_files_idempotently(paths):
    args = dict(paths, subnet='10.244.2.0/24', cluster_cidr='10.244.0.0/16')
    res = run_module(M, args, check=True)[0]
    assert res['changed'] is True and not os.path.exists(paths['conf_file']), res

    res = run_module(M, args, diff=True)[0]
    assert res['changed'] is True and res['gateway'] == '10.244.2.1/24', res
    assert sorted(res['changed_files']) == sorted(paths.values())
    with open(paths['subnet_file']) as f:
        assert f.read() == ('FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.2.1/24\n'
                            'FLANNEL_MTU=1500\nFLANNEL_IPMASQ=true\n')
    with open(paths['conf_file']) as f:
        conf = json.load(f)
    # kube-flannel's conflist; the non-default subnet file is where flannel's plugin reads it.
    assert (conf['name'], conf['cniVersion']) == ('cbr0', '0.3.1')
    assert conf['plugins'][0] == {
        'type': 'flannel', 'delegate': {'hairpinMode': True, 'isDefaultGateway': True},
        'subnetFile': paths['subnet_file']}
    assert conf['plugins'][1] == {'type': 'portmap', 'capabilities': {'portMappings': True}}

    res = run_module(M, args)[0]
    assert res['changed'] is False and res['changed_files'] == [], res

    # A changed setting rewrites only the file it appears in, and the diff shows it.
    # (MTU and masquerading live in subnet.env only: flannel reads them from there.)
    res = run_module(M, dict(args, mtu=1450), diff=True)[0]
    assert res['changed'] is True and res['changed_files'] == [paths['subnet_file']], res
    res = run_module(M, dict(args, ipmasq=False), diff=True, check=True)[0]
    assert res['changed'] is True

    res = run_module(M, dict(paths, state='absent'))[0]
    assert res['changed'] is True and not any(os.path.exists(p) for p in paths.values())
    res = run_module(M, dict(paths, state='absent'))[0]
    assert res['changed'] is False


@pytest.mark.parametrize('args, fragment', [
    ({'subnet': '10.244.2.1/24', 'cluster_cidr': '10.244.0.0/16'}, "'10.244.2.1/24'"),
    ({'subnet': '10.245.2.0/24', 'cluster_cidr': '10.244.0.0/16'}, 'outside cluster_cidr'),
    ({'subnet': '10.244.2.0/31', 'cluster_cidr': '10.244.0.0/16'}, '10.244.2.0/31'),
    ({'subnet': '10.244.2.0/24', 'cluster_cidr': '10.244.0.0/16', 'mtu': 20}, 'mtu 20'),
    # issue 16: names with a trailing newline (a YAML `|` block) or of the wrong shape
    ({'subnet': '10.244.2.0/24', 'cluster_cidr': '10.244.0.0/16', 'network': 'cbr0\n'},
     "network 'cbr0\\n'"),
    ({'subnet': '10.244.2.0/24', 'cluster_cidr': '10.244.0.0/16', 'bridge': 'cni0\n'},
     "bridge 'cni0\\n'"),
    ({'subnet': '10.244.2.0/24', 'cluster_cidr': '10.244.0.0/16', 'bridge': ['cni0']},
     "bridge must be a single value, not a list: ['cni0']"),
    ({'subnet': ['10.244.2.0/24'], 'cluster_cidr': '10.244.0.0/16'},
     "subnet must be a single value, not a list: ['10.244.2.0/24']"),
])
def test_bad_input_writes_nothing(paths, args, fragment):
    res = run_module(M, dict(paths, **args))[0]
    assert res.get('failed') is True and fragment in res['msg'], res
    assert not any(os.path.exists(p) for p in paths.values())

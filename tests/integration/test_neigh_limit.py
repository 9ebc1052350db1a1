"""The single-host lab checks its size against the host's IPv4 neighbour table before it builds
anything (roles/netns_lab, plugins/filter/neigh.py): a 12-node lab of 252 pods (generated
inventory) fails fast naming the number and the sysctl, and leaves no namespace; the reference
lab passes the check. Needs root (the playbook runs as the lab would)."""

import json
import os
import subprocess

import pytest
import yaml

from conftest import ROOT, run_playbook

SITE = os.path.join(ROOT, 'site.yml')
UP = os.path.join(ROOT, 'playbooks', 'netns_lab_up.yml')
CHECK = "k8slab.podnet.netns_lab : Check that the lab fits the host's IPv4 neighbour table (gc_thresh3)"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='needs root')


def gc_thresh3():
    with open('/proc/sys/net/ipv4/neigh/default/gc_thresh3') as f:
        return int(f.read())


def big_inventory(path, nodes=12, pods_per_node=21, lab='hi-big'):
    names = ['node-%d' % i for i in range(nodes)]
    inventory = {'all': {'vars': {'lab_backend': 'netns', 'lab_name': lab}, 'children': {
        'k8s_cluster': {'vars': {'ansible_connection': 'k8slab.podnet.netns'},
                        'hosts': dict((n, None) for n in names)}}}}
    group_vars = path / 'group_vars' / 'all'
    group_vars.mkdir(parents=True)
    with open(os.path.join(ROOT, 'inventories', 'netns', 'group_vars', 'all', 'lab.yml')) as f:
        lab_vars = yaml.safe_load(f)
    lab_vars.update(
        lab_name=lab,
        lab_nodes=dict((n, {'eth1_ip': '192.168.56.%d' % (10 + i),
                            'pod_cidr': '10.244.%d.0/24' % i}) for i, n in enumerate(names)),
        lab_pods=[{'name': 'p%d' % j, 'node': n, 'workload': 'sleep'}
                  for n in names for j in range(pods_per_node)])
    (group_vars / 'lab.yml').write_text(yaml.safe_dump(lab_vars))
    # The backend's traits, linked as every inventory links them (docs/backends.md).
    (group_vars / 'backend.yml').symlink_to(os.path.join(ROOT, 'backends', 'netns.yml'))
    (path / 'hosts.yml').write_text(yaml.safe_dump(inventory))
    return str(path), nodes * pods_per_node


def lab_namespaces(lab):
    out = subprocess.run(['ip', '-j', 'netns', 'list'], capture_output=True, text=True,
                         check=True).stdout
    return [n['name'] for n in json.loads(out or '[]') if n['name'].startswith(lab + '-')]


@pytest.mark.skipif(gc_thresh3() >= 2048, reason='this host already raised gc_thresh3')
def test_a_lab_too_big_for_the_neighbour_table_fails_before_building(tmp_path):
    inventory, pods = big_inventory(tmp_path)
    result = run_playbook(SITE, inventory=inventory)
    assert result.rc != 0, result
    failed = result.task(CHECK)
    assert failed.get('failed'), failed
    # 12 nodes, 252 pods: 144 + 72 + 12 x (4 x 21 - 2) = 1200 entries.
    assert 'needs 1200 IPv4 neighbour entries' in failed['msg'], failed['msg']
    assert '(12 nodes, %d pods)' % pods in failed['msg']
    assert 'net.ipv4.neigh.default.gc_thresh3 = %d' % gc_thresh3() in failed['msg']
    assert 'sysctl -w net.ipv4.neigh.default.gc_thresh3=2400' in failed['msg']
    # Nothing was built: no namespace, no lab record, and no node play ran.
    assert lab_namespaces('hi-big') == []
    assert not os.path.exists('/run/k8slab/hi-big')
    assert all(not result.tasks(host) for host in ('node-0', 'node-11'))


def test_the_reference_lab_fits(tmp_path):
    """The check passes on the reference lab. Check mode builds nothing (the run goes on to
    fail later, as check mode of a lab that is not up does: only the check is looked at)."""
    result = run_playbook(UP, inventory=os.path.join(ROOT, 'inventories', 'netns'),
                          check=True, extra_vars={'lab_name': 'hi-ref'})
    ok = result.task(CHECK)
    assert not ok.get('failed') and ok['msg'] == '57 neighbour entries needed, gc_thresh3 %d' \
        % gc_thresh3(), ok
    assert lab_namespaces('hi-ref') == []

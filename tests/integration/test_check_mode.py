"""Ansible's conventions on a host without the lab: `site.yml --check` reports what it would
create and succeeds, creating nothing; `k8slab status` says it needs root when run as a user.
"""

import json
import os
import pwd
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
LAB = 'hjcheck'

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='needs root')


def lab_traces():
    netns = subprocess.run(['ip', '-j', 'netns', 'list'], capture_output=True, text=True,
                           check=True).stdout
    names = [n['name'] for n in json.loads(netns or '[]') if n['name'].startswith(LAB + '-')]
    return names + (['/run/k8slab/' + LAB] if os.path.exists('/run/k8slab/' + LAB) else [])


def test_site_check_on_a_host_without_the_lab():
    assert not lab_traces()
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
               ANSIBLE_CALLBACK_RESULT_FORMAT='json', PATH=BIN + os.pathsep + os.environ['PATH'])
    proc = subprocess.run([os.path.join(BIN, 'ansible-playbook'), '-i', 'inventories/netns',
                           'site.yml', '--check', '-e', 'lab_name=' + LAB], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False)
    out = proc.stdout
    try:
        assert proc.returncode == 0, out[-3000:] + proc.stderr[-2000:]
        # What it would create: the nodes' namespaces and the NAT routers' rules...
        for task in ('Network namespaces of the nodes', 'NAT routers masquerade'):
            head = out[out.index('TASK [k8slab.podnet.netns_lab : ' + task):]
            assert head.split('TASK [', 2)[1].count('changed: [localhost]') == 1, head[:600]
        # ...and the nodes, which do not exist yet, end with a word instead of failing.
        # Both node plays (the pod network, its verification) end each of the three nodes.
        assert out.count('does not exist yet (the nodes play would make it)') == 6, out[-3000:]
        assert not lab_traces()
    finally:
        subprocess.run([os.path.join(BIN, 'ansible-playbook'), '-i', 'inventories/netns',
                        'playbooks/netns_lab_down.yml', '-e', 'lab_name=' + LAB], cwd=ROOT,
                       env=env, capture_output=True, check=False)


def test_status_as_a_user_says_it_needs_root():
    user = pwd.getpwnam('nobody')

    def drop():
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)

    k8slab = os.path.join(ROOT, 'scripts', 'k8slab')
    # A checkout in a private directory (mktemp -d is 0700) cannot be reached by the user at all.
    if subprocess.run(['test', '-x', k8slab], preexec_fn=drop, check=False).returncode:
        pytest.skip('user nobody cannot reach %s' % k8slab)
    proc = subprocess.run([k8slab, 'status'], cwd='/',
                          preexec_fn=drop, capture_output=True, text=True, check=False)
    assert proc.returncode == 1 and 'needs root' in proc.stderr, (proc.returncode, proc.stderr)

"""k8slab.podnet.netns_lab_nodes on its own: a one-node lab made and removed (needs root)."""

import os
import secrets
import socket
import stat

from conftest import run_module, sh


def test_directories_and_namespace_files_are_made_as_the_commands_say():
    """The lab's directories and pinned-namespace files are made in-process: check mode
    lists them as `mkdir -p`/`touch` and makes nothing; a real run makes exactly those, as
    those commands would (directories 0755 under root's umask 022), the files then pinning
    the node's namespaces."""
    lab = 'kn' + secrets.token_hex(2)
    args = dict(lab=lab, nodes=['node-1'], namespaces=['%s-node-1' % lab],
                private_dirs=['/run/podnet', '/var/lib/cni'])
    base = '/run/k8slab/' + lab
    try:
        check = run_module('k8slab.podnet.netns_lab_nodes', args, check=True)[0]
        assert check['changed'] and not os.path.exists(base), check
        made = [c for c in check['commands'] if c.startswith(('mkdir -p ', 'touch '))]
        dirs = [c[len('mkdir -p '):] for c in check['commands'] if c.startswith('mkdir -p ')]
        files = [c[len('touch '):] for c in check['commands'] if c.startswith('touch ')]
        assert base + '/nodes/node-1/run/podnet' in dirs and base + '/mnt/node-1' in files, check
        assert base + '/uts/node-1' in files, check

        res = run_module('k8slab.podnet.netns_lab_nodes', args)[0]
        assert res['changed'] and res['commands'][:len(made)] == check['commands'][:len(made)], res
        for d in dirs:
            assert stat.S_IMODE(os.stat(d).st_mode) == 0o755, d
        for f in files:  # now each a namespace bound over the file touch made
            assert os.path.isfile(f) and os.stat(f).st_ino != os.stat(os.path.dirname(f)).st_ino, f
        assert not run_module('k8slab.podnet.netns_lab_nodes', args)[0]['changed']
    finally:
        gone = run_module('k8slab.podnet.netns_lab_nodes', dict(args, state='absent'))[0]
        assert not gone.get('failed'), gone
        assert not os.path.exists(base)


def test_a_nodes_lost_mounts_and_host_name_are_put_back():
    """A node whose bind mounts were undone and whose host name changed inside it is set up
    again in its own namespaces (check mode names the commands and changes nothing); the
    host's mounts and host name are never touched."""
    lab = 'kn' + secrets.token_hex(2)
    args = dict(lab=lab, nodes=['node-1'], private_dirs=['/run/podnet'],
                resolv_conf='nameserver 10.0.2.3\n')
    node = 'nsenter --mount=/run/k8slab/{0}/mnt/node-1 --uts=/run/k8slab/{0}/uts/node-1 '.format(lab)
    host_name = socket.gethostname()

    def lab_mounts():  # the host's mount table entries of this lab, and /etc/resolv.conf's
        return [line for line in sh('cat /proc/self/mountinfo').splitlines()
                if '/' + lab in line or ' /etc/resolv.conf ' in line or ' /run/podnet ' in line]
    host_mounts = lab_mounts()
    try:
        assert run_module('k8slab.podnet.netns_lab_nodes', args)[0]['changed']
        look = node + "sh -c 'hostname; cat /etc/resolv.conf; mountpoint -q /run/podnet && echo bound'"
        assert sh(look) == 'node-1\nnameserver 10.0.2.3\nbound\n'
        sh(node + "sh -c 'umount /etc/resolv.conf; umount /run/podnet; hostname elsewhere'")
        broken = sh(look + ' || true')
        check = run_module('k8slab.podnet.netns_lab_nodes', args, check=True)[0]
        assert check['changed'] and sh(look + ' || true') == broken, check
        assert len(check['commands']) == 3, check  # the host name and two bind mounts
        res = run_module('k8slab.podnet.netns_lab_nodes', args)[0]
        assert res['changed'] and res['commands'] == check['commands'], (res, check)
        assert sh(look) == 'node-1\nnameserver 10.0.2.3\nbound\n'
        assert not run_module('k8slab.podnet.netns_lab_nodes', args)[0]['changed']
    finally:
        gone = run_module('k8slab.podnet.netns_lab_nodes', dict(args, state='absent'))[0]
        if socket.gethostname() != host_name:  # the node's name leaked: put the host's back
            sh('hostname %s' % host_name)
        assert not gone.get('failed'), gone
    assert socket.gethostname() == host_name
    assert lab_mounts() == host_mounts

"""k8slab.podnet.netns_lab_nodes on its own: a one-node lab made and removed (needs root)."""

import os
import secrets
import stat

from conftest import run_module


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

"""Drive the real CNI host-local plugin and the cni_ipam module file side by side.

The plugin gets the network config on stdin and its arguments in CNI_* variables; it never
opens CNI_NETNS, so any path does. The module file runs as Ansible runs it on a target
(``python cni_ipam.py args.json``) - the same code, no controller - so a test can afford a
few hundred calls and run them in parallel with the plugin.
"""

import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLUGIN = '/usr/lib/cni/host-local'
MODULE = os.path.join(ROOT, 'plugins', 'modules', 'cni_ipam.py')
PYTHONPATH = os.path.join(ROOT, '.collections')


def netconf(data_dir, network='cbr0', subnet='10.244.1.0/24', range_start=None, range_end=None,
            gateway=None):
    rng = {'subnet': subnet}
    for key, value in (('rangeStart', range_start), ('rangeEnd', range_end),
                       ('gateway', gateway)):
        if value is not None:
            rng[key] = value
    return {'cniVersion': '1.0.0', 'name': network, 'type': 'host-local',
            'ipam': {'type': 'host-local', 'dataDir': data_dir, 'ranges': [[rng]]}}


def plugin_env(command, container_id, ifname='eth0', ip=None):
    env = {'PATH': os.environ.get('PATH', '/usr/bin:/bin'), 'CNI_COMMAND': command,
           'CNI_CONTAINERID': container_id, 'CNI_NETNS': '/var/run/netns/kb-unused',
           'CNI_IFNAME': ifname, 'CNI_PATH': os.path.dirname(PLUGIN)}
    if ip:
        env['CNI_ARGS'] = 'IP=%s' % ip
    return env


def plugin_popen(conf, command, container_id, ifname='eth0', ip=None):
    env = plugin_env(command, container_id, ifname, ip)
    proc = subprocess.Popen([PLUGIN], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    proc.stdin.write(json.dumps(conf).encode())
    proc.stdin.close()
    return proc


def plugin_result(proc):
    """{'ok', 'ip', 'gateway', 'msg'} from a finished plugin process."""
    out = proc.stdout.read()
    proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    data = json.loads(out) if out.strip() else {}
    if proc.returncode != 0:
        return {'ok': False, 'msg': data.get('msg', out.decode())}
    ips = data.get('ips') or [{}]
    return {'ok': True, 'ip': ips[0].get('address'), 'gateway': ips[0].get('gateway')}


def plugin(conf, command, container_id, ifname='eth0', ip=None):
    return plugin_result(plugin_popen(conf, command, container_id, ifname, ip))


def module_args(conf, **args):
    """cni_ipam arguments equivalent to a plugin network config."""
    rng = conf['ipam']['ranges'][0][0]
    out = {'network': conf['name'], 'data_dir': conf['ipam']['dataDir'], 'subnet': rng['subnet']}
    for key, opt in (('rangeStart', 'range_start'), ('rangeEnd', 'range_end'),
                     ('gateway', 'gateway')):
        if key in rng:
            out[opt] = rng[key]
    out.update(args)
    return out


def module_popen(args, check=False, diff=False):
    args = dict(args, _ansible_check_mode=check, _ansible_diff=diff)
    fd, path = tempfile.mkstemp(prefix='kb-args-', suffix='.json')
    with os.fdopen(fd, 'w') as f:
        json.dump({'ANSIBLE_MODULE_ARGS': args}, f)
    env = dict(os.environ, PYTHONPATH=PYTHONPATH)
    proc = subprocess.Popen([sys.executable, MODULE, path], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    proc.args_file = path
    return proc


def module_result(proc):
    out, err = proc.communicate()
    os.unlink(proc.args_file)
    try:
        data = json.loads(out)
    except ValueError:
        raise AssertionError('module printed no JSON (rc=%s): %s %s' % (proc.returncode, out, err))
    data['ok'] = not data.get('failed')
    return data


def module(args, check=False, diff=False):
    return module_result(module_popen(args, check, diff))


API_ALLOCATE = """
import json, sys
sys.path.insert(0, %r)
from ansible_collections.k8slab.podnet.plugins.module_utils import hostlocal as hl
try:
    res = hl.ensure(sys.argv[1], 'cbr0', hl.Range('10.244.1.0/24'),
                    hl.validate_requests([{'container_id': sys.argv[2]}], 'present'))
except hl.HostLocalError as e:
    print(json.dumps({'msg': str(e)}))
    sys.exit(1)
print(json.dumps({'ips': [{'address': res['allocations'][0]['ip']}]}))
""" % PYTHONPATH


def api_popen(data_dir, container_id):
    """Allocate in network cbr0, 10.244.1.0/24 through the module_utils API in a fresh
    process; its output mimics the plugin's, so read it with plugin_result()."""
    return subprocess.Popen([sys.executable, '-c', API_ALLOCATE, data_dir, container_id],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def store(data_dir, network='cbr0'):
    """Every entry of a store: name -> (bytes, mode); None when the store does not exist."""
    path = os.path.join(data_dir, network)
    if not os.path.isdir(path):
        return None
    out = {}
    for name in sorted(os.listdir(path)):
        p = os.path.join(path, name)
        with open(p, 'rb') as f:
            out[name] = (f.read(), oct(os.stat(p).st_mode))
    return out

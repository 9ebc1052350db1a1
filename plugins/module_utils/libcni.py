# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""A container runtime's side of the CNI protocol (what libcni and cnitool do), for the
cni_attachment module.

Sources followed (read, not copied): the CNI spec (SPEC.md, "Execution protocol" and "Network
configuration lists"), containernetworking/cni libcni/api.go (plugin chaining, what is injected
into each plugin's config, the results cache) and flannel-io/cni-plugin flannel.go /
flannel_linux.go (the delegate a flannel node hands to the bridge plugin).

Shapes used throughout:
- a *network list* is the parsed conflist: ``{'name', 'cniVersion', 'plugins': [dict, ...],
  'disableCheck'?}`` plus its raw bytes (libcni caches the bytes, not the parsed form);
- an *attachment* is ``{'container_id', 'netns', 'ifname', 'args': {K: V},
  'capability_args': {capability: data}}``;
- a *result* is the plugin's stdout JSON (CNI result of the list's cniVersion).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import base64
import copy
import glob
import ipaddress
import json
import os
import re

from ansible_collections.k8slab.podnet.plugins.module_utils import command
from ansible_collections.k8slab.podnet.plugins.module_utils.files import read_text, write_atomic

CACHE_KIND = 'cniCacheV1'          # libcni's cache format tag
FLANNEL_DATA_DIR = '/var/lib/cni/flannel'
FLANNEL_SUBNET_FILE = '/run/flannel/subnet.env'
# libcni's utils.ValidateContainerID / ValidateNetworkName
_ID_RE = re.compile(r'^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$')


class CNIError(Exception):
    """A failure of the runtime side or of a plugin.

    ``code``/``msg``/``details`` are the plugin's own error (CNI spec "Error" object) when a
    plugin failed; ``plugin`` names it (``type=... name=...``) and ``command`` is ADD/DEL/CHECK.
    """

    def __init__(self, msg, code=None, details='', plugin=None, command=None):
        Exception.__init__(self, msg)
        self.msg = msg
        self.code = code
        self.details = details or ''
        self.plugin = plugin
        self.command = command

    def __str__(self):
        if self.plugin is None:
            return self.msg
        text = 'plugin %s failed (%s): [code %s] %s' % (
            self.plugin, (self.command or '').lower(), self.code, self.msg)
        return text + ('; details: %s' % self.details if self.details else '')

    def as_dict(self):
        return {'code': self.code, 'msg': self.msg, 'details': self.details,
                'plugin': self.plugin, 'command': self.command}


def version_tuple(version):
    """'0.3.1' -> (0, 3, 1); '' (pre-0.2 configs) counts as 0.1.0 as in libcni."""
    parts = (version or '0.1.0').split('.')
    try:
        return tuple(int(p) for p in parts)
    except ValueError:
        raise CNIError('cniVersion %r is not a version (x.y.z)' % version)


# ---- configuration ------------------------------------------------------------------------
def find_conflist(conf_dir, conf_file=None):
    """The path of the network config list: conf_file (a name in conf_dir or an absolute
    path) or, as kubelet/containerd pick it, the lexically first ``*.conflist`` in conf_dir.
    Raises CNIError naming the directory or file when there is none."""
    if conf_file:
        path = conf_file if os.path.isabs(conf_file) else os.path.join(conf_dir, conf_file)
        if not os.path.isfile(path):
            raise CNIError('conf_file %s does not exist' % path)
        return path
    found = sorted(glob.glob(os.path.join(conf_dir, '*.conflist')))
    if not found:
        raise CNIError('conf_dir %s holds no .conflist file' % conf_dir)
    return found[0]


def parse_conflist(data, source='conflist'):
    """Parse and check a conflist (bytes or text) as libcni's ConfListFromBytes does.
    Returns the dict; raises CNIError naming the field and source."""
    try:
        conf = json.loads(data)
    except ValueError as e:
        raise CNIError('%s is not JSON: %s' % (source, e))
    if not isinstance(conf, dict):
        raise CNIError('%s is not a JSON object' % source)
    name = conf.get('name')
    if not isinstance(name, str) or not _ID_RE.match(name):
        raise CNIError('%s: name %r is not a valid network name' % (source, name))
    version_tuple(conf.get('cniVersion', ''))
    plugins = conf.get('plugins')
    if not isinstance(plugins, list) or not plugins:
        raise CNIError('%s: plugins must be a non-empty list' % source)
    for n, plugin in enumerate(plugins):
        if not isinstance(plugin, dict) or not isinstance(plugin.get('type'), str) \
                or not plugin['type']:
            raise CNIError('%s: plugins[%d] has no type' % (source, n))
    return conf


def find_plugin(plugin_type, cni_path):
    """Absolute path of the executable plugin_type in the first cni_path directory holding it,
    or None (libcni's FindInPath)."""
    for directory in cni_path:
        path = os.path.join(directory, plugin_type)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def plan_plugins(conf, cni_path):
    """For each plugin of the list, how it runs: ``{'type', 'path', 'flannel_emulated'}``.

    A ``flannel`` plugin missing from cni_path is emulated (its delegate expanded here, see
    flannel_delegate) when its delegate's plugin is present. Raises CNIError naming the plugin
    and the path before anything runs when a plugin is missing."""
    out = []
    for plugin in conf['plugins']:
        path = find_plugin(plugin['type'], cni_path)
        emulated = False
        if path is None and plugin['type'] == 'flannel':
            delegate_type = (plugin.get('delegate') or {}).get('type', 'bridge')
            path = find_plugin(delegate_type, cni_path)
            emulated = path is not None
            if not emulated:
                raise CNIError('plugin flannel is not in CNI_PATH %s and neither is its '
                               'delegate %r' % (':'.join(cni_path), delegate_type))
        if path is None:
            raise CNIError('plugin %r named in the conflist is not in CNI_PATH %s'
                           % (plugin['type'], ':'.join(cni_path)))
        out.append({'type': plugin['type'], 'path': path, 'flannel_emulated': emulated})
    return out


def build_plugin_conf(conf, plugin, prev_result=None, capability_args=None):
    """The stdin config of one plugin of the list (libcni buildOneConfig): the plugin's own
    dict with the list's ``name`` and ``cniVersion``, ``prevResult`` when given, and a
    ``runtimeConfig`` holding only the capability_args the plugin declares in
    ``capabilities``."""
    out = copy.deepcopy(plugin)
    out['name'] = conf['name']
    out['cniVersion'] = conf.get('cniVersion', '')
    if prev_result is not None:
        out['prevResult'] = prev_result
    runtime = dict((k, v) for k, v in (capability_args or {}).items()
                   if (plugin.get('capabilities') or {}).get(k))
    if runtime:
        out['runtimeConfig'] = runtime
    return out


# ---- flannel's delegate -------------------------------------------------------------------
def parse_subnet_env(text, source=FLANNEL_SUBNET_FILE):
    """flannel's subnet.env as flannel's plugin reads it: FLANNEL_NETWORK and FLANNEL_SUBNET
    as networks (host bits dropped: 10.244.1.1/24 -> 10.244.1.0/24), FLANNEL_MTU as int,
    FLANNEL_IPMASQ true only for the exact word ``true``. Returns a dict with keys network,
    subnet, ipv6_network, ipv6_subnet, mtu, ipmasq; raises CNIError naming what is missing."""
    env = {}
    for line in text.splitlines():
        key, sep, value = line.partition('=')
        if not sep:
            continue
        try:
            if key in ('FLANNEL_NETWORK', 'FLANNEL_SUBNET', 'FLANNEL_IPV6_NETWORK',
                       'FLANNEL_IPV6_SUBNET'):
                env[key] = str(ipaddress.ip_interface(value).network)
            elif key == 'FLANNEL_MTU':
                env[key] = int(value)
            elif key == 'FLANNEL_IPMASQ':
                env[key] = value == 'true'
        except ValueError as e:
            raise CNIError('%s: %s=%r is invalid: %s' % (source, key, value, e))
    missing = []
    if 'FLANNEL_NETWORK' not in env and 'FLANNEL_IPV6_NETWORK' not in env:
        missing += ['FLANNEL_NETWORK', 'FLANNEL_IPV6_NETWORK']
    if 'FLANNEL_SUBNET' not in env and 'FLANNEL_IPV6_SUBNET' not in env:
        missing += ['FLANNEL_SUBNET', 'FLANNEL_IPV6_SUBNET']
    missing += [k for k in ('FLANNEL_MTU', 'FLANNEL_IPMASQ') if k not in env]
    if missing:
        raise CNIError('%s is missing %s' % (source, ', '.join(missing)))
    return dict(network=env.get('FLANNEL_NETWORK'), subnet=env.get('FLANNEL_SUBNET'),
                ipv6_network=env.get('FLANNEL_IPV6_NETWORK'),
                ipv6_subnet=env.get('FLANNEL_IPV6_SUBNET'),
                mtu=env['FLANNEL_MTU'], ipmasq=env['FLANNEL_IPMASQ'])


def flannel_delegate(netconf, env):
    """The config flannel's plugin hands its delegate on ADD, from its own stdin config
    netconf (as the runtime built it: name, cniVersion, delegate, ipam?, runtimeConfig?) and
    the parsed subnet.env. Rules of flannel's cmdAdd/doCmdAdd/getDelegateIPAM:
    delegate gets name; type defaults to bridge; ipMasq = not FLANNEL_IPMASQ and mtu =
    FLANNEL_MTU unless set; isGateway true for bridge unless set; cniVersion of the list;
    runtimeConfig passed on; ipam = netconf's ipam (type host-local by default) with
    ranges [[{subnet: FLANNEL_SUBNET}]] (+ IPv6) and routes = ipam.routes + FLANNEL_NETWORK
    (+ IPv6). The delegate may not carry name or ipam. Raises CNIError on those."""
    delegate = copy.deepcopy(netconf.get('delegate') or {})
    if 'type' in delegate and not isinstance(delegate['type'], str):
        raise CNIError("flannel: 'delegate' dictionary, if present, must have (string) "
                       "'type' field")
    for key in ('name', 'ipam'):
        if key in delegate:
            raise CNIError("flannel: 'delegate' dictionary must not have %r field, it'll be "
                           "set by flannel" % key)
    if netconf.get('runtimeConfig'):
        delegate['runtimeConfig'] = netconf['runtimeConfig']
    delegate['name'] = netconf['name']
    delegate.setdefault('type', 'bridge')
    delegate.setdefault('ipMasq', not env['ipmasq'])
    delegate.setdefault('mtu', env['mtu'])
    if delegate['type'] == 'bridge':
        delegate.setdefault('isGateway', True)
    if netconf.get('cniVersion'):
        delegate['cniVersion'] = netconf['cniVersion']
    ipam = copy.deepcopy(netconf.get('ipam') or {})
    ipam.setdefault('type', 'host-local')
    ipam['ranges'] = [[{'subnet': s}] for s in (env['subnet'], env['ipv6_subnet']) if s]
    routes = list(ipam.get('routes') or [])
    routes += [{'dst': n} for n in (env['network'], env['ipv6_network']) if n]
    ipam['routes'] = routes
    delegate['ipam'] = ipam
    return delegate


def go_json(value):
    """JSON as Go's encoding/json writes a map: compact, keys sorted."""
    return json.dumps(value, sort_keys=True, separators=(',', ':'))


# ---- running plugins ----------------------------------------------------------------------
def plugin_env(command, attachment, cni_path):
    """The CNI_* environment of one invocation (CNI spec "Parameters")."""
    env = dict(os.environ)
    env.update({
        'CNI_COMMAND': command,
        'CNI_CONTAINERID': attachment['container_id'],
        'CNI_NETNS': attachment.get('netns') or '',
        'CNI_IFNAME': attachment['ifname'],
        'CNI_PATH': ':'.join(cni_path),
    })
    args = attachment.get('args') or {}
    if args:
        env['CNI_ARGS'] = ';'.join('%s=%s' % (k, args[k]) for k in sorted(args))
    else:
        env.pop('CNI_ARGS', None)
    return env


def parse_plugin_output(stdout, rc, plugin_desc, command):
    """A plugin's stdout: the result dict on success (None when empty, as DEL/CHECK print
    nothing); on a non-zero exit a CNIError carrying the plugin's own code/msg/details (CNI
    spec "Error"), or code None with the raw output when it printed no error object."""
    text = stdout.decode('utf-8', 'replace') if isinstance(stdout, bytes) else stdout
    text = text.strip()
    data = None
    if text:
        try:
            data = json.loads(text)
        except ValueError:
            data = None
    if rc != 0:
        if isinstance(data, dict) and 'msg' in data:
            raise CNIError(data.get('msg') or '', code=data.get('code'),
                           details=data.get('details', ''), plugin=plugin_desc, command=command)
        raise CNIError('exited %d without an error object: %s' % (rc, text[:500]),
                       plugin=plugin_desc, command=command)
    if text and not isinstance(data, dict):
        raise CNIError('printed no JSON result: %s' % text[:500], plugin=plugin_desc,
                       command=command)
    return data


def describe(plugin, name):
    """libcni's pluginDescription: type="bridge" name="cbr0"."""
    return 'type="%s" name="%s"' % (plugin['type'], name)


class Runtime(object):
    """Run a network list for attachments, keep libcni's results cache.

    cni_path: list of directories; cache_dir: libcni's CacheDir (results under
    ``<cache_dir>/results``); run(argv, env, stdin_bytes) -> (rc, stdout, stderr) runs a
    process (default: module_utils.command.run, bytes out)."""

    def __init__(self, conf, conf_bytes, cni_path, cache_dir, run=None):
        self.conf = conf
        self.conf_bytes = conf_bytes
        self.cni_path = cni_path
        self.cache_dir = cache_dir
        self.plan = plan_plugins(conf, cni_path)
        self._run = run or _subprocess_run
        self.log = []   # (command, plugin type) in the order they ran

    @property
    def name(self):
        return self.conf['name']

    @property
    def version(self):
        return self.conf.get('cniVersion', '')

    # -- one plugin --
    def _exec(self, path, command, stdin_conf, attachment, desc):
        env = plugin_env(command, attachment, self.cni_path)
        rc, out, _err = self._run([path], env, go_json(stdin_conf).encode('utf-8'))
        self.log.append((command, os.path.basename(path)))
        return parse_plugin_output(out, rc, desc, command)

    def _flannel(self, command, netconf, attachment, desc, path):
        """flannel's plugin, emulated: ADD saves the delegate config under its dataDir and
        runs the delegate; DEL runs the delegate with the saved config and removes it (a
        missing file is a finished DEL); CHECK does nothing (flannel's cmdCheck)."""
        data_dir = netconf.get('dataDir') or FLANNEL_DATA_DIR
        scratch = os.path.join(data_dir, attachment['container_id'])
        if command == 'CHECK':
            return None
        if command == 'DEL':
            saved = read_text(scratch)
            if saved is None:
                return None
            try:
                delegate = json.loads(saved)
            except ValueError:
                return None      # flannel gives up on an unreadable file the same way
            result = self._exec(path, 'DEL', delegate, attachment, desc)
            os.unlink(scratch)
            return result
        subnet_file = netconf.get('subnetFile') or FLANNEL_SUBNET_FILE
        text = read_text(subnet_file)
        if text is None:
            raise CNIError('open %s: no such file or directory' % subnet_file, code=999,
                           plugin=desc, command=command)
        try:
            delegate = flannel_delegate(netconf, parse_subnet_env(text, subnet_file))
        except CNIError as e:
            raise CNIError(e.msg, code=999, plugin=desc, command=command)
        if not os.path.isdir(data_dir):
            os.makedirs(data_dir, 0o700)
        write_atomic(scratch, go_json(delegate), mode=0o600)
        return self._exec(path, 'ADD', delegate, attachment, desc)

    def _one(self, command, n, prev_result, attachment):
        plugin = self.conf['plugins'][n]
        how = self.plan[n]
        stdin_conf = build_plugin_conf(self.conf, plugin, prev_result,
                                       attachment.get('capability_args'))
        desc = describe(plugin, self.name)
        if how['flannel_emulated']:
            return self._flannel(command, stdin_conf, attachment, desc, how['path'])
        return self._exec(how['path'], command, stdin_conf, attachment, desc)

    # -- the list --
    def add(self, attachment):
        """ADD through every plugin in order, chaining prevResult; cache the last result.
        On a plugin's failure the attachment is deleted again (DEL through the whole list,
        which every plugin must accept for what it never added) and the plugin's error is
        raised. Returns the result."""
        result = None
        for n in range(len(self.conf['plugins'])):
            try:
                result = self._one('ADD', n, result, attachment)
            except CNIError as e:
                try:
                    self.delete(attachment, use_cache=False)
                except CNIError as undo:
                    e.details = ('%s; rollback DEL failed too: %s'
                                 % (e.details, undo)).lstrip('; ')
                raise e
        self.cache_write(attachment, result)
        return result

    def check(self, attachment, cached_result):
        """CHECK through every plugin with the cached result as prevResult (spec >= 0.4.0;
        skipped for older lists and with disableCheck). Raises the plugin's CNIError."""
        if version_tuple(self.version) < (0, 4, 0) or self.conf.get('disableCheck'):
            return False
        for n in range(len(self.conf['plugins'])):
            self._one('CHECK', n, cached_result, attachment)
        return True

    def delete(self, attachment, use_cache=True):
        """DEL through the plugins in reverse order (prevResult = cached result for
        spec >= 0.4.0), then drop the cache file. Succeeds when there is nothing to delete."""
        prev = None
        if use_cache and version_tuple(self.version) >= (0, 4, 0):
            cached = self.cache_read(attachment)
            prev = cached and cached.get('result')
        for n in reversed(range(len(self.conf['plugins']))):
            self._one('DEL', n, prev, attachment)
        path = self.cache_path(attachment)
        if os.path.lexists(path):
            os.unlink(path)

    # -- the results cache --
    def cache_path(self, attachment):
        """``<cache_dir>/results/<network>-<container id>-<ifname>`` (libcni)."""
        return os.path.join(self.cache_dir, 'results', '%s-%s-%s' % (
            self.name, attachment['container_id'], attachment['ifname']))

    def cache_read(self, attachment):
        """The cached entry as a dict (``config`` decoded to text), or None when there is
        none, it is not libcni's cniCacheV1 kind or it belongs to another container."""
        text = read_text(self.cache_path(attachment))
        if text is None:
            return None
        try:
            entry = json.loads(text)
        except ValueError:
            return None
        if not isinstance(entry, dict) or entry.get('kind') != CACHE_KIND \
                or entry.get('containerId') != attachment['container_id']:
            return None
        try:
            entry['config'] = base64.b64decode(entry.get('config') or '').decode('utf-8')
        except (ValueError, TypeError):
            entry['config'] = ''
        return entry

    def cache_write(self, attachment, result):
        path = self.cache_path(attachment)
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o700)
        write_atomic(path, cache_entry(self.name, self.conf_bytes, attachment, result),
                     mode=0o600)


def cache_entry(network, conf_bytes, attachment, result):
    """One results-cache file's text, field for field as libcni's cacheAdd writes it: the
    struct's fields in order (kind, containerId, config as base64 of the conflist's bytes,
    ifName, networkName, netns, cniArgs and capabilityArgs when set, result with sorted
    keys), compact JSON."""
    fields = [('kind', CACHE_KIND), ('containerId', attachment['container_id']),
              ('config', base64.b64encode(conf_bytes).decode('ascii')),
              ('ifName', attachment['ifname']), ('networkName', network)]
    if attachment.get('netns'):
        fields.append(('netns', attachment['netns']))
    args = attachment.get('args') or {}
    if args:
        fields.append(('cniArgs', [[k, str(args[k])] for k in sorted(args)]))
    if attachment.get('capability_args'):
        fields.append(('capabilityArgs', attachment['capability_args']))
    if result:
        fields.append(('result', result))
    return '{%s}' % ','.join('%s:%s' % (json.dumps(k), go_json(v)) for k, v in fields)


def _subprocess_run(argv, env, data):
    return command.run(argv, data=data, env=env, binary=True)


# ---- drift: the cached result against the kernel ------------------------------------------
def result_drift(result, netns, links_in, routes_in):
    """What of a cached result is no longer in the kernel. links_in(ns) -> {ifname: link}
    (``ip -j addr show`` shape) for ns None (the runtime's namespace) or the netns path;
    routes_in(ns) -> ``ip -j route show`` list. Checks each interface (name, and MAC when
    the result gives one), each address on its interface, each route in the sandbox.
    Returns a list of human-readable findings ([] = no drift)."""
    findings = []
    interfaces = result.get('interfaces') or []
    seen = {}
    for iface in interfaces:
        ns = netns if iface.get('sandbox') else None
        if ns not in seen:
            seen[ns] = links_in(ns)
        link = seen[ns].get(iface.get('name'))
        where = 'in %s' % netns if ns else 'on the node'
        if link is None:
            findings.append('interface %s is missing %s' % (iface.get('name'), where))
        elif iface.get('mac') and link.get('address', '').lower() != iface['mac'].lower():
            findings.append('interface %s %s has MAC %s, the result says %s'
                            % (iface['name'], where, link.get('address'), iface['mac']))
    for ip in result.get('ips') or []:
        idx = ip.get('interface')
        if idx is None or not 0 <= idx < len(interfaces):
            continue
        iface = interfaces[idx]
        ns = netns if iface.get('sandbox') else None
        if ns not in seen:
            seen[ns] = links_in(ns)
        link = seen[ns].get(iface.get('name'))
        if link is None:
            continue
        have = set('%s/%s' % (a['local'], a['prefixlen']) for a in link.get('addr_info', []))
        if ip['address'] not in have:
            findings.append('address %s is missing on %s' % (ip['address'], iface['name']))
    if result.get('routes') and netns:
        have = set()
        for r in routes_in(netns):
            dst = r.get('dst')
            if dst == 'default':
                dst = '0.0.0.0/0' if '.' in (r.get('gateway') or '.') else '::/0'
            elif '/' not in dst:
                dst += '/32' if ':' not in dst else '/128'
            have.add((dst, r.get('gateway')))
        for route in result['routes']:
            dst = str(ipaddress.ip_network(route['dst'], strict=False))
            gw = route.get('gw')
            if (dst, gw) not in have and not (gw is None and any(d == dst for d, _gw in have)):
                findings.append('route %s%s is missing in %s'
                                % (dst, ' via %s' % gw if gw else '', netns))
    return findings

# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
name: vagrant
short_description: The machines of a Vagrantfile as lab hosts, from C(vagrant ssh-config)
version_added: 0.1.0
description:
  - Asks Vagrant (through python-vagrant) for the state of every machine the Vagrantfile
    defines (C(vagrant status)) and for the SSH details of the running ones
    (C(vagrant ssh-config)), and makes each running machine a host with C(ansible_host),
    C(ansible_port), C(ansible_user), C(ansible_ssh_private_key_file) and the SSH options
    Vagrant gives.
  - Hosts go into the groups named by O(host_groups), which are children of O(parent_group),
    so the inventory has the same shape as the lab's static one.
  - A machine that is defined but not running is reported with a warning and put in the
    O(not_running_group) group (outside O(parent_group)), never silently dropped.
  - Fails with a clear message when Vagrant is not installed, no Vagrantfile is found, or no
    machine is running.
  - With O(cache) on, results are kept by the cache plugin and reused while the Vagrant
    environment is unchanged; a machine created, destroyed or changed (anything under the
    C(.vagrant/machines) directory, or the Vagrantfile) makes the cached entry stale. A result
    with a machine that is not running is never cached.
  - The configuration file's name must end in C(vagrant.yml) or C(vagrant.yaml).
author: k8slab.podnet developers (@k8slab)
requirements:
  - python-vagrant
  - vagrant
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: The name of this plugin.
    type: str
    required: true
    choices: [k8slab.podnet.vagrant]
  vagrant_cwd:
    description:
      - The directory with the Vagrantfile. A relative path is relative to the directory of
        this configuration file, wherever ansible runs from (from C(VAGRANT_CWD), relative
        to the current directory, as Vagrant reads it). C(~) is expanded.
      - By default the nearest directory, from the configuration file's upward, that holds a
        C(Vagrantfile).
    type: str
    env:
      - name: VAGRANT_CWD
  parent_group:
    description: The group every running machine belongs to (through O(host_groups)).
    type: str
    default: k8s_cluster
  host_groups:
    description:
      - Child groups of O(parent_group) and the machines in each. A running machine listed in
        none of them goes into O(parent_group) directly.
    type: dict
    default:
      control_plane: [controlplane]
      workers: [node-1, node-2]
  not_running_group:
    description: The group of the machines that are defined but not running.
    type: str
    default: vagrant_not_running
  provider_vars:
    description:
      - Host variables for the machines of one Vagrant provider, by provider name (for what
        differs between providers, such as the management/NAT interface).
    type: dict
    default: {}
  all_vars:
    description: Variables set on the C(all) group.
    type: dict
    default:
      lab_backend: vagrant
'''

EXAMPLES = r'''
# inventories/vagrant/vagrant.yml
plugin: k8slab.podnet.vagrant
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/k8slab.podnet/inventory

---
# Another layout (another file): every machine in one group, a variable for all.
plugin: k8slab.podnet.vagrant
vagrant_cwd: ../..
parent_group: lab
host_groups: {}
all_vars:
  lab_backend: vagrant
compose:
  ansible_python_interpreter: "'/usr/bin/python3'"
'''

import contextlib
import os
import shlex
import subprocess
import tempfile

from ansible.errors import AnsibleParserError
from ansible.module_utils.common.text.converters import to_native, to_text
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

try:
    import vagrant as python_vagrant
    HAS_PYTHON_VAGRANT = True
except ImportError:
    HAS_PYTHON_VAGRANT = False

RUNNING = 'running'
# ssh-config keys that become ansible_* variables; every other option is passed to ssh as -o.
_SSH_VARS = {'HostName': 'ansible_host', 'Port': 'ansible_port', 'User': 'ansible_user'}


def parse_ssh_config(text):
    """Split `vagrant ssh-config` output into {host: [(key, value), ...]}, keys in order.

    Vagrant writes `Host NAME` followed by indented `Key value` lines; a value may be quoted
    (IdentityFile "/path with spaces/key") and a key may repeat (IdentityFile)."""
    hosts = {}
    current = None
    for line in to_text(text).splitlines():
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        parts = line.split(None, 1)
        key, value = parts[0], (parts[1].strip() if len(parts) > 1 else '')
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if key.lower() == 'host':
            current = hosts.setdefault(value, [])
        elif current is not None:
            current.append((key, value))
    return hosts


def ssh_host_vars(options):
    """Ansible connection variables for one machine's ssh-config options [(key, value)]."""
    hostvars = {}
    extra = []
    for key, value in options:
        if key in _SSH_VARS:
            hostvars[_SSH_VARS[key]] = int(value) if key == 'Port' else value
        elif key == 'IdentityFile' and 'ansible_ssh_private_key_file' not in hostvars:
            hostvars['ansible_ssh_private_key_file'] = value
        else:
            extra.append(shlex.quote('%s=%s' % (key, value)))
    if extra:
        hostvars['ansible_ssh_common_args'] = ' '.join('-o ' + opt for opt in extra)
    return hostvars


def machines_from_status(statuses):
    """python-vagrant's [Status(name, state, provider)] -> [{name, state, provider}], in order."""
    return [{'name': name, 'state': state or 'unknown', 'provider': provider}
            for name, state, provider in statuses if name]


def vagrant_error(output):
    """The message of an `error-exit` line in machine-readable output, if any."""
    for line in to_text(output or '').splitlines():
        fields = line.split(',', 4)
        if len(fields) == 5 and fields[2] == 'error-exit':
            return fields[4].replace('%!(VAGRANT_COMMA)', ',').replace('\\n', ' ').strip()
    return None


def find_vagrant_cwd(start):
    """The nearest directory from start upward that holds a Vagrantfile, or None."""
    path = os.path.abspath(start)
    while True:
        if os.path.isfile(os.path.join(path, 'Vagrantfile')):
            return path
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent


def environment_fingerprint(cwd):
    """What changes when a machine is created, destroyed or reconfigured: the Vagrantfile and
    every file under the environment's machines directory (name, size, mtime)."""
    dotfile = os.environ.get('VAGRANT_DOTFILE_PATH') or '.vagrant'
    machines = os.path.join(cwd, dotfile, 'machines')
    entries = []
    for path in [os.path.join(cwd, 'Vagrantfile')]:
        if os.path.exists(path):
            st = os.stat(path)
            entries.append(['Vagrantfile', st.st_size, st.st_mtime_ns])
    for root, dirs, files in os.walk(machines):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            entries.append([os.path.relpath(path, machines), st.st_size, st.st_mtime_ns])
    return entries


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):

    NAME = 'k8slab.podnet.vagrant'

    def verify_file(self, path):
        return (super(InventoryModule, self).verify_file(path) and
                path.endswith(('vagrant.yml', 'vagrant.yaml')))

    def parse(self, inventory, loader, path, cache=True):
        super(InventoryModule, self).parse(inventory, loader, path, cache)
        config = self._read_config_data(path)
        cwd = self._vagrant_cwd(path, config)

        cache_key = self.get_cache_key(path)
        use_cache = self.get_option('cache') and cache
        update_cache = self.get_option('cache') and not cache
        data = None
        if use_cache:
            try:
                data = self._cache[cache_key]
            except KeyError:
                update_cache = True
            if data is not None and (data.get('cwd') != cwd or
                                     data.get('fingerprint') != environment_fingerprint(cwd)):
                data = None
                update_cache = True
        if data is None:
            data = self._query(cwd)
        if self.get_option('cache') and update_cache and all(
                m['state'] == RUNNING for m in data['machines']):
            self._cache[cache_key] = data
        self._populate(data)

    def _vagrant_cwd(self, path, config):
        base = os.path.dirname(os.path.abspath(path))
        # type str, not path: Ansible would make a relative path absolute against the
        # current directory before we could join it to the file's directory. Where the value
        # came from is read off the file itself (ansible-core before 2.19 reports no origin
        # for a value set in the file).
        cwd = self.get_option('vagrant_cwd')
        if cwd:
            relative_to = base if (config or {}).get('vagrant_cwd') else os.getcwd()
            cwd = os.path.normpath(os.path.join(relative_to, os.path.expanduser(cwd)))
            if not os.path.isfile(os.path.join(cwd, 'Vagrantfile')):
                raise AnsibleParserError('vagrant_cwd %s has no Vagrantfile' % cwd)
            return cwd
        cwd = find_vagrant_cwd(base)
        if cwd is None:
            raise AnsibleParserError('No Vagrantfile in %s or any directory above it; set '
                                     'vagrant_cwd in %s' % (base, path))
        return cwd

    def _vagrant(self, cwd):
        if not HAS_PYTHON_VAGRANT:
            raise AnsibleParserError('The %s inventory plugin needs the python-vagrant '
                                     'library: pip install python-vagrant' % self.NAME)
        if python_vagrant.get_vagrant_executable() is None:
            raise AnsibleParserError('Vagrant is not installed (no `vagrant` in PATH); the %s '
                                     'inventory needs it to find the lab VMs. Install Vagrant, '
                                     'or use the single-host lab: -i inventories/netns'
                                     % self.NAME)
        # Run in cwd even if the environment names another directory.
        env = dict(os.environ)
        env.pop('VAGRANT_CWD', None)
        return python_vagrant.Vagrant(root=cwd, env=env, quiet_stderr=False,
                                      err_cm=self._stderr_cm)

    @contextlib.contextmanager
    def _stderr_cm(self):
        # Keep each command's stderr (left open) for the error message.
        self._stderr = tempfile.TemporaryFile()
        yield self._stderr

    def _last_stderr(self):
        try:
            self._stderr.seek(0)
            return to_text(self._stderr.read()).strip()
        except (AttributeError, ValueError, OSError):
            return ''

    def _run(self, cwd, what, call):
        try:
            return call()
        except subprocess.CalledProcessError as e:
            msg = vagrant_error(e.output) or self._last_stderr() or to_native(e)
            raise AnsibleParserError('`vagrant %s` failed in %s: %s' % (what, cwd, msg))
        except OSError as e:
            raise AnsibleParserError('could not run vagrant in %s: %s' % (cwd, to_native(e)))

    def _query(self, cwd):
        """Ask Vagrant: every machine's state, and ssh-config of the running ones."""
        vagrant = self._vagrant(cwd)
        machines = machines_from_status(self._run(cwd, 'status', vagrant.status))
        running = [m['name'] for m in machines if m['state'] == RUNNING]
        if not running:
            states = ', '.join('%s: %s' % (m['name'], m['state']) for m in machines)
            raise AnsibleParserError('No Vagrant machine is running in %s (%s). Start the lab '
                                     'with `vagrant up`.' % (cwd, states or 'none defined'))
        if len(running) == len(machines):
            # One vagrant run for all of them (each run costs seconds of Ruby start-up).
            configs = parse_ssh_config(self._run(cwd, 'ssh-config', vagrant.ssh_config))
        else:
            configs = {}
            for name in running:
                configs.update(parse_ssh_config(self._run(
                    cwd, 'ssh-config %s' % name, lambda: vagrant.ssh_config(vm_name=name))))
        for m in machines:
            if m['state'] == RUNNING:
                if m['name'] not in configs:
                    raise AnsibleParserError('`vagrant ssh-config` in %s gave nothing for the '
                                             'running machine %s' % (cwd, m['name']))
                m['ssh'] = configs[m['name']]
        return {'cwd': cwd, 'fingerprint': environment_fingerprint(cwd), 'machines': machines}

    def _populate(self, data):
        inv = self.inventory
        parent = self.inventory.add_group(self.get_option('parent_group'))
        for key, value in (self.get_option('all_vars') or {}).items():
            inv.set_variable('all', key, value)

        group_of = {}
        for group, hosts in (self.get_option('host_groups') or {}).items():
            group = inv.add_group(group)
            inv.add_child(parent, group)
            for host in hosts or []:
                group_of[host] = group
        known = set(m['name'] for m in data['machines'])
        missing = sorted(set(group_of) - known)
        if missing:
            self.display.warning('host_groups names %s, which the Vagrantfile in %s does not '
                                 'define' % (', '.join(missing), data['cwd']))

        stopped = []
        strict = self.get_option('strict')
        provider_vars = self.get_option('provider_vars') or {}
        for m in data['machines']:
            name = m['name']
            if m['state'] == RUNNING:
                inv.add_host(name, group=group_of.get(name, parent))
                for key, value in ssh_host_vars(m['ssh']).items():
                    inv.set_variable(name, key, value)
            else:
                stopped.append('%s (%s)' % (name, m['state']))
                inv.add_host(name, group=inv.add_group(self.get_option('not_running_group')))
            inv.set_variable(name, 'vagrant_state', m['state'])
            inv.set_variable(name, 'vagrant_provider', m['provider'])
            for key, value in (provider_vars.get(m['provider']) or {}).items():
                inv.set_variable(name, key, value)
            hostvars = inv.get_host(name).get_vars()
            self._set_composite_vars(self.get_option('compose'), hostvars, name, strict=strict)
            self._add_host_to_composed_groups(self.get_option('groups'), hostvars, name,
                                              strict=strict)
            self._add_host_to_keyed_groups(self.get_option('keyed_groups'), hostvars, name,
                                           strict=strict)
        if stopped:
            self.display.warning('Vagrant machines not running, left out of %s (group %s): %s. '
                                 'Start them with `vagrant up`.'
                                 % (parent, self.get_option('not_running_group'),
                                    ', '.join(stopped)))

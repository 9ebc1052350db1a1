"""scripts/k8slab's command table (plugins/plugin_utils/k8slab_cli): the parser is made from
SUBCOMMANDS, so a subcommand added there alone is parsed, helped and run. No root needed."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, '.collections'))

from ansible_collections.k8slab.podnet.plugins.plugin_utils.k8slab_cli import main  # noqa: E402
from ansible_collections.k8slab.podnet.plugins.plugin_utils.k8slab_cli.lab import (  # noqa: E402
    Lab, Subcommand)


def test_the_table_holds_todays_subcommands():
    first = ['up', 'down', 'verify', 'status', 'pods', 'logs', 'exec']
    assert [c.name for c in main.SUBCOMMANDS][:7] == first
    assert {'graph', 'capture', 'drill', 'heal'} <= set(c.name for c in main.SUBCOMMANDS)


def test_a_down_labs_hint_builds_that_lab():
    assert Lab('k8slab').up_command == 'k8slab up'
    assert Lab('kx1').up_command == 'k8slab --lab kx1 up'


def test_a_subcommand_added_to_the_table_is_parsed_and_run(monkeypatch):
    seen = []

    def arguments(parser):
        parser.add_argument('node')
        parser.add_argument('--since')

    extra = Subcommand('hclogs', 'a test subcommand', ['k8slab hclogs NODE   test'],
                       lambda args: seen.append(args) or 3, arguments)
    monkeypatch.setattr(main, 'SUBCOMMANDS', main.SUBCOMMANDS + (extra,))
    assert main.main(['hclogs', 'node-1', '--since', '5m', '--lab', 'hc', '--', 'x']) == 3
    args = seen[0]
    assert (args.node, args.since, args.lab, args.command) == ('node-1', '5m', 'hc', ['x'])
    assert 'k8slab hclogs NODE' in main.parser().format_help()
    # unknown options are an error unless the subcommand forwards them
    with pytest.raises(SystemExit):
        main.main(['hclogs', 'node-1', '--bogus'])


def test_forwarding_subcommands_get_unknown_options(monkeypatch):
    seen = []
    fwd = Subcommand('hcfwd', 'forwards', [], seen.append, forwards=True)
    monkeypatch.setattr(main, 'SUBCOMMANDS', (fwd,))
    main.main(['hcfwd', '-v', '--', '--tags', 'lab'])
    assert seen[0].extra == ['-v', '--tags', 'lab']


def test_verify_runs_the_verify_play_on_the_named_lab(monkeypatch):
    """`k8slab verify --tags path` is ansible-playbook verify.yml with the lab's name and the
    options passed on; the process is replaced (execve), so it is caught here."""
    from ansible_collections.k8slab.podnet.plugins.plugin_utils.k8slab_cli import playbook
    seen = []
    monkeypatch.setattr(playbook.os, 'execve', lambda path, argv, env: seen.append((argv, env)))
    monkeypatch.setattr(playbook.os.path, 'exists', lambda path: True)
    main.main(['--lab', 'hcv', 'verify', '--tags', 'path'])
    argv, env = seen[0]
    assert argv[-5:] == [os.path.join(playbook.ROOT, 'playbooks', 'verify.yml'),
                         '-e', '{"lab_name": "hcv"}', '--tags', 'path']
    assert env['ANSIBLE_STDOUT_CALLBACK'] == 'k8slab.podnet.progress'


def test_the_launcher_runs_from_the_repository():
    out = subprocess.run([os.path.join(ROOT, 'scripts', 'k8slab'), '--help'],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    for line in ('k8slab up ', 'k8slab down ', 'k8slab status [--json]', 'k8slab exec NODE/POD',
                 'k8slab graph [-o FILE.svg]', 'k8slab capture NODE[/POD] IFACE',
                 'k8slab pods [NODE] [-o wide|json]', 'k8slab logs NODE/POD [-c CONTAINER]',
                 'k8slab exec NODE/POD -c CONTAINER'):
        assert line in out.stdout

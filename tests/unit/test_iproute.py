"""Pure logic of plugins/module_utils/iproute.py and the planners of the netns, bridge and
veth modules: validation, address and route diffing, JSON stream splitting, and the exact
command lists planned from a given state (no root, nothing is run)."""

import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, '.collections'))

from ansible_collections.k8slab.podnet.plugins.module_utils import iproute  # noqa: E402
from ansible_collections.k8slab.podnet.plugins.module_utils.iproute import (  # noqa: E402
    IprouteError, plan_addresses, route_dst, split_json_stream, validate_ifname,
    validate_address, validate_interface_cidr, validate_netns_name)
from ansible_collections.k8slab.podnet.plugins.modules import bridge, netns, veth  # noqa: E402


@pytest.mark.parametrize('name', ['eth0', 'veth1a2b3c4d', 'x' * 15, 'br-host.only', 'é' * 7])
def test_good_ifnames(name):
    assert validate_ifname(name) == name


@pytest.mark.parametrize('name', ['x' * 16, 'é' * 8, 'a/b', 'a:b', 'a b', 'a\tb', 'a\nb',
                                  '.', '..', ''])
def test_bad_ifnames_named_in_message(name):
    with pytest.raises(IprouteError) as e:
        validate_ifname(name)
    assert repr(name) in str(e.value) or name == ''


@pytest.mark.parametrize('name', ['httpd', 'ka1a2b3c-p1', 'node-1', 'a.b_c', '.hidden'])
def test_good_netns_names(name):
    assert validate_netns_name(name) == name


@pytest.mark.parametrize('name', ['a/b', '/run', '..', '../x', 'a..b', '.', 'a b', '', 'a:b'])
def test_bad_netns_names(name):
    with pytest.raises(IprouteError) as e:
        validate_netns_name(name)
    assert repr(name) in str(e.value) or name == ''


def test_cidrs():
    assert str(validate_interface_cidr('10.244.1.2/24')) == '10.244.1.2/24'
    assert str(validate_interface_cidr('fd00::1/64')) == 'fd00::1/64'
    for bad in ('10.244.1.2', '10.244.1.256/24', '10.244.1.2/33', 'nonsense/8'):
        with pytest.raises(IprouteError, match=repr(bad).replace('.', r'\.')):
            validate_interface_cidr(bad)


# `$` matches before a final newline: every name and address check must refuse "x\n"
# (a YAML `|` block), and those of module_utils/hostlocal and the lab's name rules too.
@pytest.mark.parametrize('check,value', [
    (validate_netns_name, 'lab-nl\n'), (validate_ifname, 'eth0\n'),
    (validate_interface_cidr, '10.0.0.1/24\n'), (validate_address, '10.0.0.1\n'),
])
def test_trailing_newline_refused(check, value):
    with pytest.raises(IprouteError) as e:
        check(value)
    assert repr(value) in str(e.value)


def test_trailing_newline_refused_elsewhere():
    from ansible_collections.k8slab.podnet.plugins.module_utils import hostlocal
    from ansible_collections.k8slab.podnet.plugins.filter import topology
    from ansible_collections.k8slab.podnet.plugins.module_utils import netns_lab
    for check in (hostlocal.validate_container_id, hostlocal.validate_network_name,
                  hostlocal.validate_ifname):
        with pytest.raises(hostlocal.HostLocalError):
            check('cbr0\n')
    assert topology._LABEL_RE.match('node-1\n') is None
    assert netns_lab.lab_name_error('lab\n') is not None
    assert netns_lab.node_name_error('node-1\n') is not None
    assert iproute._quote('a\n') == "'a\n'"


# ip -batch cuts a line at '#' and reads a leading quote as quoting: words that cannot be
# written for it are not batched (the command runs on its own), others are quoted right.
@pytest.mark.parametrize('arg,word', [
    ('eth0', 'eth0'), ('a#b', None), ("'q", '"\'q"'), ('"q', "'\"q'"), ("a'b", "a'b"),
    ('\'"x', None), ('a\\b', None), ('', None),
])
def test_batch_word(arg, word):
    assert iproute.batch_word(arg) == word


def test_plan_addresses():
    assert plan_addresses(['10.0.0.1/24'], ['10.0.0.1/24']) == ([], [], [])
    assert plan_addresses([], ['10.0.0.1/24']) == ([], ['10.0.0.1/24'], [])
    assert plan_addresses(['10.0.0.9/24', 'fd00::1/64'], ['fd00::1/64']) == (
        ['10.0.0.9/24'], [], [])
    # deleting 10.0.0.1 (primary) would take 10.0.0.2 (secondary) with it: put it back
    assert plan_addresses(['10.0.0.1/24', '10.0.0.2/24', '10.1.0.1/24'],
                          ['10.0.0.2/24', '10.1.0.1/24']) == (
        ['10.0.0.1/24'], [], ['10.0.0.2/24'])
    # same address, other prefix: a different address
    assert plan_addresses(['10.0.0.1/24'], ['10.0.0.1/16']) == (
        ['10.0.0.1/24'], ['10.0.0.1/16'], [])


def test_split_json_stream():
    assert split_json_stream('[{"a":1}][]\n[2]\n', 3) == [[{'a': 1}], [], [2]]
    assert split_json_stream(b'[]', 1) == [[]]
    with pytest.raises(IprouteError, match='expected 2'):
        split_json_stream('[]', 2)
    with pytest.raises(IprouteError, match='not JSON'):
        split_json_stream('[] Error: nope', 2)


def test_route_dst_and_change_text():
    assert route_dst('default') == '0.0.0.0/0'
    assert route_dst('default', 6) == '::/0'
    assert route_dst('10.0.0.5') == '10.0.0.5/32'
    assert route_dst('10.244.0.0/16') == '10.244.0.0/16'
    change = iproute.Change(['addr', 'add', '10.0.0.1/24', 'dev', 'a b'], netns='pod')
    assert change.text() == "ip -n pod addr add 10.0.0.1/24 dev 'a b'"


def test_link_helpers_on_real_ip_output():
    link = json.loads(
        '{"ifindex":5,"link_index":2,"ifname":"v1","flags":["BROADCAST","MULTICAST","UP"],'
        '"mtu":1500,"link_netnsid":0,"master":"cni0","linkinfo":{"info_kind":"veth",'
        '"info_slave_kind":"bridge","info_slave_data":{"hairpin":true}},"addr_info":['
        '{"family":"inet","local":"10.244.1.2","prefixlen":24,"scope":"global"},'
        '{"family":"inet6","local":"fe80::1","prefixlen":64,"scope":"link"}]}')
    assert iproute.is_up(link) and iproute.link_kind(link) == 'veth'
    assert iproute.link_addresses(link) == ['10.244.1.2/24']
    end = veth.end_state(link)
    assert (end['master'], end['hairpin'], end['addresses']) == ('cni0', True, ['10.244.1.2/24'])


# ---- planners, from a given state ----------------------------------------------------

class FakeModule(object):
    """Just enough of AnsibleModule for planning; running anything is an error."""
    check_mode = True

    def get_bin_path(self, name, required=False):
        return '/usr/sbin/' + name

    def run_command(self, *args, **kwargs):
        raise AssertionError('the planner ran a command: %r' % (args,))


def ipr():
    return iproute.Iproute(FakeModule())


def test_netns_plan_exact_names():
    i = ipr()
    names = netns.validate(['mario', 'mario', 'luigi'])
    before, after, created, removed = netns.plan(i, names, 'present', {'mario': 'absent'})
    assert created == ['mario'] and removed == []
    assert i.commands() == ['ip netns add mario']
    assert before == {'mario': 'absent', 'luigi': 'present'}


def test_netns_plan_stale_entry():
    """A /run/netns entry with no namespace behind it is deleted, then made anew (present),
    or just deleted (absent)."""
    i = ipr()
    before, after, created, removed = netns.plan(i, ['x'], 'present', {'x': 'not a namespace'})
    assert before == {'x': 'stale'} and after == {'x': 'present'} and created == ['x']
    assert i.commands() == ['ip netns del x', 'ip netns add x']
    i = ipr()
    before, after, created, removed = netns.plan(i, ['x'], 'absent', {'x': 'not a namespace'})
    assert removed == ['x'] and i.commands() == ['ip netns del x']


def bridge_link(name, stp=0, fd=1500, up=True, mtu=1500, addrs=()):
    return {'ifname': name, 'mtu': mtu, 'flags': ['UP'] if up else [],
            'linkinfo': {'info_kind': 'bridge',
                         'info_data': {'stp_state': stp, 'forward_delay': fd}},
            'addr_info': [{'family': 'inet', 'local': a.split('/')[0],
                           'prefixlen': int(a.split('/')[1]), 'scope': 'global'}
                          for a in addrs]}


def bridge_spec(**kw):
    spec = dict((k, None) for k in bridge.FIELDS)
    spec.update(state='present', up=True)
    spec.update(kw)
    return bridge.validate([spec])[0]


def test_bridge_stp_order():
    # STP off + delay 0: switch STP off first (the kernel refuses a 0 s delay while it runs)
    i = ipr()
    bridge.plan_bridge(i, bridge_spec(name='br0', stp=False, forward_delay=0),
                       bridge_link('br0', stp=1, fd=400))
    assert i.commands() == ['ip link set dev br0 type bridge stp_state 0',
                            'ip link set dev br0 type bridge forward_delay 0']
    # STP on: the delay first
    i = ipr()
    bridge.plan_bridge(i, bridge_spec(name='br0', stp=True, forward_delay=4),
                       bridge_link('br0', stp=0, fd=0))
    assert i.commands() == ['ip link set dev br0 type bridge forward_delay 400',
                            'ip link set dev br0 type bridge stp_state 1']
    with pytest.raises(IprouteError, match='forward_delay 1'):
        bridge_spec(name='br0', stp=True, forward_delay=1)


def test_bridge_down_before_addresses():
    i = ipr()
    before, after = bridge.plan_bridge(
        i, bridge_spec(name='br0', up=False, addresses=['fd00::1/64']),
        bridge_link('br0', addrs=['10.0.0.1/24']))
    assert i.commands() == ['ip link set dev br0 down', 'ip addr del 10.0.0.1/24 dev br0',
                            'ip addr add fd00::1/64 dev br0']
    assert (before['up'], after['up'], after['addresses']) == (True, False, ['fd00::1/64'])


def test_bridge_refuses_other_kind():
    link = bridge_link('br0')
    link['linkinfo'] = {'info_kind': 'veth'}
    with pytest.raises(IprouteError, match="'br0' exists but is a veth link"):
        bridge.plan_bridge(ipr(), bridge_spec(name='br0'), link)


def veth_specs(pairs, **top):
    params = dict((k, None) for k in veth.FIELDS)
    params.update(up=True, state='present', pairs=pairs)
    params.update(top)
    return veth.validate(veth.normalize(params))


def plan_veth(specs, view):
    i = ipr()
    planner = veth.Planner(i, view)
    for spec in specs:
        getattr(planner, spec['state'])(spec)
    return planner.ordered()


def empty_view(*namespaces, **links):
    view = veth.View()
    for ns in namespaces:
        view.routes[ns] = []
        view.links[(ns, 'lo')] = {'kind': None, 'mtu': 65536, 'up': False, 'master': None,
                                  'hairpin': False, 'addresses': [], 'peer': None}
    for key, end in links.items():
        ns, name = key.split('__')
        view.links[(ns, name)] = end
    return view


def test_veth_mirrored_pair_one_creation():
    specs = veth_specs([
        {'name': 'vc', 'netns': 'client', 'peer': 'vs', 'peer_netns': 'server',
         'addresses': ['10.0.0.12/24']},
        {'name': 'vs', 'netns': 'server', 'peer': 'vc', 'peer_netns': 'client',
         'addresses': ['10.0.0.11/24']}])
    changes = plan_veth(specs, empty_view('client', 'server'))
    assert [c.text() for c in changes] == [
        'ip -n client link add name vc type veth peer name vs netns server',
        'ip -n client link set dev vc up',
        'ip -n client link set dev lo up',
        'ip -n client addr add 10.0.0.11/24 dev vc',
        'ip -n server link set dev lo up',
        'ip -n server addr add 10.0.0.12/24 dev vs',
        'ip -n server link set dev vs up',
    ]
    # only the creation and lo need undoing: everything else is on the new pair; a fresh lo
    # (no address yet) also loses the 127.0.0.1/8 and ::1 the kernel gave it on its first up
    lo_undo = [['link', 'set', 'dev', 'lo', 'down'], ['addr', 'flush', 'dev', 'lo']]
    assert [c.undo for c in changes if c.undo] == [[['link', 'del', 'dev', 'vc']],
                                                   lo_undo, lo_undo]


def test_veth_conflicts_and_listing_errors():
    with pytest.raises(IprouteError, match="'eth0' in netns 'p1' is listed in two"):
        veth_specs([{'name': 'v1', 'peer': 'eth0', 'peer_netns': 'p1'},
                    {'name': 'v2', 'peer': 'eth0', 'peer_netns': 'p1'}])
    with pytest.raises(IprouteError, match='hairpin needs master'):
        veth_specs([{'name': 'v1', 'peer': 'eth0', 'peer_netns': 'p1'}], hairpin=True)
    with pytest.raises(IprouteError, match="'10.244.0.1/16'"):
        veth_specs([{'name': 'v1', 'peer': 'eth0', 'peer_netns': 'p1',
                     'routes': [{'dst': '10.244.0.1/16', 'via': '10.244.1.1'}]}])
    specs = veth_specs([
        {'name': 'vc', 'netns': 'c', 'peer': 'vs', 'peer_netns': 's', 'mtu': 1400},
        {'name': 'vs', 'netns': 's', 'peer': 'vc', 'peer_netns': 'c', 'mtu': 1500}])
    with pytest.raises(IprouteError, match='mtu of .* both 1400 and 1500'):
        plan_veth(specs, empty_view('c', 's'))


def test_veth_drift_plan_and_undo():
    end = dict(kind='veth', mtu=1400, up=False, master='other', hairpin=False)
    view = empty_view('node', 'pod', **{
        'node__cni0': dict(end, kind='bridge', master=None, addresses=[], peer=None),
        'node__v1': dict(end, addresses=[], peer=('pod', 'eth0')),
        'pod__eth0': dict(end, master=None, up=True, addresses=['10.244.1.2/24'],
                          peer=('node', 'v1'))})
    view.links[('pod', 'lo')]['up'] = True
    view.routes['pod'] = [{'dst': '0.0.0.0/0', 'via': '10.244.1.9', 'dev': 'eth0',
                           'metric': None, 'type': 'unicast', 'kernel': False, 'stale': False}]
    specs = veth_specs([{'name': 'v1', 'peer': 'eth0', 'peer_netns': 'pod',
                         'addresses': ['10.244.1.2/24'],
                         'routes': [{'dst': 'default', 'via': '10.244.1.1'},
                                    {'dst': '10.244.0.0/16', 'via': '10.244.1.1'}]}],
                       netns='node', master='cni0', hairpin=True, mtu=1500)
    changes = plan_veth(specs, view)
    assert [(c.text(), c.undo and c.undo[0]) for c in changes] == [
        ('ip -n node link set dev v1 mtu 1500', ['link', 'set', 'dev', 'v1', 'mtu', '1400']),
        ('ip -n node link set dev v1 master cni0', ['link', 'set', 'dev', 'v1', 'master', 'other']),
        ('ip -n node link set dev v1 type bridge_slave hairpin on', None),
        ('ip -n node link set dev v1 up', ['link', 'set', 'dev', 'v1', 'down']),
        ('ip -n pod link set dev eth0 mtu 1500', ['link', 'set', 'dev', 'eth0', 'mtu', '1400']),
        ('ip -n pod route replace default via 10.244.1.1 dev eth0',
         ['route', 'replace', 'default', 'via', '10.244.1.9', 'dev', 'eth0']),
        ('ip -n pod route add 10.244.0.0/16 via 10.244.1.1 dev eth0',
         ['route', 'del', '10.244.0.0/16', 'via', '10.244.1.1', 'dev', 'eth0']),
    ]


def test_veth_refuses_what_is_in_the_way():
    end = dict(kind='veth', mtu=1500, up=True, master=None, hairpin=False, addresses=[])
    view = empty_view('node', 'pod', **{
        'node__v1': dict(end, peer=('elsewhere', 'eth0')),
        'node__br': dict(end, kind='bridge', peer=None),
        'pod__eth0': dict(end, peer=('node', 'x'))})
    pair = {'name': 'v1', 'peer': 'eth0', 'peer_netns': 'pod'}
    with pytest.raises(IprouteError, match="paired with 'eth0' in netns 'elsewhere'"):
        plan_veth(veth_specs([pair], netns='node'), view)
    with pytest.raises(IprouteError, match="peer name 'eth0' already exists in netns 'pod'"):
        plan_veth(veth_specs([dict(pair, name='v2')], netns='node'), view)
    with pytest.raises(IprouteError, match="master 'v1' of v2 in netns 'node' is a veth"):
        plan_veth(veth_specs([dict(pair, name='v2', peer='eth1')], netns='node', master='v1'),
                  view)
    with pytest.raises(IprouteError, match="'br' in netns 'node' already exists as a bridge"):
        plan_veth(veth_specs([dict(pair, name='br', peer='eth1')], netns='node'), view)


def test_veth_peer_resolution():
    """Pairs as ``ip -j -d addr show`` describes them: the peer's name in the same namespace,
    else link_netnsid (numbered from the reading namespace) and link_index."""
    ids = {None: {0: 'pod', 1: 'other'}, 'pod': {}}
    host = {'ifindex': 7, 'ifname': 'v1', 'link_index': 2, 'link_netnsid': 0}
    raw = {None: {7: host}, 'pod': {2: {'ifindex': 2, 'ifname': 'eth0', 'link_index': 7,
                                        'link_netnsid': 0}}}
    assert veth.View._peer(None, host, ids, raw) == ('pod', 'eth0')
    # an eth0 with the right index whose own peer is someone else: not our pair
    raw['pod'][2]['link_index'] = 9
    assert veth.View._peer(None, host, ids, raw) == ('pod', None)
    # the other end in a namespace that was not read, or has no name
    assert veth.View._peer(None, dict(host, link_netnsid=1), ids, raw) == ('other', None)
    assert veth.View._peer(None, dict(host, link_netnsid=5), ids, raw) == (None, None)
    assert veth.View._peer('pod', {'ifindex': 3, 'ifname': 'va', 'link': 'vb'}, ids, raw) == (
        'pod', 'vb')


# ---- argument shapes (module_utils/argspec.py), checked before ansible-core converts ------

def test_shape_errors_name_the_option_and_value():
    from ansible_collections.k8slab.podnet.plugins.module_utils.argspec import shape_errors
    route = dict(dst=dict(type='str', required=True), via=dict(type='str'))
    spec = dict(name=dict(type='str', aliases=['n']), mtu=dict(type='int'),
                addresses=dict(type='list', elements='str'),
                pairs=dict(type='list', elements='dict', options=dict(
                    name=dict(type='str'), routes=dict(type='list', elements='dict',
                                                       options=route))))
    assert shape_errors(spec, {'name': 'br0', 'mtu': '1400', 'addresses': ['a'],
                               'pairs': [{'name': 'v', 'routes': [{'dst': 'default'}]},
                                         'name=v2', {'routes': {'dst': 'default'}}]}) == []
    assert shape_errors(spec, {'n': ['br1']}) == ["n must be a single value, not a list: ['br1']"]
    assert shape_errors(spec, {'mtu': {'a': 1}}) == ["mtu must be a single value, not a dict: {'a': 1}"]
    assert shape_errors(spec, {'addresses': [['x']]}) == [
        "addresses[0] must be a single value, not a list: ['x']"]
    assert shape_errors(spec, {'pairs': '10.0.0.0/24'}) == [
        "pairs must be a list of dicts, got '10.0.0.0/24'"]
    assert shape_errors(spec, {'pairs': [{'name': 'v', 'routes': ['default', {'dst': ['x']}]}]}) == [
        "pairs[0].routes[0] must be a dict, got 'default'",
        "pairs[0].routes[1].dst must be a single value, not a list: ['x']"]
    assert shape_errors(spec, {'unknown': [1], 'name': None}) == []  # left to AnsibleModule

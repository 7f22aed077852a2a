"""trovestack flavors, trovestack test-config and trovestack test-init
against the local cloud.

Everything runs through the console script, as devstack would call it;
the SDK and troveclient are only used to arrange and inspect state.
"""

import json
import subprocess
import sys
import warnings

import pytest

from tests.helpers import run
from tests.unit.testenv import plugin_opts
from trovestack.common import connection
from trovestack.testenv import flavors
from trovestack.trove import instance_prereqs

DATASTORE = 'testenv-mysql'
VERSION = '8.4'


def _trovestack(local_cloud, *args, check=True):
    return run('trovestack', *args, '--os-cloud', local_cloud.admin_cloud,
               env=local_cloud.env(), check=check)


def _rows(local_cloud, *args):
    result = _trovestack(local_cloud, *args, '-f', 'json')
    return json.loads(result.stdout)


def _one_line_error(result, *fragments):
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def _flavor_state(conn):
    return sorted((f.id, f.name, f.ram, f.disk, f.vcpus, f.ephemeral,
                   tuple(sorted((f.extra_specs or {}).items())))
                  for f in conn.compute.flavors(details=True,
                                                get_extra_specs=True,
                                                is_public=None))


def _in_order(needles, haystack):
    """True when every needle appears in haystack, in the same order."""
    remaining = iter(haystack)
    return all(needle in remaining for needle in needles)


@pytest.fixture(scope='module')
def test_flavors(local_cloud):
    """The flavors exist (whatever state an earlier run left)."""
    _trovestack(local_cloud, 'flavors', '--replace')


@pytest.fixture(scope='module')
def datastore(local_cloud, admin, tmp_path_factory):
    """A datastore version registered through the Trove mgmt API."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        trove = connection.trove_client(admin)
    registered = {ds.name: ds for ds in trove.datastores.list()}
    if DATASTORE not in registered:
        raw = tmp_path_factory.mktemp('image') / 'tiny.raw'
        raw.write_bytes(b'\0' * 4096)
        image = admin.image.create_image(
            name='testenv-tiny', filename=str(raw), disk_format='raw',
            container_format='bare', wait=True)
        trove.mgmt_ds_versions.create(VERSION, DATASTORE, 'mysql', image.id,
                                      active='true', default='true')
    return DATASTORE


def test_flavors_converge_conflict_and_replace(local_cloud, admin):
    first = _rows(local_cloud, 'flavors')
    specs = flavors.flavor_specs()
    assert [row['ID'] for row in first] == [s.id for s in specs]
    assert {row['Action'] for row in first} <= {'created', 'unchanged'}
    assert {row['Action'] for row in _rows(local_cloud, 'flavors')} == \
        {'unchanged'}

    # Someone else's ds2G: same id and name, other size, private.
    admin.compute.delete_flavor('d3')
    admin.compute.create_flavor(name='ds2G', id='d3', ram=999, disk=10,
                                vcpus=2, is_public=False)
    before = _flavor_state(admin)
    _one_line_error(_trovestack(local_cloud, 'flavors', check=False),
                    'ds2G (id d3)', 'ram 999!=2048', '--replace')
    dry = _rows(local_cloud, 'flavors', '--replace', '--dry-run')
    assert [r['ID'] for r in dry if r['Action'] != 'unchanged'] == ['d3']
    assert dry[2]['Action'] == 'would-replace'
    assert _flavor_state(admin) == before

    replaced = _rows(local_cloud, 'flavors', '--replace')
    assert {r['ID']: r['Action'] for r in replaced}['d3'] == 'replaced'
    flavor = admin.compute.get_flavor('d3', get_extra_specs=True)
    assert (flavor.ram, flavor.is_public, flavor.extra_specs) == \
        (2048, True, {'hw_rng:allowed': 'True'})
    assert {row['Action'] for row in _rows(local_cloud, 'flavors')} == \
        {'unchanged'}


def test_tempest_conf_merge(local_cloud, test_flavors, datastore, tmp_path):
    path = tmp_path / 'tempest.conf'
    original = ('# Written by someone else\n'
                '[DEFAULT]\nlog_file = tempest.log\n\n'
                '[database]\n# hand-tuned\nflavor_id = 1\n'
                'build_interval = 5\n\n'
                '[identity]\nuri_v3 = http://example.test/v3 ; note\n')
    path.write_text(original)
    trove_conf = tmp_path / 'trove-test.conf'
    rows = _rows(local_cloud, 'test-config', '--tempest-conf', path,
                 '--datastore', datastore, '--trove-test-conf', trove_conf,
                 '--test-cloud', local_cloud.demo_cloud)
    actions = {row['Name']: row['Action'] for row in rows}
    assert actions['[database] flavor_id'] == 'updated'
    assert actions['[database] default_datastore_versions'] == 'created'
    assert actions[str(trove_conf)] == 'created'

    text = path.read_text()
    kept = [line for line in original.splitlines() if line != 'flavor_id = 1']
    assert _in_order(kept, text.splitlines())
    written = [tuple(row['Name'].strip('[').split('] '))
               for row in rows if row['Resource'] == 'tempest.conf']
    parsed = plugin_opts.check(path, written)
    assert parsed['database', 'enabled_datastores'] == [datastore]
    assert parsed['database', 'default_datastore_versions'] == {
        datastore: VERSION}
    assert parsed['database', 'flavor_id'] == 'd3'
    assert parsed['service_available', 'trove'] is True

    again = _rows(local_cloud, 'test-config', '--tempest-conf', path,
                  '--datastore', datastore, '--trove-test-conf', trove_conf,
                  '--test-cloud', local_cloud.demo_cloud)
    assert {row['Action'] for row in again} == {'unchanged'}
    assert path.read_text() == text
    assert oct(trove_conf.stat().st_mode & 0o777) == '0o600'


def test_trove_test_conf_is_read_by_trove(local_cloud, test_flavors,
                                          datastore, tmp_path):
    path = tmp_path / 'test.conf'
    _trovestack(local_cloud, 'test-config', '--tempest-conf',
                tmp_path / 'tempest.conf', '--datastore', datastore,
                '--trove-test-conf', path,
                '--test-cloud', local_cloud.demo_cloud)
    reader = ('import sys\nfrom trove.tests.config import CONFIG\n'
              'CONFIG.load_from_file(sys.argv[1])\n'
              'print(CONFIG.dbaas_datastore, CONFIG.dbaas_datastore_version,'
              ' CONFIG.instance_flavor_name,'
              ' [u["auth_user"] for u in CONFIG.values["users"]])\n')
    out = subprocess.run([sys.executable, '-c', reader, str(path)],
                         capture_output=True, text=True, check=True,
                         env=local_cloud.env())
    assert out.stdout.split(' ', 3)[:3] == [datastore, VERSION,
                                            'test.small-7']
    assert "['admin', 'demo']" in out.stdout


def test_bad_inputs_are_one_line_errors(local_cloud, test_flavors, datastore,
                                        tmp_path):
    missing = tmp_path / 'no-such-dir' / 'tempest.conf'
    _one_line_error(
        _trovestack(local_cloud, 'test-config', '--tempest-conf', missing,
                    check=False),
        'directory', 'does not exist')
    _one_line_error(
        _trovestack(local_cloud, 'test-config', '--tempest-conf',
                    tmp_path / 'tempest.conf', '--datastore', 'nosuchdb',
                    check=False),
        "datastore 'nosuchdb' is not registered in Trove")
    _one_line_error(
        _trovestack(local_cloud, 'test-config', '--tempest-conf',
                    tmp_path / 'tempest.conf', '--datastore',
                    f'{datastore}:0.0', check=False),
        f"datastore '{datastore}' has no version '0.0'")
    assert not (tmp_path / 'tempest.conf').exists()


def _keygen(path):
    subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f',
                    str(path)], check=True)
    return path.with_suffix('.pub')


def test_init_converges(local_cloud, admin, datastore, tmp_path):
    key = _keygen(tmp_path / 'id_one')
    name = 'testenv-key'
    common = ('test-init', '--public-key', key, '--keypair-name', name,
              '--tempest-conf', tmp_path / 'tempest.conf',
              '--datastore', datastore)
    admin.compute.delete_keypair(name, ignore_missing=True)

    dry = _rows(local_cloud, *common, '--dry-run')
    assert {'flavor', 'quota', 'keypair', 'security-group',
            'tempest.conf'} <= {row['Resource'] for row in dry}
    assert admin.compute.find_keypair(name) is None
    assert not (tmp_path / 'tempest.conf').exists()

    first = _rows(local_cloud, *common)
    by_resource = {}
    for row in first:
        by_resource.setdefault(row['Resource'], []).append(row)
    assert by_resource['keypair'][0]['Action'] == 'created'
    assert by_resource['security-group'][0]['Action'] == 'skipped'
    assert 'no network endpoint' in by_resource['security-group'][0]['Detail']
    skipped_quotas = {r['Name'] for r in by_resource['quota']
                      if r['Action'] == 'skipped'}
    assert {'network', 'block-storage'} <= skipped_quotas
    assert 'database' not in skipped_quotas

    second = _rows(local_cloud, *common)
    assert {row['Action'] for row in second} <= {'unchanged', 'skipped'}

    other = _keygen(tmp_path / 'id_two')
    clash = list(common)
    clash[clash.index(key)] = other
    _one_line_error(_trovestack(local_cloud, *clash, check=False),
                    f"keypair '{name}' exists with a different public key")
    replaced = _rows(local_cloud, *clash, '--replace')
    assert [r['Action'] for r in replaced if r['Resource'] == 'keypair'] == \
        ['replaced']
    admin.compute.delete_keypair(name, ignore_missing=True)


@pytest.mark.compute
def test_init_management_group_where_trove_looks(compute_cloud):
    """With Neutron, test-init's management group is the service project's
    (Trove makes guests' management ports with its service credentials,
    and Neutron takes only the port's project's groups), with the rules
    of instance_prereqs: the very group the devstack plugin converges."""
    conn = compute_cloud.connection(compute_cloud.admin_cloud)
    service = conn.identity.find_project('service')
    name = 'testenv-mgmt'
    common = ('test-init', '--flavor-set', 'tempest',
              '--security-group', name)
    try:
        first = _rows(compute_cloud, *common)
        assert [r['Action'] for r in first
                if r['Resource'] == 'security-group'] == ['created']
        group = conn.network.find_security_group(name, project_id=service.id)
        assert group is not None
        assert conn.network.find_security_group(
            name, project_id=conn.current_project_id) is None
        rules = {(r.protocol, r.port_range_min)
                 for r in conn.network.security_group_rules(
                     security_group_id=group.id)
                 if r.direction == 'ingress'}
        assert {(r.protocol, r.port)
                for r in instance_prereqs.DEFAULT_RULES} <= rules

        second = _rows(compute_cloud, *common)
        assert {r['Action'] for r in second if r['Resource'].startswith(
            'security-group')} == {'unchanged'}
        rows, same = instance_prereqs.ensure_security_group(
            conn, instance_prereqs.Wanted(security_group=name), service.id)
        assert same.id == group.id
        assert {r.action for r in rows} == {'unchanged'}
    finally:
        found = conn.network.find_security_group(name, project_id=service.id)
        if found is not None:
            conn.network.delete_security_group(found)

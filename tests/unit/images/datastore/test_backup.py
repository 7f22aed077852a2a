"""Backup images: catalog, inputs, the top layer of Trove's backup/ code,
the wheelhouse's marker closure, skip/rebuild with a stand-in mmdebstrap,
Trove's backup_docker_image settings and the command's --backup."""

import io
import tarfile
import types
import zipfile

import pytest

from tests.unit.images.datastore import test_builder
from trovestack.cloud import trove_source
from trovestack.commands import datastore_image
from trovestack.common import errors
from trovestack.images.datastore import archive
from trovestack.images.datastore import backup
from trovestack.images.datastore import builder
from trovestack.images.datastore import datastores
from trovestack.trove import trove_config

fake_mmdebstrap = test_builder.fake_mmdebstrap
MIRROR = test_builder.MIRROR
SOURCES = ['deb x trixie main']


def test_one_backup_image_per_datastore_image_from_its_suite():
    assert datastores.backup_supported() == datastores.supported()
    for name in datastores.supported():
        spec = datastores.find(*name.split(':'))
        backup_spec = datastores.find_backup(*name.split(':'))
        assert backup_spec.suite == spec.suite
        assert backup_spec.repository == (
            f'trovestack/db-backup-{spec.datastore}')
        assert backup_spec.tag == spec.version
        assert builder.archive_name(backup_spec) == (
            f'trovestack-db-backup-{spec.datastore}-{spec.version}.tar')


def test_unknown_backup_image_names_the_valid_ones():
    with pytest.raises(errors.UserError, match='versions are 10.11, 11.8'):
        datastores.find_backup('mariadb', '11.4')


@pytest.mark.parametrize('name, tool, strategy, python', [
    ('mariadb:11.8', 'mariadb-backup', 'mariabackup', '3.13'),
    ('mariadb:10.11', 'mariadb-backup', 'mariabackup', '3.11'),
    ('postgresql:17', 'postgresql-client-17', 'pg_basebackup', '3.13'),
    ('postgresql:15', 'postgresql-client-15', 'pg_basebackup', '3.11'),
])
def test_backup_spec_tools_and_python(name, tool, strategy, python):
    spec = datastores.find_backup(*name.split(':'))
    assert tool in spec.all_packages
    assert {'python3', 'python3-venv', 'dumb-init'} <= set(spec.all_packages)
    assert spec.strategy == strategy
    assert spec.python_version == python


def test_strategy_is_trove_s_default():
    cfg = pytest.importorskip('trove.common.cfg')
    for name in datastores.backup_supported():
        spec = datastores.find_backup(*name.split(':'))
        assert cfg.CONF.get(spec.datastore).backup_strategy == spec.strategy


def test_backup_image_config_runs_trove_s_command():
    # Trove: run_container(image, command='python3 main.py ...'), no
    # entrypoint, no user, no working directory of its own.
    config = datastores.find_backup('postgresql', '17').image_config()
    docker = config.as_docker_config()
    assert docker['Entrypoint'] == ['/usr/bin/dumb-init', '--single-child',
                                    '--']
    assert docker['WorkingDir'] == '/opt/trove/backup'
    assert docker['User'] == ''
    path = config.env['PATH'].split(':')
    assert path[:2] == ['/opt/trove-backup-venv/bin',
                        '/usr/lib/postgresql/17/bin']
    mariadb = datastores.find_backup('mariadb', '11.8').image_config()
    assert mariadb.env['PATH'].startswith('/opt/trove-backup-venv/bin:/usr')


def test_backup_base_layer_argv_and_inputs(tmp_path):
    spec = datastores.find_backup('mariadb', '11.8').with_venv('oslo.log\n',
                                                               'a==1\n')
    argv = builder.mmdebstrap_argv(spec, SOURCES, tmp_path / 'r.tar',
                                   spec.customize_hooks('/w'))
    hooks = [a for a in argv if a.startswith('--customize-hook=')]
    assert len(hooks) == 1
    assert hooks[0].endswith('backup-base.sh "$1" /w /opt/trove-backup-venv')
    inputs = builder.base_inputs(spec, SOURCES)
    assert {'backup_hook', 'python', 'requirements',
            'constraints'} <= set(inputs)
    assert 'customize' not in inputs
    other = builder.base_inputs(spec.with_venv('oslo.log\n', 'a==2\n'),
                                SOURCES)
    assert other['constraints'] != inputs['constraints']


def make_tree(root):
    """A Trove tree's backup/ with tests and bytecode to leave out."""
    code = root / 'backup'
    for rel, text in [('main.py', 'print(1)\n'), ('__init__.py', ''),
                      ('drivers/mariabackup.py', 'X = 1\n'),
                      ('tests/unittests/test_x.py', 'assert 0\n'),
                      ('__pycache__/main.cpython-311.pyc', 'x'),
                      ('requirements.txt', 'oslo.log\n'),
                      ('install.sh', '#!/bin/sh\n')]:
        path = code / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (code / 'install.sh').chmod(0o755)
    (root / 'setup.cfg').write_text('[metadata]\nname = trove\n')
    (root / 'trove').mkdir()
    (root / 'trove' / '__init__.py').write_text('')
    return code


def test_code_files_leave_tests_and_bytecode_out(tmp_path):
    code = backup.code_files(make_tree(tmp_path))
    assert sorted(code) == [
        '/opt/trove/backup/__init__.py',
        '/opt/trove/backup/drivers/mariabackup.py',
        '/opt/trove/backup/install.sh', '/opt/trove/backup/main.py',
        '/opt/trove/backup/requirements.txt']
    assert code['/opt/trove/backup/install.sh'][1] == 0o755
    assert code['/opt/trove/backup/main.py'][1] == 0o644
    assert backup.code_dirs(code) == (
        ('/opt', 0o755), ('/opt/trove', 0o755), ('/opt/trove/backup', 0o755),
        ('/opt/trove/backup/drivers', 0o755))


def fake_wheel(path, name, requires):
    with zipfile.ZipFile(path / f'{name}-1.0-py3-none-any.whl', 'w') as whl:
        whl.writestr(f'{name}-1.0.dist-info/METADATA',
                     f'Name: {name}\n' + ''.join(
                         f'Requires-Dist: {line}\n' for line in requires))


def test_missing_requirements_judged_for_the_image_s_python(tmp_path):
    fake_wheel(tmp_path, 'webob', [
        'legacy-cgi>=2.6; python_version >= "3.13"',
        'six; python_version < "3"', 'pytest; extra == "testing"'])
    fake_wheel(tmp_path, 'oslo_log', ['webob>=1.0'])
    new = datastores.find_backup('mariadb', '11.8')
    old = datastores.find_backup('mariadb', '10.11')
    assert backup.missing_requirements(tmp_path, new) == ['legacy-cgi>=2.6']
    assert backup.missing_requirements(tmp_path, old) == []


def test_platforms_follow_the_suite_s_glibc():
    tags = backup.platforms(datastores.find_backup('mariadb', '10.11'))
    assert tags[0] == 'manylinux_2_17_x86_64'
    assert tags[-1] == 'manylinux_2_36_x86_64'


def test_release_tree_comes_from_the_cached_sdist(tmp_path, monkeypatch):
    sdists = tmp_path / 'sdists'
    sdists.mkdir()
    monkeypatch.setenv(backup.SDIST_CACHE_ENV, str(sdists))
    monkeypatch.setenv('TROVESTACK_DATASTORE_IMAGE_CACHE',
                       str(tmp_path / 'cache'))
    with tarfile.open(sdists / 'trove-9.9.9.tar.gz', 'w:gz') as tar:
        for name, data in [('trove-9.9.9/backup/main.py', b'print(1)\n'),
                           ('trove-9.9.9/trove/x.py', b'')]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    source = trove_source.TroveSource(version='9.9.9')
    tree = backup.backup_tree(source)
    assert (tree / 'main.py').read_text() == 'print(1)\n'
    assert not (tree.parent / 'trove').exists()
    assert backup.backup_tree(source) == tree
    # Only the tree: no work directory left beside it.
    assert [p.name for p in tree.parent.parent.iterdir()] == [
        tree.parent.name]


def test_a_tree_without_backup_code_is_named(tmp_path):
    source = trove_source.TroveSource(version='1', path=str(tmp_path))
    with pytest.raises(builder.BuildError, match='no backup/main.py'):
        backup.backup_tree(source)


@pytest.fixture
def tree_build(tmp_path, fake_mmdebstrap, monkeypatch):
    """build_backup of a tree, with a stand-in wheelhouse."""
    tree = make_tree(tmp_path / 'trove')
    monkeypatch.setattr(backup, 'wheelhouse',
                        lambda spec, report: tmp_path / 'wheels')
    source = trove_source.TroveSource(version='26.0.0',
                                      path=str(tree.parent))

    def run(**kwargs):
        return backup.build_backup('mariadb', '11.8', source=source,
                                   output_dir=tmp_path / 'out',
                                   mirror=MIRROR, **kwargs)
    return types.SimpleNamespace(tree=tree, run=run, log=fake_mmdebstrap)


def test_build_skip_and_code_change(tree_build):
    first = tree_build.run()
    assert first.built and first.reference == (
        'trovestack/db-backup-mariadb:11.8')
    assert first.strategy == 'mariabackup'
    assert first.trove.startswith('trove 26.0.0 from ')
    [run] = test_builder.runs(tree_build.log)
    assert 'backup-base.sh' in run and '--include=' in run
    with tarfile.open(first.path) as tar:
        manifest = archive.read_manifest(first.path)
        top = tar.extractfile(manifest[0]['Layers'][-1])
        with tarfile.open(fileobj=io.BytesIO(top.read())) as layer:
            names = layer.getnames()
    assert './opt/trove/backup/main.py' in names
    assert not any('tests' in name for name in names)
    assert archive.read_config(first.path)['config']['WorkingDir'] == (
        '/opt/trove/backup')

    again = tree_build.run()
    assert not again.built and again.sha256 == first.sha256

    # The code changes: the top layer only, no mmdebstrap.
    (tree_build.tree / 'main.py').write_text('print(2)\n')
    changed = tree_build.run()
    assert changed.built and changed.sha256 != first.sha256
    assert len(test_builder.runs(tree_build.log)) == 1

    # Its requirements change: the venv, so the base layer too.
    (tree_build.tree / 'requirements.txt').write_text('oslo.log\nsix\n')
    assert tree_build.run().built
    assert len(test_builder.runs(tree_build.log)) == 2


def test_killed_backup_builds_are_swept(tmp_path):
    globs = list(builder._work_globs([tmp_path]))
    spec = datastores.find_backup('postgresql', '15')
    assert (tmp_path, builder.workdir_prefix(builder.archive_name(spec))) \
        in globs
    assert (tmp_path / builder.WHEELHOUSES,
            builder.workdir_prefix(builder.WHEELHOUSES)) in globs
    assert (tmp_path / builder.BACKUP_TREES,
            builder.workdir_prefix(builder.BACKUP_TREES)) in globs


# --- Trove's settings ---------------------------------------------------

def test_backup_docker_images_per_source():
    assert trove_config.backup_docker_images(['mariadb', 'postgresql']) == {
        'mariadb': 'quay.io/openstack.trove/db-backup-mariadb',
        'postgresql': 'quay.io/openstack.trove/db-backup-postgresql'}
    assert trove_config.backup_docker_images(
        ['mariadb'], source='registry', registry='10.0.0.1:5000') == {
        'mariadb': '10.0.0.1:5000/trovestack/db-backup-mariadb'}
    with pytest.raises(ValueError, match='looks each one up in its '
                                         'registry'):
        trove_config.backup_docker_images(['mariadb'], source='embedded')
    with pytest.raises(ValueError, match='needs a registry address'):
        trove_config.backup_docker_images(['mariadb'], source='registry')


def test_local_backup_repository_is_the_backup_images_name():
    for name in datastores.backup_supported():
        spec = datastores.find_backup(*name.split(':'))
        assert trove_config.backup_docker_images(
            [spec.datastore], source='registry', registry='r:1'
        )[spec.datastore] == f'r:1/{spec.repository}'


def test_instance_config_sets_backup_docker_image():
    settings = trove_config.InstanceSettings(
        docker_images=trove_config.docker_images(['mariadb']),
        backup_docker_images=trove_config.backup_docker_images(
            ['mariadb', 'postgresql'], source='registry', registry='r:1'))
    config = trove_config.instance_config(settings)
    guest = config[trove_config.GUESTAGENT_CONF]
    assert guest['mariadb'] == {
        'docker_image': 'quay.io/openstack.trove/mariadb',
        'ignore_users': 'os_admin,root,healthcheck',
        'backup_docker_image': 'r:1/trovestack/db-backup-mariadb'}
    assert guest['postgresql'] == {
        'backup_docker_image': 'r:1/trovestack/db-backup-postgresql'}
    with pytest.raises(ValueError, match='no container datastore redis'):
        trove_config.InstanceSettings(backup_docker_images={'redis': 'x'})


def test_backup_docker_image_is_a_trove_option():
    cfg = pytest.importorskip('trove.common.cfg')
    for datastore in ('mysql', 'mariadb', 'postgresql'):
        assert 'backup_docker_image' in cfg.CONF.get(datastore)


# --- the command --------------------------------------------------------

def test_command_backup_builds_from_the_cloud_s_trove(monkeypatch, tmp_path):
    calls = {}
    image = backup.BackupImage(
        datastore='mariadb', version='11.8', path=tmp_path / 'x.tar',
        sha256='ab' * 32, repository='trovestack/db-backup-mariadb',
        tag='11.8', built=True, strategy='mariabackup',
        trove='trove 26.0.0 (release)')

    def fake_build(name, version, source=None, **kwargs):
        calls['build'] = (name, version, source, kwargs)
        return image

    monkeypatch.setattr(datastore_image.backup, 'build_backup', fake_build)
    monkeypatch.setattr(trove_source, 'of_cloud',
                        lambda state_dir: ('cloud', state_dir))
    cmd, args = parse_command('--backup', 'mariadb:11.8',
                                   '--state-dir', '/s')
    _, values = cmd.take_action(args)
    row = dict(zip(datastore_image.COLUMNS, values, strict=True))
    assert calls['build'][:3] == ('mariadb', '11.8', ('cloud', '/s'))
    assert row['reference'] == 'trovestack/db-backup-mariadb:11.8'
    assert (row['backup_strategy'], row['trove']) == (
        'mariabackup', 'trove 26.0.0 (release)')


def test_command_trove_tree_needs_backup():
    cmd, args = parse_command('mariadb:11.8', '--trove-tree', '/t')
    with pytest.raises(errors.UserError, match='add --backup'):
        cmd.take_action(args)


def parse_command(*argv):
    from tests.unit.images.datastore import test_command

    return test_command.parse(*argv)

"""trovestack.images.datastore: catalog, inputs, skip/force/atomicity (with a
stand-in mmdebstrap), and the docker-archive writer."""

import json
import os
import pathlib
import sys
import tarfile
import textwrap

import pytest

from trovestack.common import errors
from trovestack.common import workdirs
from trovestack.images.datastore import archive
from trovestack.images.datastore import builder
from trovestack.images.datastore import datastores

MIRROR = 'http://mirror.invalid/debian'

FAKE_MMDEBSTRAP = textwrap.dedent('''\
    #!{python}
    import io, os, sys, tarfile
    if os.environ.get('FAKE_MMDEBSTRAP_FAIL'):
        print('E: boom', flush=True)
        sys.exit(1)
    out = next(arg for arg in sys.argv[1:] if arg.endswith('.tar'))
    with open(os.environ['FAKE_MMDEBSTRAP_LOG'], 'a') as log:
        log.write(' '.join(sys.argv[1:]) + '\\n')
    with open(os.environ['FAKE_MMDEBSTRAP_LOG'] + '.env', 'a') as log:
        log.write(os.environ['TMPDIR'] + ' '
                  + os.environ.get('TROVESTACK_BUILD_WORKDIR', '-') + '\\n')
    print('I: installing remaining packages inside the chroot...', flush=True)
    with tarfile.open(out, 'w') as tar:
        data = b'root filesystem\\n'
        info = tarfile.TarInfo('./etc/hostname')
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    ''')


@pytest.fixture
def fake_mmdebstrap(tmp_path, monkeypatch):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    script = bin_dir / 'mmdebstrap'
    script.write_text(FAKE_MMDEBSTRAP.format(python=sys.executable))
    script.chmod(0o755)
    log = tmp_path / 'mmdebstrap.log'
    log.write_text('')
    monkeypatch.setenv('PATH', f'{bin_dir}{os.pathsep}{os.environ["PATH"]}')
    monkeypatch.setenv('FAKE_MMDEBSTRAP_LOG', str(log))
    monkeypatch.setenv('TROVESTACK_DATASTORE_IMAGE_CACHE',
                       str(tmp_path / 'cache'))
    return log


def runs(log):
    return log.read_text().splitlines()


# --- catalog ----------------------------------------------------------

def test_supported_images():
    assert datastores.supported() == ['mariadb:10.11', 'mariadb:11.8',
                                      'postgresql:15', 'postgresql:17']


@pytest.mark.parametrize('name, suite', [
    ('mariadb:11.8', 'trixie'), ('postgresql:17', 'trixie'),
    ('mariadb:10.11', 'bookworm'), ('postgresql:15', 'bookworm')])
def test_suite_repository_and_tag(name, suite):
    spec = datastores.find(*name.split(':'))
    assert spec.suite == suite
    assert spec.repository == f'trovestack/{name.split(":")[0]}'
    assert spec.tag == name.split(':')[1]


def test_unknown_version_names_the_valid_ones():
    with pytest.raises(errors.UserError,
                       match='mariadb versions are 10.11, 11.8'):
        datastores.find('mariadb', '11.4')


def test_missing_version_names_the_valid_ones():
    with pytest.raises(errors.UserError,
                       match='postgresql:15, postgresql:17'):
        datastores.find('postgresql', None)


def test_unknown_datastore_names_the_valid_ones():
    with pytest.raises(errors.UserError,
                       match="'mysql'.*mariadb, postgresql"):
        datastores.find('mysql', '8.0')


def test_postgresql_tools_on_path_and_locale():
    config = datastores.find('postgresql', '17').image_config()
    env = config.as_docker_config()['Env']
    assert 'PATH=/usr/lib/postgresql/17/bin:' + datastores.SYSTEM_PATH in env
    assert 'LANG=en_US.utf8' in env
    assert config.stop_signal == 'SIGINT'


# --- mirrors and the mmdebstrap command ---------------------------------

def test_debian_mirrors_from_apt_entries():
    entries = [('https://example.org/node', ['nodistro']),
               ('http://m.example/debian/', ['bookworm', 'bookworm-updates']),
               ('http://m.example/debian-security', ['bookworm-security'])]
    assert builder.debian_mirrors(entries) == (
        'http://m.example/debian', 'http://m.example/debian-security')


def test_explicit_mirror_wins(monkeypatch):
    monkeypatch.setattr(builder.mirrors, 'apt_entries',
                        lambda: pytest.fail('apt sources read'))
    assert builder.resolve_mirrors(MIRROR + '/', None) == (MIRROR, None)


def test_sources_use_the_spec_suite():
    spec = datastores.find('mariadb', '11.8')
    assert builder.apt_sources(spec, MIRROR, 'http://s.invalid/sec') == [
        f'deb {MIRROR} trixie main', f'deb {MIRROR} trixie-updates main',
        'deb http://s.invalid/sec trixie-security main']


def test_mmdebstrap_argv(tmp_path):
    spec = datastores.find('postgresql', '15')
    argv = builder.mmdebstrap_argv(spec, ['deb x bookworm main'],
                                   tmp_path / 'rootfs.tar')
    assert argv[0] == 'mmdebstrap'
    assert '--variant=essential' in argv
    include = next(a for a in argv if a.startswith('--include='))
    assert set(include[len('--include='):].split(',')) == {
        'postgresql-15', *datastores.COMMON_PACKAGES}
    hooks = [a for a in argv if a.startswith('--customize-hook=')]
    assert 'customize.sh "$1" postgresql 1001 en_US.UTF-8' in hooks[0]
    # then PostgreSQL's own: the template cluster, no perl
    assert hooks[1].endswith('postgresql-base.sh "$1" 15 1001')
    excludes = [a.split('=', 2)[2] for a in argv
                if a.startswith('--dpkgopt=path-exclude=')]
    assert '/usr/lib/postgresql/15/lib/bitcode/*' in excludes
    assert '/usr/share/doc/*' in excludes
    assert argv[-3:] == ['bookworm', str(tmp_path / 'rootfs.tar'),
                         'deb x bookworm main']


def test_mariadb_base_layer_has_its_template_hook_only():
    # A MariaDB image's base layer: its own hook (the template data
    # directory), none of PostgreSQL's excludes.
    spec = datastores.find('mariadb', '11.8')
    argv = builder.mmdebstrap_argv(spec, ['deb x trixie main'], 'r.tar')
    hooks = [a for a in argv if a.startswith('--customize-hook=')]
    assert hooks[1].endswith('mariadb-base.sh "$1" 11.8 1001')
    assert set(builder.base_inputs(spec, ['deb x trixie main'])) == {
        'format', 'datastore', 'suite', 'packages', 'sources',
        'path_excludes', 'uid', 'locale', 'customize', 'base_hook'}
    pg = datastores.find('postgresql', '17')
    assert {'excludes', 'base_hook'} <= set(
        builder.base_inputs(pg, ['deb x trixie main']))


def _trove_mariadb_innodb_settings():
    trove = pytest.importorskip('trove')
    template = (pathlib.Path(trove.__file__).parent / 'templates'
                / 'mariadb' / 'config.template')
    settings = {}
    for line in template.read_text().splitlines():
        key, sep, value = line.partition('=')
        if sep and key.strip() in ('innodb_data_file_path',
                                   'innodb_log_file_size',
                                   'innodb_page_size'):
            settings[key.strip().replace('_', '-')] = value.strip()
    return settings


def test_mariadb_template_matches_trove_innodb_settings():
    # The template's InnoDB files are made with what Trove's config gives
    # the server, or it would refuse (or rebuild) the copied files.
    hook = (builder.DATA_DIR / 'mariadb-base.sh').read_text()
    settings = _trove_mariadb_innodb_settings()
    assert settings, 'Trove config template without InnoDB file settings'
    for key, value in settings.items():
        assert f'--{key}={value}' in hook


# --- build: skip, force, atomic -----------------------------------------

def test_build_then_skip_then_force(tmp_path, fake_mmdebstrap):
    out = tmp_path / 'out'
    progress = []
    first = builder.build('mariadb', '11.8', output_dir=out, mirror=MIRROR,
                          progress=progress.append)
    assert first.built and first.path == out / 'trovestack-mariadb-11.8.tar'
    assert first.reference == 'trovestack/mariadb:11.8'
    assert first.sha256 == builder.files.file_sha256(first.path)
    assert any('root filesystem' in line for line in progress)
    assert len(runs(fake_mmdebstrap)) == 1

    again = builder.build('mariadb', '11.8', output_dir=out, mirror=MIRROR)
    assert not again.built
    assert (again.sha256, again.image_id) == (first.sha256, first.image_id)
    assert len(runs(fake_mmdebstrap)) == 1

    forced = builder.build('mariadb', '11.8', output_dir=out, mirror=MIRROR,
                           force=True)
    assert forced.built
    assert len(runs(fake_mmdebstrap)) == 2
    assert not list(out.glob('.*build-*'))


def test_script_change_reuses_the_base_layer(tmp_path, fake_mmdebstrap,
                                            monkeypatch):
    out = tmp_path / 'out'
    first = builder.build('mariadb', '11.8', output_dir=out, mirror=MIRROR)
    scripts = tmp_path / 'data'
    builder.shutil.copytree(builder.DATA_DIR, scripts)
    with open(scripts / 'mariadb' / 'entrypoint.sh', 'a') as f:
        f.write('# changed\n')
    monkeypatch.setattr(builder, 'DATA_DIR', scripts)
    second = builder.build('mariadb', '11.8', output_dir=out, mirror=MIRROR)
    assert second.built and second.sha256 != first.sha256
    assert len(runs(fake_mmdebstrap)) == 1


def test_changed_inputs_rebuild(tmp_path, fake_mmdebstrap):
    out = tmp_path / 'out'
    builder.build('postgresql', '17', output_dir=out, mirror=MIRROR)
    other = builder.build('postgresql', '17', output_dir=out,
                          mirror='http://other.invalid/debian')
    assert other.built
    assert len(runs(fake_mmdebstrap)) == 2


def test_replaced_archive_rebuilds(tmp_path, fake_mmdebstrap):
    out = tmp_path / 'out'
    image = builder.build('postgresql', '17', output_dir=out, mirror=MIRROR)
    image.path.write_bytes(b'not the archive the stamp describes')
    assert builder.build('postgresql', '17', output_dir=out,
                         mirror=MIRROR).built


def test_failed_build_keeps_the_previous_archive(tmp_path, fake_mmdebstrap,
                                                 monkeypatch):
    out = tmp_path / 'out'
    image = builder.build('mariadb', '10.11', output_dir=out, mirror=MIRROR)
    before = image.path.read_bytes()
    monkeypatch.setenv('FAKE_MMDEBSTRAP_FAIL', '1')
    with pytest.raises(builder.BuildError, match='E: boom'):
        builder.build('mariadb', '10.11', output_dir=out, mirror=MIRROR,
                      force=True)
    assert image.path.read_bytes() == before
    assert not list(out.glob('.*build-*'))
    assert not list(out.glob('*.partial-*'))


def test_stale_work_dir_of_a_killed_build_is_removed(tmp_path,
                                                     fake_mmdebstrap):
    out = tmp_path / 'out'
    stale = out / '.trovestack-mariadb-11.8.tar.build-999999999'
    stale.mkdir(parents=True)
    (stale / 'rootfs.tar').write_bytes(b'half')
    builder.build('mariadb', '11.8', output_dir=out, mirror=MIRROR)
    assert not stale.exists()


def test_live_build_s_work_dir_is_kept(tmp_path, fake_mmdebstrap):
    """Only dead builds' work dirs go: one whose owner (pid and start
    time) still runs is another build's, in progress."""
    out = tmp_path / 'out'
    me = workdirs.Owner.current()
    live = out / f'.trovestack-mariadb-11.8.tar.build-{me.pid}-live'
    live.mkdir(parents=True)
    (live / workdirs.OWNER_FILE).write_text(json.dumps(
        {'pid': me.pid, 'started': me.started}))
    reused = out / f'.trovestack-mariadb-11.8.tar.build-{me.pid}-old'
    reused.mkdir()
    (reused / workdirs.OWNER_FILE).write_text(json.dumps(
        {'pid': me.pid, 'started': me.started - 600}))
    builder.build('mariadb', '11.8', output_dir=out, mirror=MIRROR)
    assert live.is_dir()
    assert not reused.exists()


def test_mmdebstrap_works_in_the_owned_work_dir(tmp_path, fake_mmdebstrap):
    builder.build('mariadb', '11.8', output_dir=tmp_path / 'out',
                  mirror=MIRROR)
    (line,) = pathlib.Path(f'{fake_mmdebstrap}.env').read_text().splitlines()
    tmpdir, marker = line.split()
    assert tmpdir == marker
    workdir = pathlib.Path(tmpdir)
    assert workdir.parent == tmp_path / 'cache' / builder.BASE_LAYERS
    assert workdir.name.startswith('.mariadb-11.8-rootfs.tar.build-')
    assert not workdir.exists()


def test_missing_mmdebstrap_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(builder.shutil, 'which', lambda name: None)
    with pytest.raises(builder.BuildError, match='package mmdebstrap'):
        builder.build('mariadb', '11.8', output_dir=tmp_path, mirror=MIRROR)


# --- the docker-archive ---------------------------------------------------

def test_archive_is_loadable_layout(tmp_path, fake_mmdebstrap):
    image = builder.build('postgresql', '15', output_dir=tmp_path,
                          mirror=MIRROR)
    manifest = archive.read_manifest(image.path)
    assert manifest[0]['RepoTags'] == ['trovestack/postgresql:15']
    config = archive.read_config(image.path)
    assert config['config']['Entrypoint'] == ['/usr/local/bin/entrypoint.sh']
    assert config['config']['Cmd'] == ['postgres']
    assert 'PGDATA=/var/lib/postgresql/data' in config['config']['Env']
    base_name, top_name = manifest[0]['Layers']
    with tarfile.open(image.path) as tar:
        with tarfile.open(fileobj=tar.extractfile(base_name)) as base:
            assert './etc/hostname' in base.getnames()
        with tarfile.open(fileobj=tar.extractfile(top_name)) as top:
            names = {m.name: m for m in top.getmembers()}
        assert json.load(tar.extractfile('repositories')) == {
            'trovestack/postgresql': {'15': top_name.split('/')[0]}}
    entrypoint = names['./usr/local/bin/entrypoint.sh']
    assert (entrypoint.mode, entrypoint.uid) == (0o755, 0)
    assert len(config['rootfs']['diff_ids']) == 2
    run_dir = names['./run/postgresql']
    assert (run_dir.isdir(), run_dir.uid, run_dir.mode) == (
        True, datastores.SERVICE_UID, 0o3777)
    assert image.image_id == 'sha256:' + manifest[0]['Config'][:-5]

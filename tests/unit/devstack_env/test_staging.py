"""The staging cache: content keys, reuse, interrupted builds."""

import io
import json
import pathlib
import subprocess
import tarfile
import threading

import pytest

from trovestack.devstack_env import staging


def _build_writing(text, calls):
    def build(tmp):
        calls.append(tmp)
        (tmp / 'content').write_text(text)
        return 'detail'
    return build


def test_cached_builds_once_then_reuses(tmp_path):
    calls = []
    first = staging.cached('thing', 'k' * 64, _build_writing('a', calls),
                           root=tmp_path)
    again = staging.cached('thing', 'k' * 64, _build_writing('b', calls),
                           root=tmp_path)
    assert first.built and not again.built
    assert len(calls) == 1
    assert (again.path / 'content').read_text() == 'a'
    assert again.detail == 'detail'
    assert not list(tmp_path.glob('.thing-*.tmp-*'))


def test_another_key_is_another_artifact(tmp_path):
    calls = []
    one = staging.cached('thing', '1' * 64, _build_writing('a', calls),
                         root=tmp_path)
    two = staging.cached('thing', '2' * 64, _build_writing('b', calls),
                         root=tmp_path)
    assert one.path != two.path and len(calls) == 2


def test_failed_build_leaves_nothing(tmp_path):
    def build(tmp):
        (tmp / 'half').write_text('x')
        raise staging.StagingError('boom')

    with pytest.raises(staging.StagingError):
        staging.cached('thing', 'f' * 64, build, root=tmp_path)
    assert [p.name for p in tmp_path.iterdir()
            if not p.name.endswith('.lock')] == []


def test_leftovers_of_a_killed_build_are_replaced(tmp_path):
    key = 'e' * 64
    path = staging.artifact_path('thing', key, tmp_path)
    # A build killed after its rename (no record) and one killed before.
    path.mkdir(parents=True)
    (path / 'stale').write_text('x')
    leftover = tmp_path / f'.{path.name}.tmp-1-2'
    leftover.mkdir()
    calls = []
    made = staging.cached('thing', key, _build_writing('fresh', calls),
                          root=tmp_path)
    assert made.built and not (made.path / 'stale').exists()
    assert not leftover.exists()


def test_a_record_of_another_key_is_not_trusted(tmp_path):
    key = 'c' * 64
    path = staging.artifact_path('thing', key, tmp_path)
    path.mkdir(parents=True)
    path.with_name(path.name + '.json').write_text(
        json.dumps({'key': 'other'}))
    calls = []
    assert staging.cached('thing', key, _build_writing('x', calls),
                          root=tmp_path).built


def test_concurrent_runs_build_once(tmp_path):
    calls = []
    started = threading.Event()

    def slow(tmp):
        calls.append(tmp)
        started.set()
        threading.Event().wait(0.3)
        (tmp / 'content').write_text('x')
        return ''

    out = []
    threads = [threading.Thread(target=lambda: out.append(staging.cached(
        'thing', 'd' * 64, slow, root=tmp_path))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert sorted(a.built for a in out) == [False, True]


def test_digest_is_stable_and_order_free():
    assert staging.digest({'a': 1, 'b': [2]}) == staging.digest(
        {'b': [2], 'a': 1})
    assert staging.digest({'a': 1}) != staging.digest({'a': 2})


def test_rootfs_key_covers_packages_and_script():
    one = staging.RootfsSpec(include=('a', 'b'), customize='x')
    assert one.key() == staging.RootfsSpec(include=('b', 'a'),
                                           customize='x').key()
    assert one.key() != staging.RootfsSpec(include=('a',),
                                           customize='x').key()
    assert one.key() != staging.RootfsSpec(include=('a', 'b'),
                                           customize='y').key()


def test_customize_script_makes_apt_and_pip_offline():
    script = staging.customize_script(stack_user=True)
    assert f'deb [trusted=yes] file:{staging.APT_MOUNT} ./' in script
    assert 'bookworm-backports' in script
    assert 'no-index = true' in script
    assert f'find-links = {staging.WHEEL_MOUNT}' in script
    assert 'useradd' in script and 'NOPASSWD' in script
    assert 'useradd' not in staging.customize_script(stack_user=False)
    subprocess.run(['sh', '-n', '-c', script], check=True)


def test_project_list_takes_the_pins():
    pins = {'keystone': '30.0.0', 'glance': '33.0.0', 'nova': '34.0.0',
            'openstack-placement': '16.0.0', 'neutron': '29.0.0',
            'cinder': '29.0.0',
            'trove': '26.0.0', 'python-troveclient': '8.11.0',
            'tempest': '47.0.0', 'trove-tempest-plugin': '2.8.0'}
    projects = staging.project_list(pins)
    assert staging.Project('placement', 'openstack-placement',
                           '16.0.0') in projects
    del pins['nova']
    with pytest.raises(staging.StagingError, match='nova'):
        staging.project_list(pins)


def test_checkout_pins_of_this_checkout():
    root = pathlib.Path(__file__).resolve().parents[3]
    pins = staging.checkout_pins(root)
    assert pins['nova'] == '34.0.0'
    assert pins['openstack-placement'] == '16.0.0'


def _sdist(path, name, version):
    with tarfile.open(path, 'w:gz') as archive:
        for member, text in ((f'{name}-{version}/PKG-INFO',
                              f'Name: {name}\nVersion: {version}\n'),
                             (f'{name}-{version}/setup.py', 'pass\n'),
                             (f'{name}-{version}/{name}.egg-info/x', '')):
            data = text.encode()
            info = tarfile.TarInfo(member)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def test_unpack_as_repo_is_one_commit(tmp_path):
    sdist = tmp_path / 'demo-1.2.3.tar.gz'
    _sdist(sdist, 'demo', '1.2.3')
    target = tmp_path / 'repo'
    staging.unpack_as_repo(sdist, target, 'demo 1.2.3')
    log = subprocess.run(['git', '-C', str(target), 'log', '--oneline'],
                         capture_output=True, text=True, check=True).stdout
    assert len(log.splitlines()) == 1 and 'demo 1.2.3' in log
    assert 'Version: 1.2.3' in (target / 'PKG-INFO').read_text()
    tracked = subprocess.run(['git', '-C', str(target), 'ls-files'],
                             capture_output=True, text=True).stdout
    assert 'PKG-INFO' in tracked.split()
    # What a build generates is ignored as in a clone of the project: a
    # wheel built from the tree (pbr rewrites AUTHORS, pip writes
    # build/ and egg-info) leaves it clean.
    assert 'demo.egg-info/x' not in tracked
    assert (target / 'demo.egg-info' / 'x').exists()
    (target / 'AUTHORS').write_text('someone else\n')
    (target / 'build').mkdir()
    (target / 'demo.egg-info' / 'x').write_text('changed')
    status = subprocess.run(['git', '-C', str(target), 'status',
                             '--porcelain'], capture_output=True,
                            text=True, check=True).stdout
    assert status == ''


def test_requirements_repo_gets_our_lists(tmp_path):
    sdist = tmp_path / 'openstack_requirements-1.2.0.tar.gz'
    _sdist(sdist, 'openstack_requirements', '1.2.0')
    wheels_dir = tmp_path / 'wheels'
    wheels_dir.mkdir()
    (wheels_dir / 'six-1.17.0-py2.py3-none-any.whl').write_text('')
    wheels = staging.Artifact('wheels', 'w' * 64, wheels_dir, False, 0.0)
    made = staging.build_requirements(sdist, {'nova': '34.0.0'}, wheels,
                                      root=tmp_path / 'cache')
    repo = made.path / 'requirements'
    assert (repo / 'upper-constraints.txt').read_text() == (
        'nova===34.0.0\nsix===1.17.0\n')
    assert 'six>=0' in (repo / 'global-requirements.txt').read_text().split()
    assert (repo / '.git').is_dir()


def test_sources_lines_name_the_suite_updates_security_backports():
    lines = staging.sources_lines('bookworm')
    assert [line.split()[-2] for line in lines] == [
        'bookworm', 'bookworm-updates', 'bookworm-security',
        'bookworm-backports']
    assert 'n=bookworm-backports' in staging.BACKPORTS_PIN.format(
        suite='bookworm')


def test_write_index_of_a_flat_repository(tmp_path):
    staging.write_index(tmp_path)
    release = (tmp_path / 'Release').read_text()
    assert (tmp_path / 'Packages').read_text() == ''
    assert 'Packages.gz' in release and release.startswith('Origin:')


def test_verify_repo_names_what_is_missing(tmp_path):
    staging.write_index(tmp_path)
    status = tmp_path / 'rootfs' / 'var' / 'lib' / 'dpkg'
    status.mkdir(parents=True)
    (status / 'status').write_text('')
    staging.verify_repo(tmp_path, tmp_path / 'rootfs', [])
    with pytest.raises(staging.StagingError, match='local repository'):
        staging.verify_repo(tmp_path, tmp_path / 'rootfs',
                            ['no-such-package'])


def test_rootfs_python_reads_dpkg_status(tmp_path):
    status = tmp_path / 'var' / 'lib' / 'dpkg'
    status.mkdir(parents=True)
    (status / 'status').write_text(
        'Package: python3.11-minimal\nVersion: 3.11.2-6+deb12u9\n\n'
        'Package: python3-minimal\nStatus: install ok installed\n'
        'Version: 3.11.2-1+b1\nDescription: x\n more\n')
    assert staging.rootfs_python(tmp_path) == '3.11.2'


def test_python_version_of_a_missing_interpreter(tmp_path):
    with pytest.raises(staging.StagingError, match='missing'):
        staging.python_version(str(tmp_path / 'python3'))

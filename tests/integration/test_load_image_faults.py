"""Bad input and faults: one line on stderr, non-zero exit, nothing changed.

Everything runs against the real local Keystone, Glance and Trove API; the
Glance faults come from tests.faultproxy placed in front of the real Glance
through the clouds.yaml ``image_endpoint_override`` setting.
"""

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys

import pytest

from tests import load_image_support as support
from tests.faultproxy import FaultProxy
from trovestack.common import connection
from trovestack.common import tokencache


@pytest.fixture
def datastore():
    return support.unique('mysql')


@pytest.fixture
def image(tmp_path):
    return support.make_raw_image(tmp_path / 'guest.img', 4 * support.MiB)


@pytest.fixture
def proxy(local_cloud, admin):
    with FaultProxy(admin.image.get_endpoint()) as running:
        yield running


@pytest.fixture
def proxied_env(local_cloud, proxy, tmp_path):
    return support.clouds_yaml_copy(local_cloud, tmp_path / 'clouds.yaml',
                                    image_endpoint_override=proxy.url)


def _name(datastore, version='8.4'):
    return f'trove-guest-debian-bookworm-{datastore}-{version}'


def _assert_nothing_made(admin, trove, datastore, version='8.4'):
    assert support.images_named(admin, _name(datastore, version)) == []
    assert [v for v in trove.mgmt_ds_versions.list()
            if v.datastore_name == datastore] == []


def _assert_one_line_failure(result, *fragments):
    assert result.returncode != 0
    lines = support.error_lines(result)
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert result.stdout == ''


# -- bad image files ------------------------------------------------------


@pytest.mark.parametrize('case, message', [
    ('missing', 'does not exist'),
    ('directory', 'is not a regular file'),
    ('empty', 'is empty'),
    ('corrupt', 'is corrupt'),
    ('backing_file', 'is unsafe'),
    ('data_file', 'is unsafe'),
    ('mismatch', 'declared qcow2 but its content is raw'),
    ('vmdk', 'is vmdk'),
])
def test_bad_image_file(local_cloud, admin, trove, tmp_path, datastore,
                        case, message):
    path = _bad_file(tmp_path, case)
    extra = ('--disk-format', 'qcow2') if case == 'mismatch' else ()
    result, _ = support.load(local_cloud, path, datastore, '8.4', '--manager',
                             'mysql', *extra, check=False)
    _assert_one_line_failure(result, message, str(path))
    _assert_nothing_made(admin, trove, datastore)


def _bad_file(tmp_path, case):
    path = tmp_path / f'{case}.qcow2'
    if case == 'directory':
        path.mkdir()
    elif case == 'empty':
        path.touch()
    elif case == 'corrupt':
        path.write_bytes(b'QFI\xfb\0\0\0\3' + b'\xff' * 100)
    elif case in ('backing_file', 'data_file', 'vmdk'):
        base = support.make_qcow2_image(tmp_path / 'base.qcow2', '8M')
        options = {'backing_file': ['-b', base, '-F', 'qcow2'],
                   'data_file': ['-o', f'data_file={tmp_path / "d.raw"}'],
                   'vmdk': None}[case]
        if options is None:
            subprocess.run(['qemu-img', 'convert', '-O', 'vmdk', base, path],
                           check=True)
        else:
            subprocess.run(['qemu-img', 'create', '-f', 'qcow2', *map(
                str, options), path, '8M'], check=True, capture_output=True)
    elif case == 'mismatch':
        support.make_raw_image(path, support.MiB)
    return path


def test_unreadable_image_file(local_cloud, admin, trove, tmp_path,
                               datastore):
    # root reads everything: drop its file-permission override first.
    setpriv = shutil.which('setpriv')
    if setpriv is None:
        pytest.skip('setpriv (util-linux) is not installed')
    path = support.make_raw_image(tmp_path / 'secret.img', support.MiB)
    os.chmod(path, 0)
    script = pathlib.Path(sys.executable).parent / 'load-trove-image'
    caps = '-dac_override,-dac_read_search'
    result = subprocess.run(
        [setpriv, '--bounding-set', caps, '--inh-caps', caps, str(script),
         str(path), '--datastore', datastore, '--version', '8.4',
         '--manager', 'mysql', '--os-cloud', local_cloud.admin_cloud],
        capture_output=True, text=True, env=local_cloud.env(), timeout=120)
    _assert_one_line_failure(result, 'is not readable')
    _assert_nothing_made(admin, trove, datastore)


# -- bad arguments --------------------------------------------------------


def test_unknown_manager(local_cloud, admin, trove, image, datastore):
    result, _ = support.load(local_cloud, image, datastore, '8.4',
                             '--manager', 'oracle', check=False)
    _assert_one_line_failure(
        result, "unknown datastore manager 'oracle'",
        'valid managers: mariadb, mysql, postgresql')
    _assert_nothing_made(admin, trove, datastore)


@pytest.mark.parametrize('version', ['8.4 beta', '-8', '8/4', ''])
def test_bad_version_string(local_cloud, admin, trove, image, datastore,
                            version):
    result, _ = support.load(local_cloud, image, datastore, version,
                             '--manager', 'mysql', check=False)
    _assert_one_line_failure(result, 'invalid version')
    _assert_nothing_made(admin, trove, datastore, version)


# -- credentials and reachability ----------------------------------------


def test_bad_password(local_cloud, admin, trove, image, datastore, tmp_path):
    env = support.clouds_yaml_copy(local_cloud, tmp_path / 'c.yaml',
                                   auth={'password': 'wrong-password'})
    result, _ = support.load(local_cloud, image, datastore, '8.4',
                             '--manager', 'mysql', env=env, check=False)
    _assert_one_line_failure(result, 'bad credentials')
    assert 'wrong-password' not in result.stderr
    _assert_nothing_made(admin, trove, datastore)


def test_missing_password(local_cloud, admin, trove, image, datastore,
                          tmp_path):
    env = support.clouds_yaml_copy(local_cloud, tmp_path / 'c.yaml',
                                   auth={'password': None})
    result, _ = support.load(local_cloud, image, datastore, '8.4',
                             '--manager', 'mysql', env=env, check=False)
    _assert_one_line_failure(result, 'password')
    _assert_nothing_made(admin, trove, datastore)


def test_unknown_cloud(local_cloud, image, datastore):
    result, _ = support.load(local_cloud, image, datastore, '8.4',
                             '--manager', 'mysql', cloud='no-such-cloud',
                             check=False)
    _assert_one_line_failure(result, "cloud 'no-such-cloud'")


def test_not_admin(local_cloud, admin, trove, image, datastore):
    result, _ = support.load(local_cloud, image, datastore, '8.4',
                             '--manager', 'mysql',
                             cloud=local_cloud.demo_cloud, check=False)
    _assert_one_line_failure(result, 'needs the admin role')
    _assert_nothing_made(admin, trove, datastore)


def test_keystone_port_closed(local_cloud, image, datastore, tmp_path):
    closed = socket.socket()
    closed.bind(('127.0.0.1', 0))
    port = closed.getsockname()[1]
    closed.close()
    env = support.clouds_yaml_copy(
        local_cloud, tmp_path / 'c.yaml',
        auth={'auth_url': f'http://127.0.0.1:{port}/v3'})
    result, _ = support.load(local_cloud, image, datastore, '8.4',
                             '--manager', 'mysql', env=env, check=False)
    _assert_one_line_failure(result, 'unreachable')


def test_keystone_not_answering(local_cloud, image, datastore, tmp_path):
    """A port that accepts connections and never answers: the command gives
    up after its --api-timeout instead of hanging (helpers.run would fail
    the test after its own timeout)."""
    silent = socket.socket()
    silent.bind(('127.0.0.1', 0))
    silent.listen(16)
    try:
        env = support.clouds_yaml_copy(
            local_cloud, tmp_path / 'c.yaml',
            auth={'auth_url': f'http://127.0.0.1:'
                              f'{silent.getsockname()[1]}/v3'})
        result, _ = support.load(local_cloud, image, datastore, '8.4',
                                 '--manager', 'mysql', '--api-timeout', '3',
                                 env=env, check=False)
    finally:
        silent.close()
    _assert_one_line_failure(result, 'did not answer within 3 s')


def test_secrets_never_logged(local_cloud, image, datastore, tmp_path):
    password = support.admin_password(local_cloud)
    log_file = tmp_path / 'load.log'
    result, _ = support.load(local_cloud, image, datastore, '8.4',
                             '--manager', 'mysql', '--debug', '-v',
                             '--log-file', log_file)
    bad = support.clouds_yaml_copy(local_cloud, tmp_path / 'c.yaml',
                                   auth={'password': password + 'x'})
    failed, _ = support.load(local_cloud, image, datastore, '8.4',
                             '--manager', 'mysql', '--debug', env=bad,
                             check=False)
    for output in (result.stdout + result.stderr, log_file.read_text(),
                   failed.stdout + failed.stderr):
        assert 'X-Auth-Token' in output or 'REQ:' in output
        assert password not in output
        assert 'gAAAAA' not in output  # fernet tokens


# -- Glance faults through the proxy -------------------------------------


def test_glance_5xx_is_retried(local_cloud, admin, proxy, proxied_env,
                               image, datastore):
    proxy.arm('status', status=503, times=2)
    _, data = support.load(local_cloud, image, datastore, '8.4', '--manager',
                           'mysql', env=proxied_env)
    assert data['image_action'] == 'uploaded'
    assert support.images_named(admin, _name(datastore)) == [data['image_id']]
    puts = [r for r in proxy.requests if r[0] == 'PUT']
    assert [r[2] for r in puts] == [503, 503, 204]


def test_glance_answer_lost_after_upload(local_cloud, admin, proxy,
                                         proxied_env, image, datastore):
    # Glance stores the data but the client sees a 502: that image goes too.
    proxy.arm('status', status=502, forward=True)
    _, data = support.load(local_cloud, image, datastore, '8.4', '--manager',
                           'mysql', env=proxied_env)
    assert support.images_named(admin, _name(datastore)) == [data['image_id']]


def test_connection_dropped_mid_upload_is_retried(
        local_cloud, admin, proxy, proxied_env, image, datastore):
    proxy.arm('drop', after_bytes=image.stat().st_size // 2, times=2)
    _, data = support.load(local_cloud, image, datastore, '8.4', '--manager',
                           'mysql', env=proxied_env)
    assert data['bytes_uploaded'] == image.stat().st_size
    assert support.images_named(admin, _name(datastore)) == [data['image_id']]
    assert [r[2] for r in proxy.requests if r[0] == 'PUT'] == [
        'dropped', 'dropped', 204]


@pytest.mark.parametrize('kind, options', [
    ('status', {'status': 500}),
    ('drop', {'after_bytes': 1024 * 1024}),
])
def test_persistent_glance_failure_leaves_nothing(
        local_cloud, admin, trove, proxy, proxied_env, image, datastore,
        kind, options, tmp_path):
    proxy.arm(kind, times=100, **options)
    conf = tmp_path / 'load.conf'
    conf.write_text('[load_image]\nretry_delay = 0.1\n')
    result, _ = support.load(local_cloud, image, datastore, '8.4',
                             '--manager', 'mysql', '--config-file', conf,
                             env=proxied_env, check=False)
    assert result.returncode != 0
    assert 'failed after 4 attempts' in support.error_lines(result)[-1]
    _assert_nothing_made(admin, trove, datastore)


def test_revoked_token_during_upload_reauthenticates(
        local_cloud, admin, proxy, proxied_env, image, datastore):
    """Glance sees a token Keystone has revoked on the upload request (as
    when a token expires during a long upload): the command gets a new
    token and uploads again."""
    revoked = _revoked_token(local_cloud)
    proxy.arm('token', token=revoked)
    result, data = support.load(local_cloud, image, datastore, '8.4',
                                '--manager', 'mysql', env=proxied_env)
    assert [r[2] for r in proxy.requests if r[0] == 'PUT'] == [401, 204]
    assert 'token expired or was revoked' in result.stderr
    assert support.images_named(admin, _name(datastore)) == [data['image_id']]


def test_cached_token_keystone_revoked_is_replaced(
        local_cloud, admin, image, datastore, monkeypatch):
    """The token cache (trovestack.common.tokencache) holds a token that
    Keystone has revoked since (as a Keystone set up again rejects the
    old one's): the run asks Keystone about it first, logs in afresh
    before any service sees the old token (a 401 retried by keystoneauth
    kept the old project's id in Trove's URLs: 403), succeeds, and the
    cache holds the new token."""
    monkeypatch.setenv('OS_CLIENT_CONFIG_FILE', str(local_cloud.clouds_yaml))
    earlier = connection.connect(local_cloud.admin_cloud, token_cache=True)
    earlier.session.invalidate()
    token = earlier.session.get_token()  # cached; no service has seen it
    (entry,) = [path for path in tokencache.default_directory().glob(
        '*.json') if _cached_token(path) == token]
    _revoke(local_cloud, token)
    result, data = support.load(local_cloud, image, datastore, '8.4',
                                '--manager', 'mysql', '--debug', '-vv')
    assert data['image_action'] == 'uploaded'
    assert 'RESP: [401]' not in result.stderr
    assert token not in result.stdout + result.stderr
    fresh = _cached_token(entry)
    assert fresh != token
    check = local_cloud.connection().identity.get(
        '/auth/tokens', headers={'X-Subject-Token': fresh})
    assert check.status_code == 200


def _cached_token(path):
    return json.loads(path.read_text())['auth_token']


def _revoke(local_cloud, token):
    response = local_cloud.connection().identity.delete(
        '/auth/tokens', headers={'X-Subject-Token': token})
    assert response.status_code == 204


def _revoked_token(local_cloud):
    """A token issued by the real Keystone and then revoked there."""
    token = local_cloud.connection().session.get_token()
    _revoke(local_cloud, token)
    return token

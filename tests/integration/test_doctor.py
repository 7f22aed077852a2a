"""trovestack doctor / status against the real local control plane."""

import json

from tests import helpers
from tests import load_image_support as support
from trovestack.cloud import trove_source


def _doctor(local_cloud, *args, alias=False):
    """trovestack doctor (or its alias trovestack status) -f json."""
    command = ('trovestack', 'status') if alias else ('trovestack', 'doctor')
    result = helpers.run(*command, '--os-cloud', local_cloud.admin_cloud,
                         *args, '-f', 'json', env=local_cloud.env(),
                         check=False)
    rows = json.loads(result.stdout)
    return result, {row['Check']: row for row in rows}


def test_doctor_names_what_is_missing_then_passes(local_cloud, tmp_path):
    datastore = support.unique('doctor')
    conf = tmp_path / 'tempest.conf'

    result, checks = _doctor(local_cloud, '--datastore',
                             f'{datastore}:1.0', '--tempest-conf', conf)
    assert result.returncode == 1
    for service in ('identity', 'image', 'compute', 'database'):
        assert checks[f'service {service}']['Result'] == 'ok'
    missing = checks[f'datastore {datastore}:1.0']
    assert missing['Result'] == 'missing'
    assert f"datastore '{datastore}' is not registered" in missing['Detail']
    assert checks['tempest config']['Result'] == 'missing'
    assert f'datastore {datastore}:1.0' in result.stderr

    image = support.make_raw_image(tmp_path / 'guest.img')
    support.load(local_cloud, image, datastore, '1.0', '--manager', 'mysql')
    result, checks = _doctor(local_cloud, '--datastore', datastore)
    assert checks[f'datastore {datastore}']['Result'] == 'missing'
    assert 'has no default version' in \
        checks[f'datastore {datastore}']['Detail']

    support.activate(local_cloud, datastore, '1.0')
    env = local_cloud.env()
    helpers.run('trovestack', 'flavors', '--flavor-set', 'tempest',
                '--os-cloud', local_cloud.admin_cloud, env=env)
    helpers.run('trovestack', 'test-config', '--tempest-conf', conf,
                '--datastore', datastore, '--os-cloud',
                local_cloud.admin_cloud, env=env)

    result, checks = _doctor(local_cloud, '--datastore', f'{datastore}:1.0',
                             '--tempest-conf', conf, alias=True)
    assert result.returncode == 0, result.stderr
    agent = checks.pop(f'datastore {datastore}:1.0 guest agent')
    assert agent['Result'] == 'info'  # an image without its agent's source
    assert {row['Result'] for row in checks.values()} == {'ok'}
    assert checks[f'datastore {datastore}:1.0 image']['Detail'].endswith(
        'is active and tagged trove')
    assert checks['flavor flavor_id']['Detail'].startswith('d3 ')


def test_doctor_flags_an_inactive_version(local_cloud, tmp_path):
    datastore = support.unique('doctor')
    image = support.make_raw_image(tmp_path / 'guest.img')
    support.load(local_cloud, image, datastore, '1.0', '--manager', 'mysql',
                 '--default')
    support.load(local_cloud, image, datastore, '2.0', '--manager', 'mysql')

    result, checks = _doctor(local_cloud, '--datastore', f'{datastore}:2.0')
    row = checks[f'datastore {datastore}:2.0']
    assert result.returncode == 1
    assert row['Result'] == 'failed'
    assert 'not the default (default: 1.0)' in row['Detail']


def test_doctor_refuses_unknown_cloud_in_one_line(local_cloud):
    result = helpers.run('trovestack', 'doctor', '--os-cloud', 'nowhere',
                         env=local_cloud.env(), check=False)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and 'nowhere' in lines[0]


def test_doctor_compares_the_images_guest_agent_with_the_cloud(local_cloud,
                                                               tmp_path):
    """The default version's image records its agent's source in Glance;
    doctor warns (exit status unchanged) when it is not the Trove the
    local cloud runs, and says "unknown" for an image without it."""
    datastore = support.unique('agent')
    image = support.make_raw_image(tmp_path / 'guest.img')
    _, data = support.load(local_cloud, image, datastore, '1.0',
                           '--manager', 'mysql', '--default')
    label = f'datastore {datastore} guest agent'
    args = ('--datastore', datastore, '--state-dir', local_cloud.state_dir)

    _, checks = _doctor(local_cloud, *args)
    assert checks[label]['Result'] == 'info'
    assert 'records no guest agent source' in checks[label]['Detail']

    ours = trove_source.of_cloud(local_cloud.state_dir)
    other = 'tree:/src/trove@' + 'a' * 40
    assert ours.identity() != other
    conn = local_cloud.connection()
    conn.image.update_image(data['image_id'], trove_agent_source=other,
                            trove_agent_version='27.0.0.dev1')
    result, checks = _doctor(local_cloud, *args)
    row = checks[label]
    assert row['Result'] == 'warning', row
    assert f'the control plane runs {ours.identity()}' in row['Detail']
    assert f'{label}: image' in result.stderr  # said on stderr as well
    assert label not in doctor_problems(result)

    # not the local cloud (another state directory): nothing to compare
    _, checks = _doctor(local_cloud, '--datastore', datastore,
                        '--state-dir', tmp_path / 'elsewhere')
    assert checks[label]['Result'] == 'info'
    assert "control plane's Trove is unknown" in checks[label]['Detail']

    conn.image.update_image(data['image_id'],
                            trove_agent_source=ours.identity())
    _, checks = _doctor(local_cloud, *args)
    assert checks[label]['Result'] == 'ok', checks[label]


def doctor_problems(result):
    """The checks doctor's error line names as not ok."""
    return ''.join(line for line in result.stderr.splitlines()
                   if 'Not ready for Trove tests' in line)

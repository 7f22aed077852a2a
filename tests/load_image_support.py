"""Helpers for the load-trove-image and activate-trove-image tests."""

import json
import os
import subprocess
import uuid

import yaml

from tests import helpers

MiB = 1024 * 1024


def unique(prefix):
    return f'{prefix}-{uuid.uuid4().hex[:8]}'


def make_raw_image(path, size=2 * MiB):
    """A raw image with unique content (random bytes after a zero MBR)."""
    with open(path, 'wb') as stream:
        stream.write(b'\0' * 512)
        left = size - 512
        while left > 0:
            block = os.urandom(min(MiB, left))
            stream.write(block)
            left -= len(block)
    return path


def make_qcow2_image(path, size='64M'):
    subprocess.run(['qemu-img', 'create', '-f', 'qcow2', str(path), size],
                   check=True, capture_output=True)
    return path


def load(local_cloud, image, datastore, version, *extra, env=None,
         check=True, cloud=None):
    """Run load-trove-image -f json; returns (CompletedProcess, dict|None)."""
    result = helpers.run(
        'load-trove-image', image, '--datastore', datastore, '--version',
        version, '--os-cloud', cloud or local_cloud.admin_cloud, *extra,
        '-f', 'json', env=env or local_cloud.env(), check=check)
    data = json.loads(result.stdout) if result.returncode == 0 else None
    return result, data


def activate(local_cloud, datastore, version, *extra, check=True):
    result = helpers.run(
        'activate-trove-image', datastore, version, '--os-cloud',
        local_cloud.admin_cloud, *extra, '-f', 'json', env=local_cloud.env(),
        check=check)
    data = json.loads(result.stdout) if result.returncode == 0 else None
    return result, data


def error_lines(result):
    """stderr lines, minus blank ones."""
    return [line for line in result.stderr.splitlines() if line.strip()]


def images_named(conn, name):
    return sorted(image.id for image in conn.image.images(name=name))


def clouds_yaml_copy(local_cloud, path, **changes):
    """Write a clouds.yaml copy whose admin cloud has ``changes`` applied.

    Keys of ``changes`` are cloud-level settings; ``auth`` entries update
    the auth dict (a value of None removes the key).
    """
    clouds = yaml.safe_load(local_cloud.clouds_yaml.read_text())
    admin = clouds['clouds'][local_cloud.admin_cloud]
    for key, value in changes.items():
        if key == 'auth':
            for auth_key, auth_value in value.items():
                if auth_value is None:
                    admin['auth'].pop(auth_key, None)
                else:
                    admin['auth'][auth_key] = auth_value
        else:
            admin[key] = value
    path.write_text(yaml.safe_dump(clouds))
    return local_cloud.env(OS_CLIENT_CONFIG_FILE=str(path))


def admin_password(local_cloud):
    clouds = yaml.safe_load(local_cloud.clouds_yaml.read_text())
    return clouds['clouds'][local_cloud.admin_cloud]['auth']['password']


def cli_json(local_cloud, *args):
    """The real `openstack` CLI, -f json, against the admin cloud."""
    result = helpers.run('openstack', '--os-cloud', local_cloud.admin_cloud,
                         *args, '-f', 'json', env=local_cloud.env())
    return json.loads(result.stdout)

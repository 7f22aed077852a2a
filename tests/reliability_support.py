"""What the reliability test and benchmark share: starting load-trove-image
runs (plain, concurrent, or dying at a crash point) and checking the end
state of Glance and Trove for leftovers."""

import json
import pathlib
import subprocess
import sys
import time

from tests import helpers

REPO = pathlib.Path(__file__).resolve().parents[1]
PARTIAL_STATUSES = ('queued', 'saving', 'importing', 'uploading', 'killed')


# Generous: these runs share a busy machine with the cloud they talk to.
API_TIMEOUT = ('--api-timeout', '60')


def load_argv(image, datastore, version, cloud, *extra):
    return [str(image), '--datastore', datastore, '--version', version,
            '--manager', 'mysql', '--os-cloud', cloud, *API_TIMEOUT,
            *map(str, extra), '-f', 'json']


def start_load(argv, env, point=None, action='kill'):
    """Popen of load-trove-image; with ``point``, one that sends itself
    SIGKILL/SIGSTOP there (tests.crashpoints)."""
    if point is None:
        command = [str(helpers.BIN / 'load-trove-image'), *argv]
    else:
        command = [sys.executable, '-m', 'tests.crashpoints', point, action,
                   'load-trove-image', *argv]
        env = dict(env, PYTHONPATH=str(REPO))
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)


def finish(process, timeout=600):
    """(returncode, decoded -f json output or None, stderr)."""
    out, err = process.communicate(timeout=timeout)
    data = json.loads(out) if process.returncode == 0 and out else None
    return process.returncode, data, err


def concurrent_loads(argv, env, runs):
    """Start ``runs`` identical loads at once; their finish() results."""
    processes = [start_load(argv, env) for _ in range(runs)]
    return [finish(process) for process in processes]


def wait_stopped(process, timeout=60):
    """Wait until a process is stopped (SIGSTOP), i.e. at its crash point."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f'/proc/{process.pid}/stat') as stream:
                state = stream.read().rsplit(')', 1)[1].split()[0]
        except OSError:
            state = 'gone'
        if state == 'T':
            return
        if process.poll() is not None:
            raise AssertionError(f'process exited {process.returncode} '
                                 f'before its crash point: '
                                 f'{process.stderr.read()}')
        time.sleep(0.05)
    raise AssertionError('process did not reach its crash point')


def glance_images(conn, name):
    """Glance's JSON of every image called ``name``."""
    response = conn.image.get('/images', params={'name': name,
                                                 'limit': 1000})
    return response.json()['images']


def leftovers(conn, trove, *, name, sha256, datastore, versions):
    """What is wrong with the end state, as a list of sentences (empty when
    it converged): exactly one active image with this content, nothing
    partial under the name, exactly one datastore version per name, each
    pointing at that image."""
    from load_image import images as images_lib

    problems = []
    found = glance_images(conn, name)
    same = [i for i in found if i.get(images_lib.SHA256_PROPERTY) == sha256
            and i['status'] == 'active']
    if len(same) != 1:
        problems.append(f'{len(same)} active images of the content')
    problems += [f'image {i["id"]} is {i["status"]}' for i in found
                 if i['status'] in PARTIAL_STATUSES]
    registered = [v for v in trove.mgmt_ds_versions.list()
                  if v.datastore_name == datastore]
    names = [v.name for v in registered]
    problems += [f'{names.count(n)} versions {datastore} {n}'
                 for n in sorted(set(names)) if names.count(n) > 1]
    for version in versions:
        matching = [v for v in registered if v.name == version]
        if len(matching) != 1:
            problems.append(f'{len(matching)} versions {datastore} '
                            f'{version}')
        elif same and matching[0].image != same[0]['id']:
            problems.append(f'version {datastore} {version} points at '
                            f'{matching[0].image}, not {same[0]["id"]}')
    return problems


def flavor_set(conn):
    return sorted((f.id, f.name, f.ram, f.disk, f.vcpus, f.ephemeral)
                  for f in conn.compute.flavors(details=True, is_public=None))

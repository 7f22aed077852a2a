"""zuul.d/ is consistent: every job, parent, nodeset, playbook, sample
localrc and datastore it names exists, and the functional jobs use their
sample localrc's settings."""

import pathlib
import re

import pytest
import yaml

from trovestack.images.guest import plugins

ROOT = pathlib.Path(__file__).resolve().parents[1]
ZUUL_DIR = ROOT / 'zuul.d'
# Jobs and nodesets that come from other projects (zuul-jobs, devstack).
UPSTREAM_JOBS = {'base', 'devstack', 'devstack-tempest',
                 'devstack-multinode'}
UPSTREAM_NODESETS = {'openstack-single-node-noble',
                     'openstack-two-node-noble'}
PIPELINES = ('check', 'gate', 'experimental')
PLAYBOOK_KEYS = ('pre-run', 'run', 'post-run', 'cleanup-run')
_SETTING = re.compile(r'^(?P<key>[A-Z][A-Z0-9_]*)=(?P<value>\S*)\s*$')


def _documents():
    documents = []
    for path in sorted(ZUUL_DIR.glob('*.yaml')):
        documents.extend(yaml.safe_load(path.read_text()) or [])
    return documents


def _of_kind(kind):
    return {item[kind]['name']: item[kind] for item in _documents()
            if kind in item and 'name' in item[kind]}


JOBS = _of_kind('job')
NODESETS = _of_kind('nodeset')


def _project_jobs():
    projects = [item['project'] for item in _documents() if 'project' in item]
    assert projects, 'zuul.d has no project stanza'
    names = []
    for project in projects:
        for pipeline in PIPELINES:
            for entry in project.get(pipeline, {}).get('jobs', []):
                names.append(next(iter(entry)) if isinstance(entry, dict)
                             else entry)
    return names


def _job_vars(name):
    """vars of a job merged over its parents' (one level of dicts)."""
    chain = []
    while name in JOBS:
        chain.append(JOBS[name])
        name = JOBS[name].get('parent')
    merged = {}
    for job in reversed(chain):
        for key, value in job.get('vars', {}).items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
    return merged


def _sample_settings(path):
    """KEY=value lines of a sample's [[local|localrc]] section."""
    settings, in_localrc = {}, True
    for line in path.read_text().splitlines():
        header = re.match(r'^\[\[\s*([^|]+?)\s*\|\s*([^\]]+?)\s*\]\]', line)
        if header:
            in_localrc = header.groups() == ('local', 'localrc')
            continue
        match = _SETTING.match(line)
        if in_localrc and match:
            settings[match.group('key')] = match.group('value')
    return settings


def test_yaml_parses_and_defines_jobs():
    assert JOBS
    for document in _documents():
        assert isinstance(document, dict) and len(document) == 1


def test_project_jobs_are_defined():
    for name in _project_jobs():
        assert name in JOBS, f'project runs undefined job {name}'


@pytest.mark.parametrize('name', sorted(JOBS))
def test_parent_is_defined_here_or_upstream(name):
    parent = JOBS[name].get('parent')
    assert parent in JOBS or parent in UPSTREAM_JOBS, \
        f'{name}: unknown parent {parent}'


@pytest.mark.parametrize('name', sorted(JOBS))
def test_nodeset_is_defined(name):
    nodeset = JOBS[name].get('nodeset')
    if nodeset is None or isinstance(nodeset, dict):
        return
    assert nodeset in NODESETS or nodeset in UPSTREAM_NODESETS


@pytest.mark.parametrize('name', sorted(JOBS))
def test_playbooks_exist(name):
    for key in PLAYBOOK_KEYS:
        value = JOBS[name].get(key)
        for playbook in [value] if isinstance(value, str) else value or []:
            assert (ROOT / playbook).is_file(), f'{name}: {playbook} missing'
            yaml.safe_load((ROOT / playbook).read_text())


def test_every_datastore_plugin_has_an_image_build_job():
    known = set(plugins.datastores())
    built = {_job_vars(name).get('trovestack_image_datastore')
             for name in JOBS if not JOBS[name].get('abstract')}
    built.discard(None)
    assert built, 'no image-build job'
    assert built <= known, f'unknown datastores: {built - known}'
    assert known <= built, f'no image-build job for {known - built}'


@pytest.mark.parametrize('name', sorted(JOBS))
def test_sample_localrc_exists_and_matches(name):
    job_vars = _job_vars(name)
    sample = job_vars.get('trovestack_sample_localrc')
    if sample is None:
        return
    path = ROOT / sample
    assert path.is_file() and path.parent == ROOT / 'samples' / 'localrc'
    settings = _sample_settings(path)
    localrc = job_vars.get('devstack_localrc', {})
    for key, value in localrc.items():
        if key.startswith('TROVE_'):
            assert settings.get(key) == str(value), \
                f'{name}: {key}={value} but {sample} has {settings.get(key)}'
    for key, value in settings.items():
        if key.startswith('TROVE_'):
            assert str(localrc.get(key)) == value, \
                f'{name}: {sample} sets {key}={value}, the job does not'
    assert 'trovestack' in job_vars.get('devstack_plugins', {})


@pytest.mark.parametrize('name', sorted(JOBS))
def test_datastores_in_job_vars_are_known(name):
    known = set(plugins.datastores())
    value = str(_job_vars(name).get('devstack_localrc', {})
                .get('TROVE_DATASTORES', ''))
    for item in filter(None, value.split(',')):
        assert item.split(':')[0] in known, f'{name}: {item}'


def test_multinode_job_uses_a_multinode_nodeset():
    multinode = [job for job in JOBS.values() if 'nodeset' in job]
    assert multinode
    for job in multinode:
        nodeset = NODESETS.get(job['nodeset'])
        if nodeset is not None:
            assert len(nodeset['nodes']) >= 2


def test_image_build_jobs_name_buildable_versions():
    from trovestack.images.datastore import datastores as offline

    known = plugins.datastores()
    for name in JOBS:
        job_vars = _job_vars(name)
        datastore = job_vars.get('trovestack_image_datastore')
        if datastore is None or JOBS[name].get('abstract'):
            continue
        version = str(job_vars.get('trovestack_image_datastore_version'))
        assert version in known[datastore].versions, f'{name}: {version}'
        if job_vars.get('trovestack_image_embed'):
            assert f'{datastore}:{version}' in offline.supported(), \
                f'{name}: no offline image of {datastore} {version}'


FULL_JOBS = [name for name in JOBS
             if name.startswith('trovestack-tempest-full')]


@pytest.mark.parametrize('name', FULL_JOBS)
def test_full_jobs_run_gate_tests_full_profile_with_object_storage(name):
    """The zuul jobs of the full profile select what "gate-tests --profile
    full" selects, and have Swift for the backups."""
    from trovestack.testenv import tempest_runner

    job_vars = _job_vars(name)
    assert job_vars['tempest_test_regex'] == tempest_runner.PROFILES['full']
    assert job_vars['devstack_services']['s-proxy'] is True
    assert job_vars['devstack_localrc'][
        'TROVE_DATASTORE_IMAGE_SOURCE'] == 'registry'

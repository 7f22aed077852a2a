"""The guest image devstack up builds on the host for the container."""

import pytest

from trovestack.common.errors import UserError
from trovestack.devstack_env import guest
from trovestack.images.guest import guest_agent
from trovestack.orchestration import kickstart


def test_sample_datastores_reads_the_samples():
    assert guest.sample_datastores(
        kickstart.SAMPLES_DIR / 'mariadb.conf') == ['mariadb:11.8']
    assert guest.sample_datastores(
        kickstart.SAMPLES_DIR / 'embedded-images.conf') == [
        'mariadb:11.8', 'postgresql:17']


def test_sample_datastores_default_and_last_assignment(tmp_path):
    sample = tmp_path / 's.conf'
    sample.write_text('[[local|localrc]]\nADMIN_PASSWORD=x\n')
    assert guest.sample_datastores(sample) == list(guest.DEFAULT_DATASTORES)
    sample.write_text('TROVE_DATASTORES=mysql:8.4\n'
                      'TROVE_DATASTORES="postgresql:17"\n')
    assert guest.sample_datastores(sample) == ['postgresql:17']


def test_sample_datastores_refuses_a_bad_entry(tmp_path):
    sample = tmp_path / 's.conf'
    sample.write_text('TROVE_DATASTORES=mariadb\n')
    with pytest.raises(UserError, match='not datastore:version'):
        guest.sample_datastores(sample)


def test_build_request_embeds_every_datastore_and_takes_the_tree(tmp_path):
    request = guest.build_request(['mariadb:11.8', 'postgresql:17'],
                                  tmp_path / 'trove')
    assert (request.datastore, request.datastore_version) == (
        'mariadb', '11.8')
    assert request.embed_datastore_images == ('mariadb:11.8',
                                              'postgresql:17')
    assert request.agent_source == guest_agent.LOCAL
    assert request.agent_path == str(tmp_path / 'trove')

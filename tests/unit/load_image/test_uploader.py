"""Unit tests of load_image.uploader and of how ensure_image() treats the
images of other uploaders (stub Glance)."""

import datetime
import os
import subprocess
from unittest import mock

import pytest

from load_image import images
from load_image import uploader as uploaders
from tests.unit.load_image import test_images as support

NOW = datetime.datetime(2026, 11, 23, 22, 0, tzinfo=datetime.timezone.utc)


def _dead_process():
    """An uploader record of a process that has exited on this machine."""
    child = subprocess.Popen(['true'])
    start = uploaders.process_start(child.pid)
    child.wait()
    me = uploaders.Uploader.current()
    return uploaders.Uploader(me.host, me.machine, child.pid, start or '1')


def _elsewhere():
    return uploaders.Uploader('other-host', 'other-boot/pid:[1]', 1, '5')


def _partial(image_id, sha256, uploader, updated_at='2026-11-23T21:59:59Z'):
    image = {'id': image_id, 'name': 'guest', 'status': 'saving',
             'created_at': '2026-11-23T21:00:00Z', 'updated_at': updated_at,
             images.SHA256_PROPERTY: sha256}
    image.update(uploader.properties())
    return image


def test_current_process_is_running_and_recorded():
    me = uploaders.Uploader.current()
    assert me.pid == os.getpid() and me.running()
    assert uploaders.Uploader.of_image(me.properties()) == me
    assert uploaders.Uploader.of_image({'name': 'x'}) is None


@pytest.mark.parametrize('who, updated_at, expected', [
    ('parent', '2026-11-23T21:59:59Z', False),   # alive here
    ('dead', '2026-11-23T21:59:59Z', True),      # gone here
    ('elsewhere', '2026-11-23T21:59:59Z', False),  # recent there
    ('elsewhere', '2026-11-23T20:00:00Z', True),   # silent for 2 h there
])
def test_abandoned(who, updated_at, expected):
    me = uploaders.Uploader.current()
    parent = uploaders.Uploader(me.host, me.machine, os.getppid(),
                                uploaders.process_start(os.getppid()))
    uploader = {'parent': parent, 'dead': _dead_process(),
                'elsewhere': _elsewhere()}[who]
    image = _partial('p', 'x', uploader, updated_at)
    assert uploaders.abandoned(image, me, NOW, 3600) is expected


def test_own_earlier_attempt_is_a_leftover_but_the_current_one_is_not():
    me = uploaders.Uploader.current()
    image = _partial('p', 'x', me)
    assert uploaders.abandoned(image, me, NOW, 3600, current_id='other')
    assert not uploaders.abandoned(image, me, NOW, 3600, current_id='p')


def test_dead_partial_images_are_removed_and_replaced(tmp_path):
    image_file = support._image_file(tmp_path)
    stale = _partial('stale', image_file.sha256, _dead_process())
    glance = support._StubGlance([204], existing=[stale])
    result = images.ensure_image(support._conn(glance), image_file,
                                 name='guest')
    assert (result.id, result.action, result.removed) == (
        'id-0', 'uploaded', ('stale',))
    assert glance.deleted == ['stale']


def test_a_live_upload_elsewhere_is_waited_for_not_touched(tmp_path):
    image_file = support._image_file(tmp_path)
    live = _partial('live', image_file.sha256, _elsewhere())
    glance = support._StubGlance([], existing=[live])
    polls = []

    def finish_upload(seconds):
        polls.append(seconds)
        if len(polls) == 2:
            live.update(status='active', os_hash_algo='sha512',
                        os_hash_value=image_file.sha512)

    with mock.patch('time.sleep', finish_upload):
        result = images.ensure_image(support._conn(glance), image_file,
                                     name='guest')
    assert (result.id, result.action, glance.created, glance.deleted) == (
        'live', 'reused', [], [])


def test_an_older_record_of_the_same_content_wins_the_claim(tmp_path):
    image_file = support._image_file(tmp_path)
    glance = support._StubGlance([204])
    older = _partial('older', image_file.sha256, _elsewhere())
    real_post = glance.post

    def post_while_another_run_posts(url, json):
        glance.existing.append(older)  # created first, seen only now
        return real_post(url, json)

    def another_run_finishes(seconds):
        older.update(status='active', os_hash_algo='sha512',
                     os_hash_value=image_file.sha512)

    glance.post = post_while_another_run_posts
    with mock.patch('time.sleep', another_run_finishes):
        result = images.ensure_image(support._conn(glance), image_file,
                                     name='guest')
    assert (result.id, result.action) == ('older', 'reused')
    assert glance.deleted == ['id-0'] and glance.uploaded == {}

"""trovestack.common.files: the build output lock."""

import fcntl

import pytest

from trovestack.common import files


def test_output_lock_excludes_a_second_holder(tmp_path):
    output = tmp_path / 'images' / 'guest.qcow2'
    lock_file = files.lock_path(output)
    assert lock_file == files.lock_path(tmp_path / 'images' / '.'
                                        / 'guest.qcow2')
    with files.output_lock(output):
        with open(lock_file, 'a') as other:
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with open(lock_file, 'a') as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again
    assert not (tmp_path / 'images').exists()

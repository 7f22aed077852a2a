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


def test_exclusive_lock_says_when_it_waits(tmp_path):
    """A second holder waits for the first, and says so before it does;
    a free lock is taken without a word."""
    import threading

    lock = tmp_path / 'build.lock'
    said, order = [], []
    with files.exclusive_lock(lock, on_wait=lambda: said.append('first')):
        def second():
            with files.exclusive_lock(lock,
                                      on_wait=lambda: said.append('wait')):
                order.append('second')

        thread = threading.Thread(target=second)
        thread.start()
        thread.join(0.3)
        order.append('first done')
    thread.join(5)
    assert said == ['wait']
    assert order == ['first done', 'second']

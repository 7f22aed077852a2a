"""Pid files name only our processes, also while one is inside execve."""

import subprocess
import sys

from trovestack.cloud import processes


def _start(tmp_path, argv, marker):
    pid_file = tmp_path / 'p.pid'
    pid = processes.start(argv, pid_file, tmp_path / 'p.log',
                          env={'TROVESTACK_TEST_OWNER': marker})
    return pid, pid_file


def test_a_process_that_execs_again_is_ours_from_the_start(tmp_path):
    # `env` execs python: the way `ip netns exec` starts a daemon. Read at
    # once, the kernel shows an empty command line or environment during
    # the second exec; that read must not make the daemon look foreign.
    marker = str(tmp_path / 'owner')
    for _ in range(20):
        pid, pid_file = _start(
            tmp_path, ['env', sys.executable, '-c',
                       'import time; time.sleep(5)'], marker)
        try:
            assert processes.read_pid(pid_file, marker) == pid
        finally:
            assert processes.stop(pid_file, marker, wait=5)


def test_a_foreign_or_gone_process_is_not_ours(tmp_path):
    pid, pid_file = _start(tmp_path, ['sleep', '5'], str(tmp_path / 'a'))
    try:
        assert processes.read_pid(pid_file, str(tmp_path / 'b')) is None
    finally:
        assert processes.stop(pid_file, str(tmp_path / 'a'), wait=5)
    pid_file.write_text(f'{pid}\n')
    assert processes.read_pid(pid_file, str(tmp_path / 'a')) is None


def test_an_exited_child_is_not_alive(tmp_path):
    marker = str(tmp_path / 'owner')
    pid, pid_file = _start(tmp_path, ['true'], marker)
    subprocess.run(['sleep', '0.3'], check=True)  # it exits, unreaped
    assert processes.read_pid(pid_file, marker) is None

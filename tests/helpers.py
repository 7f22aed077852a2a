"""Small helpers shared by the tests: running the project's commands."""

import json
import pathlib
import subprocess
import sys

BIN = pathlib.Path(sys.executable).parent


def run(command, *args, env=None, check=True, timeout=600):
    """Run a console script of the venv; returns CompletedProcess (text)."""
    result = subprocess.run([str(BIN / command), *map(str, args)],
                            capture_output=True, text=True, env=env,
                            timeout=timeout, stdin=subprocess.DEVNULL)
    if check and result.returncode != 0:
        raise AssertionError(
            f'{command} {" ".join(map(str, args))} exited '
            f'{result.returncode}\nstdout:\n{result.stdout}\n'
            f'stderr:\n{result.stderr}')
    return result


def run_json(command, *args, env=None):
    """Run a command with ``-f json`` and decode its output."""
    return json.loads(run(command, *args, '-f', 'json', env=env).stdout)

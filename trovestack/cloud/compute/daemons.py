"""The compute layer's processes: their health, short commands, errors.

Each long-running process is a :class:`trovestack.cloud.supervision.Program`
run by the cloud's supervisor."""

import dataclasses
import os
import pathlib
import socket
import subprocess
from collections.abc import Mapping
from collections.abc import Sequence

from trovestack.cloud import LocalCloudError
from trovestack.cloud import supervision
from trovestack.common import netns as netns_mod


class ComputeError(LocalCloudError):
    """A compute-layer service could not be started."""


def unix_socket_answers(path: pathlib.Path | str) -> bool:
    """True when something accepts connections on the unix socket."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(str(path))
        except OSError:
            return False
        return True


@dataclasses.dataclass(frozen=True)
class Health:
    """How one process is doing, for ``cloud status``."""

    name: str
    condition: str
    pid: int | None
    where: str
    crashes: int = 0
    last_error: str = ''


def health(supervisor: supervision.Supervisor,
           program: supervision.Program) -> Health:
    status = supervisor.status(program.name)
    answers = status.running and (program.ready is None or program.ready())
    return Health(program.name, supervision.condition(status, answers),
                  status.pid if status.running else None,
                  f'netns {program.netns}' if program.netns else 'host',
                  status.crashes, status.last_error)


def run(
        argv: Sequence[str | os.PathLike[str]], *, netns: str | None = None,
        check: bool = True, env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a short command (optionally inside netns); its CompletedProcess."""
    result = subprocess.run(netns_mod.inside(netns, argv), capture_output=True,
                            text=True, env={**os.environ, **(env or {})})
    if check and result.returncode != 0:
        raise ComputeError(f'{" ".join(map(str, argv))} failed: '
                           f'{(result.stderr or result.stdout).strip()}')
    return result

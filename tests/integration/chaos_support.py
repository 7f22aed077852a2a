"""Kill each process of a compute cloud in turn, watch it come back.

Shared by tests/integration/test_compute.py (the chaos test) and
benchmarks/bench_chaos.py (the per-daemon recovery table).
"""

import dataclasses
import time

import psutil

from trovestack.cloud import supervision
from trovestack.cloud.compute import cloud as compute_cloud
from trovestack.common import waiting

RECOVERY_TIMEOUT = 300.0


@dataclasses.dataclass
class Recovery:
    """What happened after one process was killed."""

    name: str
    restarted: bool
    restart_seconds: float
    answered: bool
    answer_seconds: float
    error: str = ''


def programs(cloud, layer):
    """Every supervised program of the compute cloud, in start order."""
    state, cstate = cloud.state, layer.state
    control = cloud.programs(state)
    compute = layer.daemons(cstate, list(state.ports.values()),
                            guest_ports=compute_cloud.guest_ports(cloud))
    return [*control, *compute]


def kill_and_recover(cloud, program, trove_call,
                     timeout=RECOVERY_TIMEOUT) -> Recovery:
    """SIGKILL the program's process; wait until its supervisor runs a new
    one that answers its probe, then until ``trove_call()`` answers."""
    supervisor = cloud.supervisor
    old = supervisor.pid(program.name)
    if old is None:
        return Recovery(program.name, False, 0.0, False, 0.0, 'not running')
    began = time.monotonic()
    psutil.Process(old).kill()

    def back():
        status = supervisor.status(program.name)
        if status.state != supervision.RUNNING or status.pid in (None, old):
            return False
        return program.ready is None or program.ready()

    try:
        waiting.wait_for(f'{program.name} restarted', back, timeout,
                         interval=0.5)
    except waiting.WaitTimeout as exc:
        return Recovery(program.name, False, time.monotonic() - began,
                        False, 0.0, str(exc))
    restarted = time.monotonic() - began

    def answers():
        try:
            trove_call()
        except Exception:  # noqa: BLE001 - any failure: not yet
            return False
        return True

    try:
        waiting.wait_for('a Trove call to the instance', answers, timeout,
                         interval=2.0)
    except waiting.WaitTimeout as exc:
        return Recovery(program.name, True, restarted, False,
                        time.monotonic() - began, str(exc))
    return Recovery(program.name, True, restarted, True,
                    time.monotonic() - began)

"""Who is uploading a Glance image, and whether that upload can still finish.

Every image record ensure_image() creates carries its uploader's identity as
image properties: host name, machine (kernel boot id + pid namespace), pid
and the process start time.  A later run reads them back to tell a partial
image whose upload is still running (leave it alone, or wait for it) from
one left behind by a process that died (remove it):

* same machine: the uploader is alive when a process with that pid and that
  start time exists (a reused pid has another start time);
* another machine: processes there cannot be seen, so the image's
  ``updated_at`` age, by the Glance server's clock, decides: older than
  ``stale_after`` seconds means abandoned.
"""

import dataclasses
import datetime
import os
import socket
from typing import Any

HOST_PROPERTY = 'trovestack_upload_host'
MACHINE_PROPERTY = 'trovestack_upload_machine'
PID_PROPERTY = 'trovestack_upload_pid'
START_PROPERTY = 'trovestack_upload_pid_start'
PROPERTIES = (HOST_PROPERTY, MACHINE_PROPERTY, PID_PROPERTY, START_PROPERTY)


@dataclasses.dataclass(frozen=True)
class Uploader:
    """One process on one machine."""

    host: str
    machine: str
    pid: int
    start: str

    @classmethod
    def current(cls) -> 'Uploader':
        """This process."""
        pid = os.getpid()
        return cls(host=socket.gethostname(), machine=machine_id(), pid=pid,
                   start=process_start(pid) or '')

    @classmethod
    def of_image(cls, image: dict[str, Any]) -> 'Uploader | None':
        """The uploader recorded on a Glance image (a dict), or None."""
        try:
            return cls(host=image.get(HOST_PROPERTY, ''),
                       machine=image[MACHINE_PROPERTY],
                       pid=int(image[PID_PROPERTY]),
                       start=image.get(START_PROPERTY, ''))
        except (KeyError, TypeError, ValueError):
            return None

    def properties(self) -> dict[str, str]:
        """Image properties that record this uploader."""
        return {HOST_PROPERTY: self.host, MACHINE_PROPERTY: self.machine,
                PID_PROPERTY: str(self.pid), START_PROPERTY: self.start}

    def same_machine(self, other: 'Uploader') -> bool:
        return bool(self.machine) and self.machine == other.machine

    def running(self) -> bool:
        """True while this process exists (checkable on this machine only)."""
        return bool(self.start) and process_start(self.pid) == self.start

    def __str__(self) -> str:
        return f'{self.host} pid {self.pid}'


def machine_id() -> str:
    """Kernel boot id + pid namespace: processes with the same machine id
    see each other's pids.  Empty where /proc does not tell."""
    try:
        with open('/proc/sys/kernel/random/boot_id') as stream:
            boot_id = stream.read().strip()
        namespace = os.readlink('/proc/self/ns/pid')
    except OSError:
        return ''
    return f'{boot_id}/{namespace}'


def process_start(pid: int) -> str | None:
    """Start time of a process in clock ticks after boot, or None."""
    try:
        with open(f'/proc/{pid}/stat') as stream:
            fields = stream.read().rsplit(')', 1)[1].split()
    except (OSError, IndexError):
        return None
    # Field 22 of proc_pid_stat(5); fields[0] is field 3 (state).
    return fields[19] if len(fields) > 19 else None


def abandoned(image: dict[str, Any], me: Uploader,
              server_now: datetime.datetime, stale_after: float, *,
              current_id: str | None = None) -> bool:
    """True when nobody can still be working on this Glance image.

    ``me`` is this process, ``current_id`` the image it is uploading right
    now (any other image recorded as ours is a leftover of an earlier
    attempt).  An image without an uploader record is judged by age only.
    """
    uploader = Uploader.of_image(image)
    if uploader is not None and uploader.same_machine(me):
        if uploader == me:
            return image.get('id') != current_id
        return not uploader.running()
    return age(image, server_now) > stale_after


def age(image: dict[str, Any], server_now: datetime.datetime) -> float:
    """Seconds since the image last changed, by the server's clock."""
    stamp = image.get('updated_at') or image.get('created_at')
    if not stamp:
        return 0.0
    changed = datetime.datetime.fromisoformat(stamp.replace('Z', '+00:00'))
    if changed.tzinfo is None:
        changed = changed.replace(tzinfo=datetime.timezone.utc)
    return (server_now - changed).total_seconds()

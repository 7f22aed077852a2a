"""The crash watcher: a supervisord event listener of each supervisor.

Usage (supervisord runs it):
    python -m trovestack.cloud.crashwatch RECORD LOGDIR

For every program that exits on its own (a crash: our programs are
daemons) or dies while it starts, it counts the crash in RECORD (JSON,
what ``cloud status`` and the gate evidence read) with how it exited and
the last error its log shows.  supervisord restarts the program; one that
crashed ``GIVE_UP_AFTER`` times within ``WINDOW`` seconds is stopped and
marked ``given_up`` instead of being restarted forever.  supervisord's own
FATAL (a program that kept dying during start-up) is recorded the same
way.
"""

import json
import os
import pathlib
import re
import sys
import time
from typing import Any

from trovestack.cloud import supervision
from trovestack.common import files

GIVE_UP_AFTER = 5
WINDOW = 600.0
# (not "Segmentation" alone: ovs-vswitchd's start-up says "TCP Segmentation
# Offloading", and a restarted program may have logged its start already)
ERROR_LINE = re.compile(r'ERROR|CRITICAL|EMER|Traceback|[Ee]rror:|'
                        r'assert|Abort|Segmentation fault')


def last_error(log_dir: pathlib.Path | str, name: str) -> str:
    """How the program last exited (supervisord's words) and the last
    error-looking line of its log."""
    how = ''
    for line in _tail(pathlib.Path(log_dir) / 'supervisord.log', 400):
        if f'exited: {name} (' in line or f'gave up: {name} ' in line:
            how = line.split(': ', 1)[-1].strip()
    said = ''
    for line in _tail(pathlib.Path(log_dir) / f'{name}.log', 200):
        if ERROR_LINE.search(line):
            said = line.strip()
    return '; '.join(part for part in (how, said[-300:]) if part)


def _tail(path: pathlib.Path | str, count: int) -> list[str]:
    try:
        with open(path, 'rb') as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(handle.tell() - 65536, 0))
            return handle.read().decode(errors='replace').splitlines()[
                -count:]
    except OSError:
        return []


def note_crash(record: dict, name: str, now: float, error: str,
               fatal: bool = False) -> bool:
    """Count one crash of name in record; True when it is time to give
    up on it."""
    entry = record.setdefault(name, {'crashes': 0, 'times': [],
                                     'last_error': '', 'given_up': False})
    entry['crashes'] += 1
    entry['times'] = [t for t in entry['times'] if now - t < WINDOW] + [now]
    entry['last_error'] = error
    if fatal or len(entry['times']) >= GIVE_UP_AFTER:
        entry['given_up'] = True
    return entry['given_up'] and not fatal


def _give_up(rpc: Any, name: str) -> None:
    for _ in range(20):
        try:
            rpc.supervisor.stopProcess(name, False)
            return
        except Exception:  # noqa: BLE001 - not yet restarted: try again
            time.sleep(0.25)


def main(argv: list[str] | None = None) -> None:
    from supervisor import childutils

    record_path, log_dir = (argv or sys.argv[1:])[:2]
    rpc = childutils.getRPCInterface(os.environ)
    while True:
        headers, payload = childutils.listener.wait(sys.stdin, sys.stdout)
        event = headers.get('eventname', '')
        fields, _ = childutils.eventdata(payload + '\n')
        name = fields.get('processname', '')
        if name:
            # supervisord writes its own line after telling us.
            time.sleep(0.1)
            record = supervision.read_record(record_path)
            stop = note_crash(record, name, time.time(),
                              last_error(log_dir, name),
                              fatal=event == 'PROCESS_STATE_FATAL')
            files.write_atomic(record_path, json.dumps(record, indent=2),
                               mode=0o600)
            print(f'{event} {name}: {record[name]}', file=sys.stderr,
                  flush=True)
            if stop:
                _give_up(rpc, name)
        childutils.listener.ok(sys.stdout)


if __name__ == '__main__':
    main()

"""The cloud's one port policy and one state-file model."""

import dataclasses
import socket

from trovestack.cloud import processes
from trovestack.common import files


def test_a_base_port_gives_consecutive_ports_by_index():
    base = processes.free_port()
    ports = processes.allocate_ports(['a', 'b'], base_port=base)
    if all(processes.port_is_free(p) for p in (base, base + 1)):
        assert ports == {'a': base, 'b': base + 1}
    assert len(set(ports.values())) == 2


def test_a_taken_base_port_is_replaced_by_a_free_one():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        sock.listen()
        busy = sock.getsockname()[1]
        ports = processes.allocate_ports(['a'], base_port=busy)
    assert ports['a'] != busy


def test_without_fallback_the_asked_base_is_kept():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        sock.listen()
        busy = sock.getsockname()[1]
        ports = processes.allocate_ports(['a'], base_port=busy,
                                         fallback=False)
    assert ports['a'] == busy


def test_existing_ports_are_kept_and_none_is_given_twice():
    ports = processes.allocate_ports(
        ['a', 'b', 'c'], existing={'a': 40001}, taken=[40002],
        counts={'c': 4})
    assert ports['a'] == 40001
    assert 40002 not in ports.values()
    run = set(range(ports['c'], ports['c'] + 4))
    assert ports['b'] not in run and 40001 not in run


def test_an_existing_port_no_longer_usable_is_replaced():
    ports = processes.allocate_ports(['a'], existing={'a': 40001},
                                     usable=lambda port: False)
    assert ports['a'] != 40001


@dataclasses.dataclass
class _Record:
    host: str
    password: str


def test_records_round_trip_privately(tmp_path):
    path = tmp_path / 'state.json'
    assert files.load_record(path, _Record) is None
    files.save_record(path, _Record('h', 'secret'))
    assert files.load_record(path, _Record) == _Record('h', 'secret')
    assert path.stat().st_mode & 0o077 == 0
    files.save_record(path, {'host': 'h'})
    assert files.load_record(path, dict) == {'host': 'h'}

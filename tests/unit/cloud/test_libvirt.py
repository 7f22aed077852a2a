"""libvirt guests at cloud down: powered off cleanly, then forgotten
(virsh stood in for; the compute tests run the real one)."""

import types

from trovestack.cloud.compute import libvirt


class FakeVirsh:
    """Domains by name -> running?; a shutdown takes ``polls`` listings."""

    def __init__(self, domains, polls):
        self.domains = dict(domains)
        self.polls = polls
        self.calls = []

    def __call__(self, argv, check=False):
        command, rest = argv[3], argv[4:]
        self.calls.append((command, *rest))
        if command == 'list':
            if self.polls is not None and any(
                    call[0] == 'shutdown' for call in self.calls):
                if self.polls == 0:
                    self.domains = dict.fromkeys(self.domains, False)
                self.polls -= 1
            names = [name for name, running in self.domains.items()
                     if running or '--all' in rest]
            return types.SimpleNamespace(stdout='\n'.join(names) + '\n')
        if command in ('destroy', 'shutdown'):
            return types.SimpleNamespace(stdout='')
        if command == 'undefine':
            del self.domains[rest[0]]
        return types.SimpleNamespace(stdout='')


def _install(monkeypatch, virsh):
    monkeypatch.setattr(libvirt.daemons, 'run', virsh)
    monkeypatch.setattr(libvirt.waiting.time, 'sleep', lambda seconds: None)


def test_running_guests_of_the_cloud_are_shut_down(monkeypatch):
    virsh = FakeVirsh({'ns-1': True, 'ns-2': False, 'other-1': True}, 2)
    _install(monkeypatch, virsh)
    assert libvirt.shut_down_domains('ns-') == ['ns-1']
    assert ('shutdown', 'ns-1') in virsh.calls
    assert ('shutdown', 'other-1') not in virsh.calls
    assert not any(call[0] == 'destroy' for call in virsh.calls)


def test_a_guest_that_does_not_power_off_is_left_to_destroy(monkeypatch,
                                                            caplog):
    virsh = FakeVirsh({'ns-1': True}, None)   # never powers off
    _install(monkeypatch, virsh)
    clock = iter(range(0, 10_000, 30))
    monkeypatch.setattr(libvirt.waiting.time, 'monotonic', lambda: next(clock))
    assert libvirt.shut_down_domains('ns-', timeout=120) == ['ns-1']
    assert 'destroyed: ns-1' in caplog.text
    libvirt.forget_domains('ns-')
    assert ('destroy', 'ns-1') in virsh.calls
    assert virsh.domains == {}

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


def _paths(tmp_path):
    return types.SimpleNamespace(root=tmp_path / 'compute')


def test_libvirtd_runs_with_kvm_masked_and_the_clouds_qemu_conf(
        tmp_path, monkeypatch):
    """Where the host has /dev/kvm, libvirtd's own mount namespace binds a
    mode-0 file over it and the cloud's qemu.conf over the system one."""
    kvm = tmp_path / 'kvm'
    kvm.touch()
    qemu_conf = tmp_path / 'qemu.conf'
    qemu_conf.touch()
    monkeypatch.setattr(libvirt, 'QEMU_CONF', qemu_conf)
    argv = libvirt.libvirtd_argv(_paths(tmp_path), kvm_device=kvm)
    assert not (tmp_path / 'compute').exists()   # a declaration only
    libvirt.write_config(_paths(tmp_path), kvm_device=kvm)
    assert argv[:5] == ['unshare', '--mount', '--propagation', 'private',
                        '--']
    script, name, *binds, last = argv[7:]
    assert argv[5:7] == ['sh', '-c'] and name == 'libvirtd'
    assert last == libvirt.LIBVIRTD
    mask = tmp_path / 'compute' / 'no-kvm'
    conf = tmp_path / 'compute' / 'qemu.conf'
    assert binds == [str(conf), str(qemu_conf), str(mask), str(kvm)]
    assert mask.stat().st_mode & 0o777 == 0
    assert 'namespaces = [ ]' in conf.read_text()
    assert 'mount --bind "$1" "$2"' in script and 'exec "$1"' in script
    libvirt.write_config(_paths(tmp_path), kvm_device=kvm)
    again = libvirt.libvirtd_argv(_paths(tmp_path), kvm_device=kvm)
    assert again == argv
    assert mask.stat().st_mode & 0o777 == 0


def test_libvirtd_without_kvm_keeps_the_clouds_qemu_conf_only(
        tmp_path, monkeypatch):
    qemu_conf = tmp_path / 'qemu.conf'
    qemu_conf.touch()
    monkeypatch.setattr(libvirt, 'QEMU_CONF', qemu_conf)
    libvirt.write_config(_paths(tmp_path),
                         kvm_device=tmp_path / 'no-such-kvm')
    argv = libvirt.libvirtd_argv(_paths(tmp_path),
                                 kvm_device=tmp_path / 'no-such-kvm')
    assert (tmp_path / 'compute' / 'qemu.conf').exists()
    assert argv[-3:] == [str(tmp_path / 'compute' / 'qemu.conf'),
                         str(qemu_conf), libvirt.LIBVIRTD]
    assert not (tmp_path / 'compute' / 'no-kvm').exists()

import pytest

from trovestack.images.guest import errors
from trovestack.images.guest import host


def test_device_mapper_detected_from_proc_devices(tmp_path):
    devices = tmp_path / 'devices'
    devices.write_text('Block devices:\n  7 loop\n253 device-mapper\n')
    assert host.has_device_mapper(devices)
    devices.write_text('Block devices:\n  7 loop\n')
    assert not host.has_device_mapper(devices)


def test_missing_tools_name_the_debian_package(tmp_path):
    with pytest.raises(errors.BuildError) as e:
        host.check_tools(device_mapper=True, path=str(tmp_path))
    message = str(e.value)
    assert 'qemu-img' in message and 'qemu-utils' in message
    assert 'kpartx' in message
    assert 'apt-get install' in message


def test_kpartx_not_required_without_device_mapper(tmp_path):
    with pytest.raises(errors.BuildError) as e:
        host.check_tools(device_mapper=False, path=str(tmp_path))
    assert 'kpartx' not in str(e.value)


def test_not_root_is_refused():
    with pytest.raises(errors.BuildError, match='must run as root'):
        host.check_root(euid=1000)
    host.check_root(euid=0)


def test_low_disk_space_is_refused(tmp_path):
    with pytest.raises(errors.BuildError, match='Not enough disk space'):
        host.check_free_space([tmp_path / 'not' / 'yet'], 1 << 60)
    host.check_free_space([tmp_path], 1)

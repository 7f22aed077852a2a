"""The config drive: ISO 9660 labelled config-2 with nova's layout."""

import json
import shutil
import subprocess

import pytest

from trovestack.images.verify import configdrive

NETWORK = configdrive.GuestNetwork('fa:16:3e:00:99:0a', '10.99.0.10/24',
                                   '10.99.0.1')


def test_network_data_static_ipv4():
    data = NETWORK.network_data()
    assert data['links'][0]['ethernet_mac_address'] == NETWORK.mac
    net = data['networks'][0]
    assert (net['type'], net['ip_address'], net['netmask']) == (
        'ipv4', '10.99.0.10', '255.255.255.0')
    assert NETWORK.ip == '10.99.0.10'


@pytest.mark.skipif(not (shutil.which('genisoimage')
                         and shutil.which('isoinfo')),
                    reason='genisoimage not installed')
def test_drive_holds_injected_files_and_user_data(tmp_path):
    files = {'/etc/trove/conf.d/guest_info.conf': '[DEFAULT]\nguest_id=x\n',
             '/etc/docker/daemon.json': '{}'}
    drive = configdrive.write(tmp_path / 'cd.iso', instance_id='id-1',
                              hostname='h', injected_files=files,
                              network=NETWORK, user_data='#cloud-config\n')

    def read(path):
        return subprocess.run(['isoinfo', '-R', '-i', str(drive), '-x',
                               path], capture_output=True, text=True,
                              check=True).stdout

    label = subprocess.run(['isoinfo', '-d', '-i', str(drive)],
                           capture_output=True, text=True).stdout
    assert 'Volume id: config-2' in label
    meta = json.loads(read('/openstack/latest/meta_data.json'))
    assert meta['uuid'] == 'id-1'
    injected = {f['path']: read('/openstack' + f['content_path'])
                for f in meta['files']}
    assert injected == files
    assert json.loads(read('/openstack/latest/network_data.json')) == (
        NETWORK.network_data())
    assert read('/openstack/latest/user_data') == '#cloud-config\n'

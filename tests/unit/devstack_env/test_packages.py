"""devstack's package lists read as install_prereqs.sh reads them."""

import os
import pathlib

import pytest

from trovestack.devstack_env import packages

DEVSTACK = pathlib.Path(os.environ.get('TROVESTACK_DEVSTACK_DIR')
                        or '/work/shared/devstack')


def test_parse_package_file_markers():
    text = '\n'.join([
        'apache2',
        'default-jre-headless  # NOPRIME',
        'gettext  # used for compiling message catalogs',
        'open-iscsi-utils # Deprecated since quantal dist:precise',
        'only-here # dist:bookworm,noble',
        'never-here # not:bookworm',
        '',
        '# a comment line',
    ])
    assert packages.parse_package_file(text, 'bookworm') == [
        'apache2', 'gettext', 'only-here']


def test_package_files_follow_get_packages():
    files = packages.package_files(['key', 'n-api', 'n-cpu', 'g-api',
                                    'q-svc', 'mysql'])
    assert files == ['general', 'key', 'keystone', 'n-api', 'nova', 'glance',
                     'os-brick', 'n-cpu', 'g-api', 'q-svc', 'neutron-common',
                     'mysql']


def test_parse_bindep_platforms_and_profiles():
    text = '\n'.join([
        'qemu-utils [platform:dpkg]',
        'qemu-img [platform:rpm]',
        'debootstrap',
        'libpq-dev [platform:dpkg test]',
        'graphviz [doc]',
        'gcc [!platform:redhat]',
        'mysql-client [!platform:dpkg]',
        '# comment',
    ])
    assert packages.parse_bindep(text) == ['qemu-utils', 'debootstrap',
                                           'gcc']
    assert 'libpq-dev' in packages.parse_bindep(text, ['test'])


def test_later_packages_per_service():
    found = packages.later_packages(['mysql', 'rabbit', 'n-cpu',
                                     'ovn-controller', 'q-svc'])
    for name in ('mariadb-server', 'rabbitmq-server', 'uwsgi',
                 'libvirt-daemon-system', 'ovn-central',
                 'openvswitch-switch', 'radvd'):
        assert name in found
    assert 'mariadb-server' not in packages.later_packages(['key'])
    # Cinder's volume service here stores volumes in a Ceph cluster
    # (devstack_env.ceph) whose packages come with it.
    assert 'ceph-osd' in packages.later_packages(['c-vol'])
    assert 'python3-rbd' in packages.later_packages(['c-vol'])


def test_wanted_packages_from_a_devstack_tree(tmp_path):
    debs = tmp_path / 'files' / 'debs'
    debs.mkdir(parents=True)
    (debs / 'general').write_text('git\nbc\n')
    (debs / 'keystone').write_text('memcached\nlvm2 # NOPRIME\n')
    bindep = tmp_path / 'bindep.txt'
    bindep.write_text('kpartx\nqemu-img [platform:rpm]\n')
    wanted = packages.wanted_packages(tmp_path, ['key'], [bindep,
                                                          tmp_path / 'none'])
    assert {'git', 'bc', 'memcached', 'kpartx', 'sudo', 'uwsgi'} <= set(
        wanted)
    assert 'lvm2' not in wanted and 'qemu-img' not in wanted
    assert wanted == sorted(wanted)


@pytest.mark.skipif(not (DEVSTACK / 'files' / 'debs').is_dir(),
                    reason=f'no devstack checkout at {DEVSTACK}')
def test_wanted_packages_of_the_real_devstack():
    wanted = packages.wanted_packages(DEVSTACK, ['key', 'n-api', 'n-cpu',
                                                 'q-svc', 'mysql', 'rabbit',
                                                 'ovn-northd'])
    assert {'apache2', 'python3-dev', 'genisoimage', 'haproxy',
            'ovn-central', 'mariadb-server'} <= set(wanted)
    # NOPRIME and other distributions' lines stay out.
    assert 'mysql-server' not in wanted
    assert 'open-iscsi-utils' not in wanted

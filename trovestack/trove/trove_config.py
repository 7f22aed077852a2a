"""Trove's configuration for instances, from typed settings: one source.

The compute-enabled local cloud and the devstack plugin both turn
:class:`InstanceSettings` into ``{file: {section: {option: value}}}`` with
:func:`instance_config` and write it with :func:`apply`.  Every option name
is one Trove 26 registers in ``trove/common/cfg.py`` (the unit tests check
this against the installed Trove) and each lands in the file of the
process that reads it:

- ``trove.conf`` (trove-api, -taskmanager, -conductor): management network
  and security groups, keypair, config drive, ``[network]
  network_isolation`` (passed on to the guest in guest_info.conf),
  ``docker_insecure_registries`` (the API writes them into the guest's
  ``/etc/docker/daemon.json``), ``[<datastore>] volume_support``, the
  volume type and the timeouts the control plane waits with;
- ``trove-guestagent.conf`` (injected into every guest by the task manager
  at create time): ``[<datastore>] docker_image`` and
  ``backup_docker_image``, the guest's messaging URL and the timeouts the
  guest agent waits with.

Values are strings, as an INI file holds them; devstack-owned values
(passwords, endpoints, database URL) are not this module's business.
"""

import dataclasses
import pathlib
import re
import types
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from trovestack.common import ini
from trovestack.common import results

# {file name: {section: {option: value}}}
Config = dict[str, dict[str, dict[str, str]]]

TROVE_CONF = 'trove.conf'
GUESTAGENT_CONF = 'trove-guestagent.conf'
FILES = (TROVE_CONF, GUESTAGENT_CONF)
# The guest agent's systemd unit in this project's guest images (the
# trove-guest-agent element's TROVE_GUEST_AGENT_SERVICE): its journal is
# the agent's log.
AGENT_UNIT = 'guest-agent.service'

# Datastores whose guest agent manager (= Trove's config section) runs the
# database in a container in Trove 26, and the upstream image of each.
UPSTREAM_IMAGES = types.MappingProxyType({
    'mysql': 'quay.io/openstack.trove/mysql',
    'mariadb': 'quay.io/openstack.trove/mariadb',
    'postgresql': 'quay.io/openstack.trove/postgres',
})
DATASTORES = tuple(UPSTREAM_IMAGES)
# [<datastore>] ignore_users: Trove 26's own (its admin and the database's
# superuser) and the accounts a datastore image makes for itself (MariaDB's
# images, this project's and the official ones, check their health as
# 'healthcheck'@localhost, 127.0.0.1 and ::1).  Trove leaves them out of
# `database user list` and refuses them to users.
IGNORED_USERS = types.MappingProxyType({
    'mysql': ('os_admin', 'root'),
    'mariadb': ('os_admin', 'root', 'healthcheck'),
    'postgresql': ('os_admin', 'postgres'),
})
# Repository of this project's offline datastore images (trovestack
# build-datastore-image): embedded in the guest image under this name, or
# pushed to a registry under <registry>/<this name>; tag = version.
LOCAL_REPOSITORY = 'trovestack/{datastore}'
# The images backups and restores run in ([<datastore>]
# backup_docker_image; the agent appends ':<datastore version>'): Trove's
# devstack plugin's defaults, and this project's (trovestack
# build-datastore-image --backup), named alike.
UPSTREAM_BACKUP_IMAGES = types.MappingProxyType({
    'mysql': 'quay.io/openstack.trove/db-backup-mysql',
    'mariadb': 'quay.io/openstack.trove/db-backup-mariadb',
    'postgresql': 'quay.io/openstack.trove/db-backup-postgresql',
})
LOCAL_BACKUP_REPOSITORY = 'trovestack/db-backup-{datastore}'
# The login user of the guest images this project builds
# (trove-image-builder --guest-user).  Trove's own default owner of the
# files it injects, "ubuntu", is the user of the images Trove's tooling
# builds: cloud-init's write_files fails for an owner the image does not
# have, and the guest then gets guest_info.conf only (no
# trove-guestagent.conf, so no transport_url: the instance stays in BUILD).
GUEST_USER = 'trove'
# A POSIX user name as useradd takes it (no upper case, at most 32).
_USER_NAME = re.compile(r'[a-z_][a-z0-9_-]{0,31}')


def guest_user(name: str) -> str:
    """``name`` if it can be a guest image's login user, else ValueError."""
    if not _USER_NAME.fullmatch(name):
        raise ValueError(
            f'{name!r} is not a user name (lower-case letters, digits, _ '
            'and -, at most 32): the guest image\'s login user, '
            f'{GUEST_USER} for images built here')
    return name


def _check_positive(settings: Any, unit: str) -> None:
    """ValueError unless every field of ``settings`` is a positive int."""
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if not isinstance(value, int) or isinstance(value, bool) \
                or value <= 0:
            raise ValueError(f'{field.name} must be a positive {unit}, '
                             f'not {value!r}')


@dataclasses.dataclass(frozen=True)
class Timeouts:
    """Seconds Trove waits; the defaults suit guests under qemu TCG.

    Trove's own defaults assume KVM: a TCG guest takes ~165 s to finish
    cloud-init, then pulls or loads its database image, so ``usage_timeout``
    (BUILD -> ACTIVE), ``state_change_wait_time`` (database healthy) and
    the guest call timeouts are raised.
    """

    usage_timeout: int = 3600
    agent_call_low_timeout: int = 60
    agent_call_high_timeout: int = 1200
    agent_heartbeat_expiry: int = 300
    state_change_wait_time: int = 900
    command_process_timeout: int = 120
    reboot_time_out: int = 900
    resize_time_out: int = 1800
    server_delete_time_out: int = 300
    volume_time_out: int = 300

    def __post_init__(self) -> None:
        _check_positive(self, 'number of seconds')


# Trove 26's own defaults, for a cloud with KVM.
TROVE_DEFAULT_TIMEOUTS = Timeouts(
    usage_timeout=1800, agent_call_low_timeout=15,
    agent_call_high_timeout=180, agent_heartbeat_expiry=90,
    state_change_wait_time=180, command_process_timeout=30,
    reboot_time_out=120, resize_time_out=900, server_delete_time_out=60,
    volume_time_out=60)
TCG_TIMEOUTS = Timeouts()

# Which file each timeout goes to: the control plane's waits in trove.conf,
# the guest agent's in trove-guestagent.conf.
_GUEST_TIMEOUTS = ('state_change_wait_time', 'command_process_timeout')
_SERVER_TIMEOUTS = tuple(f.name for f in dataclasses.fields(Timeouts)
                         if f.name != 'command_process_timeout')


@dataclasses.dataclass(frozen=True)
class Polling:
    """How often Trove looks while an instance comes up.

    Trove's defaults look every 3-5 s and want five healthy looks in a
    row: on an instance of a few minutes that adds ~20 s after the
    database is up (measured with ``benchmarks/bench_instance_boot.py``):
    the agent's ``state_healthy_counts`` looks ``state_change_poll_time``
    apart once Docker's health check passed, then the taskmanager's next
    look before the instance is ACTIVE.  ``usage_sleep_time`` is only the
    taskmanager's first interval: Trove 26 polls through oslo.service's
    ``BackOffLoopingCall`` (each interval ~1.5 times the last, at most
    30 s), so from ~100 s on it looks every 30 s whatever this says
    (doc/verify-image.md).
    """

    usage_sleep_time: int = 1         # taskmanager (trove.conf)
    state_change_poll_time: int = 1   # guest agent
    state_healthy_counts: int = 2     # guest agent

    def __post_init__(self) -> None:
        _check_positive(self, 'whole number')


TROVE_DEFAULT_POLLING = Polling(usage_sleep_time=5, state_change_poll_time=3,
                                state_healthy_counts=5)
_SERVER_POLLING = ('usage_sleep_time',)


@dataclasses.dataclass(frozen=True)
class InstanceSettings:
    """What Trove needs to know to create instances on a cloud.

    ``docker_images`` maps a datastore to its image repository without the
    tag (the guest agent appends ``:<datastore version>``); build it with
    :func:`docker_images`; ``backup_docker_images`` likewise, the images
    of backups and restores (:func:`backup_docker_images`).
    ``guest_transport_url`` is the messaging URL as the guest reaches it
    (None: leave it to the caller's devstack/cloud configuration).
    """

    # __post_init__ keeps tuples and read-only mappings of what it is given
    management_networks: Sequence[str] = ()
    management_security_groups: Sequence[str] = ()
    docker_images: Mapping[str, str] = dataclasses.field(
        default_factory=lambda: types.MappingProxyType({}))
    backup_docker_images: Mapping[str, str] = dataclasses.field(
        default_factory=lambda: types.MappingProxyType({}))
    insecure_registries: Sequence[str] = ()
    network_isolation: bool = False
    volume_support: bool = True
    volume_type: str | None = None
    timeouts: Timeouts = TCG_TIMEOUTS
    polling: Polling = Polling()
    guest_transport_url: str | None = None
    keypair: str | None = None
    config_drive: bool = True
    # The guest image's login user: cloud-init gives it the files Trove
    # injects (injected_config_owner; see GUEST_USER).
    guest_user: str | None = GUEST_USER

    def __post_init__(self) -> None:
        object.__setattr__(self, 'management_networks',
                           tuple(self.management_networks))
        object.__setattr__(self, 'management_security_groups',
                           tuple(self.management_security_groups))
        object.__setattr__(self, 'insecure_registries',
                           tuple(self.insecure_registries))
        for name in ('docker_images', 'backup_docker_images'):
            object.__setattr__(self, name, types.MappingProxyType(
                dict(getattr(self, name))))
        if len(self.management_networks) > 1:
            # trove/common/cfg.py: "Currently only one management network
            # is allowed."
            raise ValueError('Trove allows one management network, got '
                             f'{len(self.management_networks)}')
        if self.guest_user is not None:
            guest_user(self.guest_user)
        unknown = sorted((set(self.docker_images)
                          | set(self.backup_docker_images)) - set(DATASTORES))
        if unknown:
            raise ValueError(f'no container datastore {", ".join(unknown)}'
                             f' (known: {", ".join(DATASTORES)})')


def docker_images(
        datastores: Iterable[str], *, source: str = 'upstream',
        registry: str | None = None,
        overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """{datastore: image repository} for the datastores named.

    ``source``: ``upstream`` (Trove's images on quay.io), ``embedded``
    (this project's images baked into the guest image, no registry) or
    ``registry`` (this project's images pushed to ``registry``, an
    ``host:port`` address).  ``overrides`` ({datastore: repository}) win.
    """
    return _repositories(datastores, UPSTREAM_IMAGES, LOCAL_REPOSITORY,
                         source=source, registry=registry,
                         overrides=overrides)


def backup_docker_images(
        datastores: Iterable[str], *, source: str = 'upstream',
        registry: str | None = None,
        overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """{datastore: backup image repository} for the datastores named:
    ``[<datastore>] backup_docker_image`` of trove-guestagent.conf.

    ``source``: ``upstream`` (Trove's db-backup images on quay.io) or
    ``registry`` (this project's, pushed to ``registry``).  Not
    ``embedded``: Trove 26's agent asks the registry about the image
    before every backup and restore (``get_backup_image``: Docker's
    ``/distribution/<image>/json``, which never looks at local images), so
    a backup image must be in a registry the guest reaches.
    """
    if source == 'embedded':
        raise ValueError(
            'backup images cannot be embedded only: Trove\'s guest agent '
            'looks each one up in its registry before it runs it; use '
            'source "registry"')
    return _repositories(datastores, UPSTREAM_BACKUP_IMAGES,
                         LOCAL_BACKUP_REPOSITORY, source=source,
                         registry=registry, overrides=overrides)


def _repositories(datastores: Iterable[str], upstream: Mapping[str, str],
                  local_name: str, *, source: str, registry: str | None,
                  overrides: Mapping[str, str] | None) -> dict[str, str]:
    if source not in ('upstream', 'embedded', 'registry'):
        raise ValueError(f'unknown image source {source!r} '
                         '(upstream, embedded, registry)')
    if source == 'registry' and not registry:
        raise ValueError('image source "registry" needs a registry address')
    images = {}
    for datastore in dict.fromkeys(datastores):
        if datastore not in DATASTORES:
            raise ValueError(f'no container image for datastore '
                             f'{datastore!r} (known: {", ".join(DATASTORES)})')
        local = local_name.format(datastore=datastore)
        images[datastore] = {'upstream': upstream[datastore],
                             'embedded': local,
                             'registry': f'{registry}/{local}'}[source]
    images.update(overrides or {})
    return images


# Trove's limits a deployer sets in trove.conf [DEFAULT], with Trove 26's
# defaults: the largest volume one instance may ask for (GB), and the
# default quotas of a project (volume GB in all, instances).
LIMITS = types.MappingProxyType({
    'max_accepted_volume_size': 10,
    'max_volumes_per_tenant': 40,
    'max_instances_per_tenant': 10,
})


def limits_config(limits: Mapping[str, int]) -> Config:
    """{trove.conf: {DEFAULT: {option: value}}} for the limits given
    ({option in LIMITS: positive int}); unset ones keep Trove's default."""
    unknown = sorted(set(limits) - set(LIMITS))
    if unknown:
        raise ValueError(f'unknown Trove limit {", ".join(unknown)} '
                         f'(known: {", ".join(LIMITS)})')
    for name, value in limits.items():
        if not isinstance(value, int) or isinstance(value, bool) \
                or value <= 0:
            raise ValueError(f'{name} must be a positive number, not '
                             f'{value!r}')
    return {TROVE_CONF: {'DEFAULT': {name: str(value) for name, value
                                     in limits.items()}}}


def _flag(value: object) -> str:
    return 'True' if value else 'False'


def instance_config(settings: InstanceSettings) -> Config:
    """{file: {section: {option: value}}} for trove.conf and
    trove-guestagent.conf, from :class:`InstanceSettings`."""
    server: dict[str, dict[str, str]] = {'DEFAULT': {}, 'network': {}}
    guest: dict[str, dict[str, str]] = {'DEFAULT': {}}
    default = server['DEFAULT']
    if settings.management_networks:
        default['management_networks'] = ','.join(
            settings.management_networks)
    if settings.management_security_groups:
        default['management_security_groups'] = ','.join(
            settings.management_security_groups)
    if settings.keypair:
        default['nova_keypair'] = settings.keypair
    if settings.guest_user:
        default['injected_config_owner'] = settings.guest_user
    default['use_nova_server_config_drive'] = _flag(settings.config_drive)
    if settings.insecure_registries:
        default['docker_insecure_registries'] = ','.join(
            settings.insecure_registries)
    default['trove_volume_support'] = _flag(settings.volume_support)
    if settings.volume_support and settings.volume_type:
        default['cinder_volume_type'] = settings.volume_type
    for name in _SERVER_TIMEOUTS:
        default[name] = str(getattr(settings.timeouts, name))
    server['network']['network_isolation'] = _flag(
        settings.network_isolation)
    for name in _GUEST_TIMEOUTS:
        guest['DEFAULT'][name] = str(getattr(settings.timeouts, name))
    for field in dataclasses.fields(Polling):
        side = server if field.name in _SERVER_POLLING else guest
        side['DEFAULT'][field.name] = str(getattr(settings.polling,
                                                  field.name))
    if settings.guest_transport_url:
        guest['DEFAULT']['transport_url'] = settings.guest_transport_url
    for datastore, image in settings.docker_images.items():
        ignored = ','.join(IGNORED_USERS[datastore])
        server[datastore] = {'volume_support': _flag(settings.volume_support),
                             'ignore_users': ignored}
        guest[datastore] = {'docker_image': image, 'ignore_users': ignored}
    for datastore, image in settings.backup_docker_images.items():
        guest.setdefault(datastore, {})['backup_docker_image'] = image
    return {TROVE_CONF: server, GUESTAGENT_CONF: guest}


def apply(config: Config, paths: Mapping[str, pathlib.Path | str], *,
          dry_run: bool = False) -> list[results.Row]:
    """Set every option of ``config`` in the files at ``paths``
    ({file name: path}); other lines stay as they are.  [Row] per file."""
    rows = []
    for name, sections in config.items():
        path = paths[name]
        document = ini.IniFile.load(path)
        changed = document.update(sections)
        if not changed:
            rows.append(results.Row('config', str(path), results.UNCHANGED))
            continue
        if not dry_run:
            document.save(path)
        rows.append(results.Row(
            'config', str(path),
            results.WOULD_UPDATE if dry_run else results.UPDATED,
            ', '.join(changed)))
    return rows


"""Trove instances by name: one that is there and ACTIVE, or none.

:func:`ensure_instance` finds the project's instance of a name or creates
it (by default with the cloud's default datastore and its default
version, the test flavor ``d3`` and the shared network ``private`` when
the cloud has one) and waits until it is ACTIVE; run again, it finds the
same instance and creates no second one.  :func:`delete_instance` deletes
one by name and waits until it, its nova server and the server's ports
are gone.

A :class:`Tracker` follows one instance: its timeline (stage -> seconds),
progress lines on every status change with a heartbeat while nothing
changes, bounded waits, and on failure an :class:`InstanceError` whose one
line says where it stopped and whose ``details`` say why: Trove's fault,
nova's server fault and console output, the console log nova keeps under
its instances_path, the tails of service logs.  Trove is reached through
python-troveclient on the connection's session, nova and neutron through
openstacksdk.
"""

import dataclasses
import pathlib
import time
from collections.abc import Callable
from collections.abc import Iterable
from typing import Any
from typing import NoReturn

from trovestack import testenv
from trovestack.common import connection
from trovestack.common import results
from trovestack.common.errors import UserError
from trovestack.testenv import datastores
from trovestack.testenv import tempest_conf

ACTIVE = 'ACTIVE'
# The database's own state (Trove's operating_status) once its guest agent
# reports: an ACTIVE instance whose guest has not reported lately (its
# cloud was restarted and the guest boots again) shows ERROR until then.
HEALTHY = 'HEALTHY'
# Statuses an instance leaves by itself: Trove or nova is still at work.
PASSING = frozenset({'BUILD', 'REBOOT', 'RESIZE', 'BACKUP', 'UPGRADE',
                     'PROMOTE', 'EJECT', 'DETACH', 'LOGGING'})
# Statuses Trove does not delete from (BUILD) or that a reset clears.
RESET_FIRST = frozenset({'BUILD', 'ERROR'})
# The flavor test instances use (provision's flavors make it).
DEFAULT_FLAVOR = tempest_conf.DEFAULT_FLAVOR_ID
# devstack's shared network for users' instances (the compute cloud's too).
SHARED_NETWORK = 'private'
DEFAULT_TIMEOUT = 1800
DELETE_TIMEOUT = 900
HEARTBEAT = 60      # seconds without a change before a "still ..." line
# Seconds an ACTIVE instance's guest may leave Trove's show unanswered (it
# boots again after a cloud restart: ~5 min under TCG) before it is an error.
SILENCE_LIMIT = 900
INTERVAL = 10       # seconds between status polls
CONSOLE_TAIL = 3000
LOG_TAIL = 1500

# The clock, apart so that tests can drive it.
_now = time.monotonic
_sleep = time.sleep


class InstanceError(UserError):
    """An instance that did not become ACTIVE or go away: the message is
    one line; ``details`` holds the diagnostics that explain it."""

    def __init__(self, message: str, details: str = '') -> None:
        super().__init__(message)
        self.details = details


@dataclasses.dataclass(frozen=True)
class Evidence:
    """What explains a failure besides the APIs."""

    logs: tuple = ()          # service log files whose tails are shown
    instances_dir: str = ''   # nova's instances_path (<server>/console.log)


@dataclasses.dataclass
class InstanceResult:
    """An ACTIVE instance and whether this run created it."""

    name: str
    id: str
    status: str
    datastore: str
    version: str
    addresses: list
    created: bool
    timeline: dict  # stage -> seconds since the run started


def _quiet(message: str) -> None:
    pass


class Tracker:
    """One instance followed through its stages.

    ``label`` starts every progress line (default ``instance NAME``).
    Subclasses may override :meth:`fail` to raise their own error; every
    wait here fails through it.
    """

    def __init__(self, conn: connection.Connection, name: str, *,
                 label: str | None = None, evidence: Evidence | None = None,
                 progress: Callable[[str], None] | None = None,
                 interval: float = INTERVAL) -> None:
        self.conn = conn
        self.trove = connection.trove_client(conn)
        self.name = name
        self.label = label or f'instance {name}'
        self.evidence = evidence or Evidence()
        self.progress = progress or _quiet
        self.timeline: dict[str, float] = {}
        self.interval = interval
        self.started = _now()
        self.started_at = time.time()   # the same moment, epoch seconds
        self.stage = 'start'
        self.instance_id: str | None = None
        self.server_id: str | None = None
        self.last_status: str | None = None
        # what a failure suggests (default: delete it)
        self.hint: str | None = None

    def elapsed(self) -> float:
        return round(_now() - self.started, 1)

    def say(self, message: str) -> None:
        self.progress(f'{self.label}: {message}')

    def mark(self, stage: str) -> None:
        """Record reaching ``stage`` and say so."""
        self.timeline[stage] = self.elapsed()
        self.stage = stage
        self.say(f'{stage} at {self.timeline[stage]} s')

    def follow(self, instance: Any) -> None:
        """Take the instance's (and its nova server's) id and status."""
        self.instance_id = instance.id
        self.last_status = instance.status
        self.server_id = _field(instance, 'server_id') or \
            self.server_id

    def error(self, message: str) -> InstanceError:
        """InstanceError: ``message`` with the fault and how to remove the
        instance on its one line, the diagnostics as its details."""
        fault, details = self._explain()
        text = f'{self.label}: {message}'
        if fault:
            text += f'; fault: {fault}'
        hint = self.hint or (f'remove it with "trovestack instance down '
                             f'{self.name}"' if self.instance_id else '')
        if hint:
            text += f'; {hint}'
        return InstanceError(text, details)

    def fail(self, message: str) -> NoReturn:
        """Stop at the current stage: raise :meth:`error`."""
        raise self.error(f'stopped at {self.stage}: {message}')

    def diagnostics(self) -> str:
        """Instance fault, nova server fault and console, log tails."""
        return self._explain()[1]

    def _explain(self) -> tuple[str, str]:
        parts, fault = [], ''
        if self.instance_id:
            try:
                instance = self.trove.instances.get(self.instance_id)
                self.follow(instance)
                fault, fault_details = fault_of(instance)
                parts.append(f'instance {self.instance_id} status '
                             f'{instance.status}, fault: {fault or None}'
                             + (f'\n{fault_details}' if fault_details
                                else ''))
            except Exception as exc:  # noqa: BLE001 - report, go on
                parts.append(f'instance {self.instance_id}: {exc}')
        if self.server_id:
            parts.extend(self._server_evidence())
        for log in self.evidence.logs:
            path = pathlib.Path(log)
            if path.exists():
                parts.append(f'{path} (tail):\n' + _tail(
                    path.read_text(errors='replace'), LOG_TAIL))
        return fault, '\n'.join(parts)

    def _server_evidence(self) -> list[str]:
        parts = []
        try:
            server = self.conn.compute.get_server(self.server_id)
            parts.append(f'server {server.id} {server.status} '
                         f'fault: {getattr(server, "fault", None)}')
            console = self.conn.compute.get_server_console_output(
                server)['output']
            parts.append('console (nova):\n' + _tail(console))
        except Exception as exc:  # noqa: BLE001 - report, go on
            parts.append(f'server {self.server_id}: {exc}')
        if self.evidence.instances_dir:
            # called with a server_id
            log = pathlib.Path(self.evidence.instances_dir,
                               self.server_id,  # type: ignore[arg-type]
                               'console.log')
            if log.exists():
                parts.append(f'{log}:\n' + _tail(
                    log.read_text(errors='replace')))
        return parts

    def wait(self, check: Callable[[], Any], timeout: float, what: str,
             interval: float = INTERVAL) -> Any:
        """Call ``check`` until it returns something true (returned);
        :meth:`fail` when ``timeout`` seconds pass first."""
        deadline = _now() + timeout
        while True:
            try:
                result = check()
            except Exception as exc:
                if not _is_api_error(exc):
                    raise
                self.fail(f'{what}: {_api_answer(exc)}')
            if result:
                return result
            if _now() > deadline:
                self.fail(f'{what} not within {timeout} s')
            _sleep(interval)

    def wait_active(self, timeout: float) -> Any:
        """Poll the instance until it is ACTIVE with a healthy database
        (returned): a stage per status it shows, a heartbeat line at most
        every HEARTBEAT seconds while it stays; fails when it reaches a
        status it does not leave by itself (ERROR...) or at the timeout.
        An ACTIVE instance whose database is not HEALTHY (its guest has not
        reported since its cloud restarted) is waited for."""
        seen: dict[str, Any] = {'status': None, 'said': _now(),
                                'silent': None}

        def show(shown: str | None) -> None:
            if shown != seen['status']:
                seen.update(status=shown, said=_now())
                self.mark(f'status {shown}')
            elif _now() - seen['said'] >= HEARTBEAT:
                seen['said'] = _now()
                self.say(f'still {shown} at {self.elapsed()} s')

        def active() -> Any:
            try:
                instance = self.trove.instances.get(self.instance_id)
            except Exception as exc:
                # Trove's show of an ACTIVE instance asks its guest for the
                # volume's use, and waits while the guest does not answer.
                if self.last_status != ACTIVE or not _timed_out(exc):
                    raise
                seen['silent'] = seen['silent'] or _now()
                show(f'{ACTIVE}, guest not answering')
                if _now() - seen['silent'] > SILENCE_LIMIT:
                    self.fail(f'its guest has not answered for '
                              f'{SILENCE_LIMIT} s: {exc}')
                return None
            seen['silent'] = None
            self.follow(instance)
            status = instance.status
            database = _field(instance, 'operating_status')
            shown = status
            if status == ACTIVE and database not in (None, HEALTHY):
                shown = f'{status}, database {database}'
            show(shown)
            if status == ACTIVE:
                return instance if shown == status else None
            if status not in PASSING:
                self.fail(f'instance went to {status}')
            return None

        return self.wait(active, timeout, ACTIVE, interval=self.interval)


def _tail(text: str | None, size: int = CONSOLE_TAIL) -> str:
    return text[-size:] if text else ''


def _field(instance: Any, name: str) -> Any:
    """An attribute Trove sent for ``instance``, else None (troveclient
    would fetch the whole instance again for one it did not send)."""
    return vars(instance).get(name)


def fault_of(instance: Any) -> tuple[str, str]:
    """(one-line fault message, its details) of a Trove instance; empty
    strings when it has none (Trove shows faults to admins)."""
    fault = _field(instance, 'fault')
    if not fault:
        return '', ''
    if not isinstance(fault, dict):
        return ' '.join(str(fault).split()), ''
    message = ' '.join(str(fault.get('message') or '').split())
    return message, str(fault.get('details') or '').strip()


def addresses_of(instance: Any) -> list[str]:
    """The addresses Trove shows for an instance (``addresses``, else the
    older ``ip`` list)."""
    found = [entry['address'] for entry in
             _field(instance, 'addresses') or []
             if isinstance(entry, dict) and entry.get('address')]
    return found or list(_field(instance, 'ip') or [])


def datastore_of(instance: Any) -> tuple[str, str]:
    """(datastore, version) an instance runs."""
    info = _field(instance, 'datastore') or {}
    return info.get('type', ''), info.get('version', '')


def find_instance(trove: Any, name: str) -> Any:
    """The project's instance named exactly ``name``, or None."""
    matches: list[Any]
    marker: str | None
    matches, marker = [], None
    while True:
        try:
            page = trove.instances.list(marker=marker)
        except Exception as exc:
            if not _is_api_error(exc):
                raise
            raise InstanceError(f'listing Trove instances failed: {exc}') \
                from exc
        matches.extend(item for item in page if item.name == name)
        marker = getattr(page, 'next', None)
        if not marker:
            break
    if len(matches) > 1:
        raise InstanceError(
            f'{len(matches)} instances are named {name!r} ('
            + ', '.join(item.id for item in matches)
            + '); delete the extra ones with "openstack database instance '
              'delete ID"')
    return matches[0] if matches else None


def _datastore(trove: Any, name: str | None,
               version: str | None) -> tuple[str | None, str | None]:
    """(datastore, version) to create with; (None, None) leaves the choice
    to Trove's default_datastore when several datastores have a default
    version (the first one provision named)."""
    if name is None:
        if version:
            raise InstanceError(f'version {version!r} needs its datastore: '
                                'give DATASTORE:VERSION')
        choices = datastores.choose(trove)
        if len(choices) > 1:
            return None, None
    else:
        choices = datastores.choose(trove, [(name, version)])
    return choices[0].name, choices[0].version


def _flavor_id(conn: connection.Connection, flavor: str) -> str:
    found = conn.compute.find_flavor(flavor, ignore_missing=True)
    if found is None:
        raise InstanceError(
            f'flavor {flavor!r} does not exist; "trovestack flavors" makes '
            f'the test flavors ({DEFAULT_FLAVOR} among them)')
    return found.id


def _nics(conn: connection.Connection,
          networks: Iterable[str] | None) -> list[dict[str, str]]:
    """Trove's ``nics`` for ``networks`` (names or ids); None: the shared
    network when the cloud has it.  Trove adds its management network."""
    if networks is None:
        if not testenv.has_service(conn, 'network'):
            return []
        shared = conn.network.find_network(SHARED_NETWORK)
        return [{'net-id': shared.id}] if shared else []
    nics = []
    for network in networks:
        found = conn.network.find_network(network)
        if found is None:
            raise InstanceError(f'network {network!r} does not exist')
        nics.append({'net-id': found.id})
    return nics


def _backup_id(trove: Any, backup: str) -> str:
    """The id of the COMPLETED Trove backup named or numbered ``backup``."""
    found = [item for item in trove.backups.list()
             if backup in (item.id, item.name)]
    if len(found) != 1:
        raise InstanceError(
            f'{len(found)} Trove backups are named {backup!r}'
            + ('' if found else ' (openstack database backup list)'))
    if found[0].status != 'COMPLETED':
        raise InstanceError(f'backup {backup} is {found[0].status}, not '
                            'COMPLETED: nothing to restore yet')
    return found[0].id


def create_instance(tracker: Tracker, *, datastore: str | None = None,
                    version: str | None = None, flavor: str | None = None,
                    nics: Iterable[str] | None = None,
                    volume_size: int | None = None,
                    backup: str | None = None) -> Any:
    """Create the tracker's instance (no wait) and follow it.

    ``datastore``/``version``: None for the defaults (the cloud's default
    datastore, the datastore's default version); ``flavor``: name or id
    (default DEFAULT_FLAVOR); ``nics``: networks besides Trove's
    management network (None: SHARED_NETWORK if present, ``()``: none);
    ``volume_size``: GB of the data volume (None or 0: no volume, for a
    Trove whose volume support is off); ``backup``: the name or id of a
    Trove backup to restore into it.
    """
    datastore, version = _datastore(tracker.trove, datastore, version)
    if backup:
        backup = _backup_id(tracker.trove, backup)
    flavor = flavor or DEFAULT_FLAVOR
    flavor_id = _flavor_id(tracker.conn, flavor)
    nic_list = _nics(tracker.conn, nics)
    tracker.say(
        f'creating: {datastore or "Trove default datastore"}'
        f'{":" + version if version else ""}, flavor {flavor}, '
        + (f'{volume_size} GB volume, ' if volume_size else 'no volume, ')
        + f'{len(nic_list)} network(s) besides the management network'
        + (f', restoring backup {backup}' if backup else ''))
    try:
        instance = tracker.trove.instances.create(
            tracker.name, flavor_id, datastore=datastore,
            datastore_version=version, nics=nic_list,
            volume={'size': volume_size} if volume_size else None,
            **({'restorePoint': {'backupRef': backup}} if backup else {}))
    except Exception as exc:
        if not _is_api_error(exc):
            raise
        raise InstanceError(f'{tracker.label}: Trove refused to create it: '
                            f'{exc}') from exc
    tracker.follow(instance)
    tracker.mark('created')
    return instance


def ensure_instance(conn: connection.Connection, name: str, *,
                    datastore: str | None = None, version: str | None = None,
                    flavor: str | None = None,
                    nics: Iterable[str] | None = None,
                    volume_size: int | None = None, backup: str | None = None,
                    timeout: float = DEFAULT_TIMEOUT,
                    progress: Callable[[str], None] | None = None,
                    evidence: Evidence | None = None,
                    tracker: Tracker | None = None) -> InstanceResult:
    """The ACTIVE instance ``name``: found, waited for, or created.

    An ACTIVE instance of that name is returned at once (``created`` is
    False); one still building is waited for; one in a status it will not
    leave (ERROR...) raises InstanceError naming its fault and how to
    remove it, as does one of another datastore than asked; none: it is
    created with :func:`create_instance`'s defaults (restoring ``backup``
    when given) and waited for.
    ``progress``: called with one line per stage and heartbeat;
    ``tracker``: the :class:`Tracker` to follow it with (default: a new one
    with ``evidence`` and ``progress``).
    """
    tracker = tracker or Tracker(conn, name, evidence=evidence,
                                 progress=progress)
    found = find_instance(tracker.trove, name)
    if found is None:
        create_instance(tracker, datastore=datastore, version=version,
                        flavor=flavor, nics=nics, volume_size=volume_size,
                        backup=backup)
    else:
        tracker.follow(found)
        tracker.mark('found')
        _check_found(tracker, found, datastore, version)
    instance = tracker.wait_active(timeout)
    found_datastore, found_version = datastore_of(instance)
    return InstanceResult(
        name=name, id=instance.id, status=instance.status,
        datastore=found_datastore, version=found_version,
        addresses=addresses_of(instance), created=found is None,
        timeline=dict(tracker.timeline))


def _check_found(tracker: Tracker, found: Any, datastore: str | None,
                 version: str | None) -> None:
    status = found.status
    if status != ACTIVE and status not in PASSING:
        raise tracker.error(f'exists in status {status}, not ACTIVE')
    has, has_version = datastore_of(found)
    if (datastore and has and datastore != has) or \
            (version and has_version and version != has_version):
        raise InstanceError(
            f'{tracker.label} exists as {has}:{has_version}, not '
            f'{datastore or has}:{version or has_version}; remove it with '
            f'"trovestack instance down {tracker.name}" or choose another '
            'name')


def _timed_out(exc: BaseException) -> bool:
    """True when an API request got no answer in time."""
    from keystoneauth1 import exceptions as ks_exc

    return isinstance(exc, ks_exc.ConnectTimeout)


def _is_api_error(exc: BaseException) -> bool:
    """True for an API's answer with an HTTP error status (troveclient's
    and keystoneauth's errors carry it), or for no answer in time or at all
    (keystoneauth's connection errors: Trove's API waits on a guest that
    does not run, for one)."""
    from keystoneauth1 import exceptions as ks_exc

    return isinstance(getattr(exc, 'http_status', None), int) or \
        isinstance(exc, ks_exc.ConnectionError)


def _api_answer(exc: BaseException) -> str:
    """What the API said (or that it said nothing), for an error line."""
    if isinstance(getattr(exc, 'http_status', None), int):
        return f'the API answered {exc}'
    return f'no answer from the API: {exc}'


def _is_not_found(exc: BaseException) -> bool:
    return getattr(exc, 'http_status', None) == 404 or \
        getattr(exc, 'code', None) == 404 or \
        type(exc).__name__ == 'NotFound'


def remove(tracker: Tracker, *, reset: bool = False,
           timeout: float = DELETE_TIMEOUT) -> int | bool:
    """Delete the tracker's instance and wait until it, its nova server
    and the server's ports are gone; the number of those ports.

    ``reset``: reset its status first (Trove deletes no instance in
    BUILD); a failed reset is said, not raised.
    """
    trove, conn = tracker.trove, tracker.conn
    if reset:
        try:
            trove.instances.reset_status(tracker.instance_id)
        except Exception as exc:  # noqa: BLE001 - the delete says more
            tracker.say(f'reset-status failed: {exc}')
    if tracker.server_id is None:
        try:
            tracker.follow(trove.instances.get(tracker.instance_id))
        except Exception:  # noqa: BLE001 - the deletion below says more
            pass
    if tracker.server_id is None:
        # Trove did not show it (its API may wait on a guest that does not
        # run): nova's only server of the instance's name.
        servers = [server.id for server in conn.compute.servers(
            all_projects=True, name=f'^{tracker.name}$')]
        if len(servers) == 1:
            tracker.server_id = servers[0]
    ports = [port.id for port in conn.network.ports(
        device_id=tracker.server_id)] if tracker.server_id else []
    tracker.stage = 'delete'
    tracker.hint = (f'"openstack database instance force-delete '
                    f'{tracker.instance_id}" deletes it whatever its state')
    try:
        trove.instances.delete(tracker.instance_id)
    except Exception as exc:
        if not _is_api_error(exc):
            raise
        tracker.fail(f'Trove refused the delete: {exc}')

    def gone() -> bool:
        try:
            trove.instances.get(tracker.instance_id)
        except Exception as exc:  # noqa: BLE001 - NotFound is the goal
            if _is_not_found(exc):
                return True
            raise
        return False

    tracker.wait(gone, timeout, 'instance deleted', interval=5)
    if tracker.server_id:
        tracker.wait(lambda: conn.compute.find_server(
            tracker.server_id, ignore_missing=True) is None, 300,
            'nova server deleted', interval=5)
        tracker.wait(lambda: not any(
            conn.network.find_port(port, ignore_missing=True)
            for port in ports), 300, 'ports deleted', interval=5)
    tracker.mark(f'deleted (server and {len(ports)} port(s) gone)')
    return len(ports)


def delete_instance(
        conn: connection.Connection, name: str, *,
        timeout: float = DELETE_TIMEOUT,
        progress: Callable[[str], None] | None = None) -> results.Row:
    """Delete the project's instance ``name`` (its status reset first when
    it is stuck in BUILD or ERROR) and wait until it is gone; a
    :class:`~trovestack.common.results.Row`.  None of that name: nothing
    to do (action ``unchanged``)."""
    tracker = Tracker(conn, name, progress=progress)
    found = find_instance(tracker.trove, name)
    if found is None:
        tracker.say('not there, nothing to delete')
        return results.Row('instance', name, results.UNCHANGED, 'not there')
    tracker.follow(found)
    ports = remove(tracker, reset=found.status in RESET_FIRST,
                   timeout=timeout)
    return results.Row('instance', name, results.DELETED,
                       f'nova server and {ports} port(s) gone', id=found.id)

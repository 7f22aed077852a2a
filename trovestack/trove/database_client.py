"""The datastore's own client (mariadb, psql) against a Trove instance,
run inside the compute cloud's network namespace.

:func:`session` finds the instance, picks its address (the fixed one on
the users' network, or its floating IP), the user and database (given, or
the only ones the instance has) and the password's source, and returns
the command line and environment that open the client; it prints
nothing and never puts the password on a command line.  The caller
replaces itself with that command (``trovestack instance connect``), so
the client owns the terminal, its signals and the exit code.
"""

import dataclasses
import os
import pathlib
import shutil
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from trovestack.common import netns
from trovestack.common.errors import UserError
from trovestack.trove import instances

# Where a password can come from besides --password-file and a prompt.
PASSWORD_ENV = 'TROVESTACK_DB_PASSWORD'
CONNECT_TIMEOUT = 10
FIXED, FLOATING = 'fixed', 'floating'
ADDRESS_KINDS = (FIXED, FLOATING)


@dataclasses.dataclass(frozen=True)
class Client:
    """One datastore family's command-line client."""

    program: str
    package: str
    # The environment variable the client reads its password from.
    password_env: str
    # The database it opens when none is named (None: the client's own).
    default_database: str | None = None

    def argv(self, address: str, user: str, database: str | None, *,
             prompt: bool, extra: Sequence[str] = ()) -> list[str]:
        """The client's command line (no password on it)."""
        if self.program == 'psql':
            return ['psql', f'--host={address}', f'--username={user}',
                    f'--dbname={database or self.default_database}',
                    *(['--password'] if prompt else []), *extra]
        return [self.program, f'--host={address}', f'--user={user}',
                f'--connect-timeout={CONNECT_TIMEOUT}',
                *([f'--database={database}'] if database else []),
                *(['--password'] if prompt else []), *extra]

    def environment(self, password: str | None) -> dict[str, str]:
        """What the client's environment gains: the password (when not
        prompted for) and, for psql, its connect timeout."""
        env = {}
        if password is not None:
            env[self.password_env] = password
        if self.program == 'psql':
            env['PGCONNECT_TIMEOUT'] = str(CONNECT_TIMEOUT)
        return env


MARIADB_CLIENT = Client('mariadb', 'mariadb-client', 'MYSQL_PWD')
CLIENTS = {
    'mariadb': MARIADB_CLIENT,
    'mysql': MARIADB_CLIENT,
    'postgresql': Client('psql', 'postgresql-client', 'PGPASSWORD',
                         default_database='postgres'),
}


@dataclasses.dataclass(frozen=True)
class Session:
    """What opens the client: run ``argv`` with the process environment
    updated by ``env`` (which may hold the password: never print it)."""

    instance: str
    datastore: str
    program: str
    address: str
    kind: str
    user: str
    database: str | None
    argv: list
    env: dict = dataclasses.field(repr=False)

    def describe(self) -> str:
        """One line for a person: who connects where (no password)."""
        where = f' database {self.database}' if self.database else ''
        return (f'{self.program} to {self.user}@'
                f'{self.address} ({self.kind} address of {self.instance})'
                f'{where}')


def addresses_by_kind(instance: Any) -> dict[str, list[str]]:
    """{'fixed': [...], 'floating': [...]} of the addresses Trove shows for
    ``instance`` (its user ports' fixed IPs, and their floating IPs)."""
    found: dict[str, list[str]] = {FIXED: [], FLOATING: []}
    for entry in getattr(instance, 'addresses', None) or []:
        if isinstance(entry, dict) and entry.get('address'):
            kind = FLOATING if entry.get('type') == 'public' else FIXED
            found[kind].append(entry['address'])
    return found


def pick_address(name: str, instance: Any,
                 kind: str | None = None) -> tuple[str, str]:
    """(address, kind): the floating IP when the instance has one, else its
    fixed address; ``kind`` insists on one."""
    found = addresses_by_kind(instance)
    for each in ([kind] if kind else [FLOATING, FIXED]):
        if found[each]:
            return found[each][0], each
    if kind == FLOATING:
        raise UserError(
            f'instance {name} has no floating IP: make it public with '
            f'"openstack database instance update {name} --is-public"')
    raise UserError(f'instance {name} shows no address on a users\' '
                    'network (is it still building?)')


def pick_user(name: str, users: Iterable[Any], user: str | None = None) -> str:
    """The user to connect as: ``user``, else the instance's only one."""
    if user:
        return user
    names = sorted({each.name for each in users})
    if len(names) == 1:
        return names[0]
    if not names:
        raise UserError(
            f'instance {name} has no database user: create one with '
            f'"openstack database user create {name} <user> <password> '
            '--databases <database>", then give it with --user')
    raise UserError(f'instance {name} has {len(names)} users ('
                    + ', '.join(names) + '): name one with --user')


def pick_database(users: Iterable[Any], user: str,
                  database: str | None = None) -> str | None:
    """``database``, else the user's only database (None: the client's
    default)."""
    if database:
        return database
    for each in users:
        if each.name == user:
            names = [db['name'] if isinstance(db, dict) else str(db)
                     for db in getattr(each, 'databases', None) or []]
            if len(names) == 1:
                return names[0]
    return None


def read_password(password_file: pathlib.Path | str | None = None,
                  environ: Mapping[str, str] | None = None,
                  client: Client | None = None,
                  interactive: bool = False) -> tuple[str | None, bool]:
    """(password or None, prompt?): from ``password_file`` (its first
    line), else $TROVESTACK_DB_PASSWORD, else the client's own variable
    (left for the client to read), else the client's prompt when a person
    is at the terminal."""
    environ = os.environ if environ is None else environ
    if password_file:
        try:
            text = pathlib.Path(password_file).read_text()
        except OSError as exc:
            raise UserError(f'can not read the password file '
                            f'{password_file}: {exc.strerror}') from None
        lines = text.splitlines()
        if not lines or not lines[0]:
            raise UserError(f'the password file {password_file} is empty')
        return lines[0], False
    if environ.get(PASSWORD_ENV):
        return environ[PASSWORD_ENV], False
    if client is not None and environ.get(client.password_env):
        return None, False
    if interactive:
        return None, True
    raise UserError(
        'no password: give --password-file, or set $' + PASSWORD_ENV
        + ' (or run it at a terminal to be asked)')


def session(trove: Any, namespace: str | None, name: str, *,
            user: str | None = None, database: str | None = None,
            address_kind: str | None = None,
            password_file: pathlib.Path | str | None = None,
            extra: Sequence[str] = (), interactive: bool = False,
            environ: Mapping[str, str] | None = None) -> 'Session':
    """The :class:`Session` that opens the datastore's client against the
    instance ``name`` (Trove asked through python-troveclient ``trove``)
    inside ``namespace``; [UserError] naming what is missing."""
    found = instances.find_instance(trove, name)
    if found is None:
        raise UserError(f'there is no Trove instance named {name}')
    if found.status != instances.ACTIVE:
        raise UserError(f'instance {name} is {found.status}, not '
                        f'{instances.ACTIVE}')
    datastore, _ = instances.datastore_of(found)
    client = CLIENTS.get(datastore)
    if client is None:
        raise UserError(f'instance {name} runs {datastore or "a datastore"}'
                        ', which has no client here (known: '
                        + ', '.join(sorted(CLIENTS)) + ')')
    if shutil.which(client.program) is None:
        raise UserError(f'{client.program} is not installed (Debian: '
                        f'apt-get install {client.package})')
    address, kind = pick_address(name, found, address_kind)
    users = [] if user and database else list(trove.users.list(found.id))
    user = pick_user(name, users, user)
    database = pick_database(users, user, database)
    password, prompt = read_password(password_file, environ, client,
                                     interactive)
    argv = netns.inside(namespace, client.argv(
        address, user, database, prompt=prompt, extra=list(extra)))
    return Session(instance=name, datastore=datastore,
                   program=client.program, address=address,
                   kind=kind, user=user, database=database, argv=argv,
                   env=client.environment(password))

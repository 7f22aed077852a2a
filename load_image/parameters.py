"""A datastore version's configuration parameters, from Trove's
validation-rules.json, by the widest way in this host has.

* **trove-manage** (``db_load_datastore_config_parameters``) where Trove's
  database can be reached from here: a trove.conf naming it and a
  trove-manage to run with it.  It takes every parameter.  The local cloud
  (its state directory's trove.conf and the trove-manage of the Trove it
  runs: :func:`local_cloud_config` knows the cloud by its identity
  endpoint) and
  devstack (``$TROVE_CONF``, devstack's trove-manage, given by its plugin)
  are such places.
* **The management API** anywhere else.  It takes only strings and
  integers with both a minimum and a maximum; the others are named in the
  result (``skipped``) and in a warning.

:func:`choose` makes the decision (a :class:`TroveDatabase`, or None for
the API); :func:`load` loads and returns a
:class:`load_image.datastores.ParametersResult` either way, read back
through the API.  Both ways converge: trove-manage updates the rows it
finds (one per version and name: Trove's unique key) and is not run when
Trove already lists every parameter as the file has it.
"""

import dataclasses
import json
import logging
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Any

from load_image import datastores
from trovestack.common import connection

LOG = logging.getLogger(__name__)

TROVE_MANAGE = 'trove-manage'
VIA_TROVE_MANAGE = 'trove-manage'
VIA_API = 'api'
# Seconds trove-manage may take (it imports Trove, then one row per
# parameter).
TIMEOUT = 300
# Trove keeps a parameter's limits in a column its SQLite database (the
# local cloud's) fills with signed 64-bit integers: larger ones (MariaDB's
# 2**64-1 maxima) are loaded as the largest it holds, as the API path does.
LIMIT = datastores.LIMIT_MAX
_CREDENTIALS = re.compile(r'(://[^/\s:@]+):[^@\s]*@')
# oslo.log's prefix of a line: date, time, pid, level, logger.
_LOG_PREFIX = re.compile(r'^\d{4}-\d\d-\d\d [\d:.]+ \d+ [A-Z]+ \S+ ?')


@dataclasses.dataclass(frozen=True)
class TroveDatabase:
    """Trove's database, as trove-manage reaches it."""

    config_file: str  # a trove.conf whose [database] connection names it
    command: str  # the trove-manage to run with it


def default_trove_manage() -> str | None:
    """trove-manage beside the running Python (this project's venv: the
    local cloud's Trove), else on PATH; None when there is none."""
    beside = pathlib.Path(sys.executable).with_name(TROVE_MANAGE)
    if os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(TROVE_MANAGE)


def trove_database(config_file: pathlib.Path | str,
                   command: str | None = None) -> 'TroveDatabase':
    """The TroveDatabase of an explicit trove.conf and trove-manage
    (default: :func:`default_trove_manage`); DatastoreError naming what is
    missing.  No cloud is needed."""
    path = pathlib.Path(config_file)
    if not path.is_file() or not os.access(path, os.R_OK):
        raise datastores.DatastoreError(
            f'Trove configuration {config_file} is not a readable file '
            '(trove-manage reads its [database] connection)')
    found = shutil.which(command) if command else default_trove_manage()
    if not found:
        raise datastores.DatastoreError(
            f'{command or TROVE_MANAGE} not found (beside {sys.executable} '
            'or on PATH): it loads the configuration parameters into '
            "Trove's database; give its path")
    return TroveDatabase(config_file=str(path.absolute()), command=found)


def local_cloud_config(
        conn: connection.Connection,
        state_dir: pathlib.Path | str | None = None) -> str | None:
    """The local cloud's trove.conf when ``conn`` is that cloud (its
    identity endpoint, see configs.local_cloud_at), else None."""
    from trovestack.cloud import configs
    from trovestack.common import connection

    layout = configs.local_cloud_at(connection.auth_url(conn), state_dir)
    if layout is None:
        return None
    path = configs.config_file('trove', layout)
    return str(path) if path.is_file() else None


def choose(
        conn: connection.Connection, *,
        trove_config: pathlib.Path | str | None = None,
        trove_manage: str | None = None, api_only: bool = False,
        state_dir: pathlib.Path | str | None = None) -> 'TroveDatabase | None':
    """The way in: a TroveDatabase (trove-manage), or None (the API).

    ``api_only``: the API.  A ``trove_config`` given: trove-manage with it
    (DatastoreError when it or trove-manage is missing).  Otherwise
    trove-manage when ``conn`` is the local cloud's (its trove.conf and the
    trove-manage of the Trove it runs), else the API.
    """
    if api_only:
        return None
    if trove_config:
        return trove_database(trove_config, trove_manage)
    local = local_cloud_config(conn, state_dir)
    if local is None:
        return None
    if trove_manage is None:
        # The cloud's own: a Trove tree's (cloud up --trove-source) has
        # that tree's models and migrations.
        from trovestack.cloud import controlplane

        trove_manage = controlplane.LocalCloud(state_dir).trove_tool(
            TROVE_MANAGE)
    return trove_database(local, trove_manage)


def load(trove: Any, version: datastores.VersionResult,
         path: pathlib.Path | str, *, database: 'TroveDatabase | None' = None,
         mgmt: Any,
         existing: list[Any] | None = None) -> datastores.ParametersResult:
    """Load the validation-rules.json at ``path`` into ``version`` (a
    datastores.VersionResult); a datastores.ParametersResult.

    ``database``: a TroveDatabase to load every parameter with
    trove-manage, or None for the management API (``trove``: a troveclient
    Client or a callable making one, used only to change parameters);
    ``mgmt``: a load_image.trove_api.MgmtClient, which lists the version's
    parameters before and after; ``existing``: that list, when the caller
    has it already.
    """
    if existing is None:
        existing = datastores.version_parameters(mgmt, version.version_id)
    if database is None:
        return datastores.load_config_parameters(
            trove, version.version_id, path, existing=existing)
    rules = datastores.read_rules(path)
    result = datastores.ParametersResult(via=VIA_TROVE_MANAGE,
                                         total=len(rules))
    listed = {parameter.name: parameter for parameter in existing}
    for rule in rules:
        name = rule['name']
        if name not in listed:
            result.created.append(name)
        elif datastores.parameter_differs(listed[name],
                                          datastores.rule_fields(rule)):
            result.updated.append(name)
        else:
            result.unchanged.append(name)
    if not (result.created or result.updated):
        LOG.info('The %d configuration parameters of %s %s are loaded',
                 len(rules), version.datastore, version.version)
        return result
    run_trove_manage(database, version, rules)
    after = {parameter.name for parameter in
             datastores.version_parameters(mgmt, version.version_id)}
    missing = [rule['name'] for rule in rules if rule['name'] not in after]
    if missing:
        raise datastores.DatastoreError(
            f'trove-manage ran, but Trove lists {len(rules) - len(missing)} '
            f'of the {len(rules)} configuration parameters of '
            f'{version.datastore} {version.version}; missing: '
            f'{", ".join(missing)}')
    return result


def run_trove_manage(database: 'TroveDatabase',
                     version: datastores.VersionResult,
                     rules: list[dict[str, Any]]) -> None:
    """``trove-manage db_load_datastore_config_parameters`` for ``version``
    with ``rules`` (their limits kept within :data:`LIMIT`)."""
    LOG.info('Loading %d configuration parameters of %s %s with %s '
             '--config-file %s', len(rules), version.datastore,
             version.version, database.command, database.config_file)
    with tempfile.TemporaryDirectory(prefix='trovestack-params-') as tmp:
        path = pathlib.Path(tmp, 'validation-rules.json')
        path.write_text(json.dumps(
            {'configuration-parameters': [_bounded(r) for r in rules]}))
        argv = [database.command, '--config-file', database.config_file,
                'db_load_datastore_config_parameters', version.datastore,
                version.version, str(path)]
        if version.version_number:
            argv += ['--version', version.version_number]
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True,
                                  timeout=TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise datastores.DatastoreError(
                f'{database.command} db_load_datastore_config_parameters '
                f'{version.datastore} {version.version}: {exc}') from exc
    if done.returncode != 0:
        raise datastores.DatastoreError(
            f'{database.command} db_load_datastore_config_parameters '
            f'{version.datastore} {version.version} failed (exit '
            f'{done.returncode}): {_last_line(done)}')


def _bounded(rule: dict[str, Any]) -> dict[str, Any]:
    rule = dict(rule)
    for key in ('min', 'max'):
        value = rule.get(key)
        if isinstance(value, int) and abs(value) > LIMIT:
            rule[key] = LIMIT if value > 0 else -LIMIT
    return rule


def _last_line(done: subprocess.CompletedProcess[str]) -> str:
    """The last line trove-manage wrote (its error, without oslo.log's
    prefix), without any credentials of a database URL."""
    for text in (done.stderr, done.stdout):
        lines = [_LOG_PREFIX.sub('', line).strip()
                 for line in (text or '').splitlines()]
        lines = [line for line in lines if line]
        if lines:
            return _CREDENTIALS.sub(r'\1:***@', lines[-1])[:500]
    return 'no output'

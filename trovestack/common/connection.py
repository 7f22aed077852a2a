"""Cloud connections: one keystoneauth session per run, for every tool.

Credentials come from clouds.yaml (``--os-cloud`` / ``$OS_CLOUD``) or from the
``OS_*`` environment (devstack's openrc), loaded by openstacksdk's config
loader; no message ever contains a password or token.  A still-valid token
of an earlier run with the same credentials is reused
(:mod:`trovestack.common.tokencache`).  :func:`connect` returns a
:class:`Connection`: the session and the cloud's config at once,
openstacksdk's service proxies (``conn.compute``, ``conn.image``...) only
when first used.  A run that changes nothing makes a few plain REST calls
(:meth:`Connection.rest_api`) and never imports the SDK's services, which
were the largest part of its start-up (benchmarks/bench_load_image.py).
"""

import argparse
import importlib
import importlib.util
import logging
import os
import re
import sys
import threading
import types
import urllib.parse
from collections.abc import Iterable
from collections.abc import Iterator
from typing import TYPE_CHECKING
from typing import Any

from trovestack.common import tokencache
from trovestack.common.errors import UserError

if TYPE_CHECKING:
    from keystoneauth1 import adapter
    from troveclient.v1 import client as trove_v1

LOG = logging.getLogger(__name__)

DEFAULT_API_TIMEOUT = 10.0
# How errors name a cloud given only by OS_* variables (or by nothing).
NO_CLOUD_NAMED = 'the cloud in OS_* variables'


class CloudError(UserError):
    """A cloud that can not be reached or used, as one line."""


def add_cloud_arguments(
        parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Add the options that pick and reach a cloud to an argparse parser."""
    group = parser.add_argument_group('cloud')
    group.add_argument(
        '--os-cloud', metavar='<cloud>', default=os.environ.get('OS_CLOUD'),
        help='Cloud name from clouds.yaml (default: $OS_CLOUD; without it '
             'the OS_* environment variables are used)')
    group.add_argument(
        '--os-region-name', metavar='<region>',
        default=os.environ.get('OS_REGION_NAME'),
        help='Region (default: $OS_REGION_NAME or the cloud\'s own)')
    group.add_argument(
        '--api-timeout', metavar='<seconds>', type=float,
        default=DEFAULT_API_TIMEOUT,
        help='Seconds to wait for any one API response '
             f'(default: {DEFAULT_API_TIMEOUT:g})')
    return group


class Connection:
    """An authenticated session on one region of a cloud.

    ``session`` (keystoneauth) and ``config`` (openstacksdk's CloudRegion)
    are ready at once; every other attribute (``compute``, ``image``,
    ``identity``, ``get_endpoint``...) is that of openstacksdk's Connection
    on the same session and token, made when first asked for.
    """

    def __init__(self, config: Any) -> None:
        self.config = config
        self.session = config.get_session()
        self._sdk: Any = None
        self._rest_apis: dict[str, adapter.Adapter] = {}

    def authorize(self) -> str:
        """Authenticate now (keystoneauth's errors as they are)."""
        return self.session.get_token()

    def rest_api(self, service_type: str) -> 'adapter.Adapter':
        """A keystoneauth adapter of the service for plain REST calls: the
        cloud config's endpoint (or override), API version, timeout and
        retries, as openstacksdk's proxies have them.

        An endpoint that names its API version (``.../v2.1``,
        ``.../v1.0/%(project_id)s``: Nova's, Trove's) is used as it is; one
        that names only the service (Glance's root) is completed by version
        discovery, one request.
        """
        if service_type not in self._rest_apis:
            api = self.config.get_session_client(
                service_type, constructor=_plain_adapter)
            url = api.endpoint_override or self.endpoint_for(service_type)
            if names_version(url):
                # keystoneauth fills in %(project_id)s.
                api.endpoint_override = url
            elif api.endpoint_override:
                found = api.get_endpoint_data()
                if found and found.service_url:
                    api.endpoint_override = found.service_url
            self._rest_apis[service_type] = api
        return self._rest_apis[service_type]

    # openstacksdk Connection's own, without making one.
    def endpoint_for(self, service_type: str, interface: str | None = None,
                     region_name: str | None = None) -> str | None:
        """The service's endpoint override, else its catalog URL."""
        return self.config.get_endpoint(service_type) or \
            self.config.get_endpoint_from_catalog(
                service_type=service_type, interface=interface,
                region_name=region_name)

    @property
    def current_user_id(self) -> str:
        return self.session.auth.get_access(self.session).user_id

    @property
    def current_project_id(self) -> str:
        return self.session.get_project_id()

    @property
    def sdk(self) -> Any:
        """openstacksdk's Connection on this session."""
        if self._sdk is None:
            from openstack import connection

            self._sdk = connection.Connection(config=self.config)
        return self._sdk

    def close(self) -> None:
        """Close openstacksdk's Connection, if one was made."""
        if self._sdk is not None:
            self._sdk.close()

    def __getattr__(self, name: str) -> Any:
        if name.startswith('_'):
            raise AttributeError(name)
        return getattr(self.sdk, name)


_VERSION_SEGMENT = re.compile(r'v\d+(\.\d+)?')


def names_version(url: str | None) -> bool:
    """True when a path segment of the URL is an API version (v2, v1.0)."""
    if not url:
        return False
    path = urllib.parse.urlsplit(url).path
    return any(_VERSION_SEGMENT.fullmatch(part) for part in path.split('/'))


def _plain_adapter(session: Any, *, statsd_prefix: object = None,
                   statsd_client: object = None,
                   prometheus_counter: object = None,
                   prometheus_histogram: object = None,
                   influxdb_config: object = None,
                   influxdb_client: object = None,
                   **settings: Any) -> 'adapter.Adapter':
    """keystoneauth's Adapter from CloudRegion.get_session_client()'s
    arguments, less the SDK's metrics hooks (they need an SDK Connection);
    like the SDK's proxies, it returns answers of any status."""
    from keystoneauth1 import adapter

    return adapter.Adapter(session, raise_exc=False, **settings)


def rest_api(conn: Any, service_type: str) -> Any:
    """conn.rest_api(service_type); for an openstacksdk Connection, its
    proxy of the service (a keystoneauth adapter too)."""
    if isinstance(conn, Connection):
        return conn.rest_api(service_type)
    return getattr(conn, service_type)


def connect(cloud: str | None = None, region_name: str | None = None,
            api_timeout: float = DEFAULT_API_TIMEOUT,
            token_cache: bool | None = None) -> Connection:
    """Return an authenticated :class:`Connection`, or raise CloudError.

    Authentication as a whole (version discovery, then the token request)
    is bounded by ``api_timeout``, not just each of its requests.  A token
    an earlier run got with the same credentials is reused while it is
    valid (:mod:`trovestack.common.tokencache`; ``token_cache=False``, or
    ``$TROVESTACK_TOKEN_CACHE=0`` when it is None, turns that off).
    """
    if token_cache is None:
        token_cache = tokencache.enabled()
    outcome: dict[str, Any] = {}

    def authenticate() -> None:
        try:
            loader = _config_loader()
            config = loader.OpenStackConfig(
                load_yaml_config=True, load_envvars=True).get_one(
                    cloud=cloud, region_name=region_name,
                    api_timeout=api_timeout)
            auth = config.get_auth()
            reused = token_cache and tokencache.attach(auth)
            conn = Connection(config)
            if reused and not tokencache.still_valid(conn.session, auth):
                auth.invalidate()
            conn.authorize()
            outcome['conn'] = conn
        except Exception as exc:  # noqa: BLE001 - reported below
            outcome['error'] = exc

    worker = threading.Thread(target=authenticate, name='authenticate',
                              daemon=True)
    worker.start()
    worker.join(api_timeout)
    if worker.is_alive():
        where = f'cloud {cloud!r}' if cloud else NO_CLOUD_NAMED
        raise CloudError(f'identity service of {where} did not answer '
                         f'within {api_timeout:g} s')
    if 'error' in outcome:
        error = outcome['error']
        raise CloudError(describe_error(error, cloud)) from error
    return outcome['conn']


def connect_from_args(parsed_args: argparse.Namespace) -> Connection:
    """connect() with the options add_cloud_arguments() registered."""
    return connect(cloud=parsed_args.os_cloud,
                   region_name=parsed_args.os_region_name,
                   api_timeout=parsed_args.api_timeout)


def describe_error(exc: BaseException, cloud: str | None = None) -> str:
    """One line saying what went wrong while reaching a cloud.

    openstacksdk wraps keystoneauth errors, so the whole chain of causes is
    searched for one we can explain.
    """
    where = f'cloud {cloud!r}' if cloud else NO_CLOUD_NAMED
    for cause in _causes(exc):
        message = _explain(cause, where)
        if message:
            return message
    text = str(exc).strip()
    first_line = text.splitlines()[0] if text else ''
    return f'{where}: {type(exc).__name__}: {first_line}'.rstrip(': ')


def _causes(exc: BaseException | None) -> Iterator[BaseException]:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _explain(exc: BaseException, where: str) -> str | None:
    from keystoneauth1 import exceptions as ks_exc
    from openstack import exceptions as sdk_exc

    if isinstance(exc, sdk_exc.ConfigException):
        return f'cannot load {where}: {exc}'
    if isinstance(exc, ks_exc.MissingRequiredOptions):
        names = ', '.join(opt.dest for opt in exc.options)
        message = f'incomplete credentials for {where}: missing {names}'
        if where == NO_CLOUD_NAMED:
            message += ('; name a cloud of clouds.yaml with --os-cloud or '
                        'OS_CLOUD (the local cloud: eval "$(trovestack '
                        'cloud env)")')
        return message
    if isinstance(exc, ks_exc.Unauthorized) or \
            getattr(exc, 'http_status', None) == 401 or \
            getattr(exc, 'status_code', None) == 401:
        return f'authentication to {where} failed: bad credentials'
    if isinstance(exc, ks_exc.ConnectTimeout):
        return f'identity service of {where} did not answer in time'
    if isinstance(exc, ks_exc.ConnectFailure):
        return f'identity service of {where} is unreachable'
    if isinstance(exc, ks_exc.EndpointNotFound):
        return f'{where} has no endpoint for a service this needs: {exc}'
    return None


def auth_url(conn: Connection) -> str | None:
    """The identity endpoint ``conn`` authenticates against, or None."""
    try:
        auth = conn.config.config.get('auth') or {}
        url = auth.get('auth_url') or conn.session.auth.auth_url
    except AttributeError:
        return None
    return (url or '').rstrip('/') or None


def require_admin(conn: Connection, purpose: str) -> None:
    """Raise CloudError unless the connection's token has the admin role."""
    if not has_admin_role(conn):
        raise CloudError(f'{purpose} needs the admin role, which the '
                         'credentials of this cloud do not have')


def command_connection(parsed_args: argparse.Namespace, *,
                       admin_for: str | None = None) -> Connection:
    """connect_from_args(); with admin_for, the admin role is required."""
    conn = connect_from_args(parsed_args)
    if admin_for:
        require_admin(conn, admin_for)
    return conn


def has_admin_role(conn: Connection) -> bool:
    """True when the token of this connection carries the admin role."""
    access = conn.session.auth.get_access(conn.session)
    return 'admin' in access.role_names


# python-troveclient, keystoneauth1 and openstacksdk's config try these
# optional modules at import time: eventlet only to sleep between retries
# (time.sleep without it), osprofiler's web hooks (for tracing), netaddr
# only to write netaddr addresses into JSON bodies (no tool here sends any)
# and prometheus_client for metrics into a registry given in code (no tool
# here gives one).  With dnspython, eventlet and osprofiler were a third of
# a no-change run's start-up; netaddr and prometheus_client another 0.1 s
# of CPU (benchmarks/bench_load_image.py).
_UNUSED_OPTIONAL = ('eventlet', 'osprofiler.web', 'netaddr',
                    'prometheus_client')


def _config_loader() -> types.ModuleType:
    """openstack.config.loader, without openstacksdk's services.

    Importing any part of openstacksdk runs its package's ``__init__``,
    which imports every service's proxies and resources (most of the SDK).
    Unless the SDK is imported already, the package is entered without it:
    its submodules are imported when asked for, and the package completes
    itself (runs that ``__init__``) when something of its own
    (``openstack.connect``...) is first asked for.
    """
    if 'keystoneauth1.session' not in sys.modules:
        _import_without(_UNUSED_OPTIONAL, 'keystoneauth1.session')
    if 'openstack' not in sys.modules:
        spec = importlib.util.find_spec('openstack')
        # openstacksdk is a requirement: its spec is there.
        package = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]

        def attribute(name: str) -> object:
            # A submodule is imported on its own; anything else is the
            # package's own: run its __init__ (once).
            if importlib.util.find_spec(f'openstack.{name}') is not None:
                return importlib.import_module(f'openstack.{name}')
            del package.__getattr__
            spec.loader.exec_module(package)  # type: ignore[union-attr]
            return getattr(package, name)

        # a module's __getattr__ (PEP 562)
        package.__getattr__ = attribute  # type: ignore[method-assign]
        sys.modules['openstack'] = package
    if 'openstack.config.loader' not in sys.modules:
        _import_without(_UNUSED_OPTIONAL, 'openstack.config.loader')
    return importlib.import_module('openstack.config.loader')


def trove_client(conn: Connection) -> 'trove_v1.Client':
    """A python-troveclient v1 client sharing the connection's session."""
    if 'troveclient.client' not in sys.modules:
        _import_without(_UNUSED_OPTIONAL, 'troveclient.client')
    from troveclient.v1 import client as trove

    return trove.Client(
        session=conn.session,
        region_name=conn.config.get_region_name('database'),
        endpoint_type=conn.config.get_interface('database'),
        service_type='database')


def _import_without(optional: Iterable[str], module: str) -> None:
    """Import ``module`` as if the ``optional`` modules were not installed
    (they are importable again afterwards)."""
    saved = {name: sys.modules.get(name) for name in optional}
    # None: ImportError
    sys.modules.update(dict.fromkeys(optional))  # type: ignore[arg-type]
    try:
        importlib.import_module(module)
    finally:
        for name, value in saved.items():
            if value is None:
                del sys.modules[name]
            else:
                sys.modules[name] = value

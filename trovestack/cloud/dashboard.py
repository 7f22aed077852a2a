"""The local cloud's dashboard (``cloud up --dashboard``): Horizon with
trove-dashboard's panels, served on loopback by the cloud's WSGI server.

Horizon's ``openstack_dashboard.settings`` imports ``local.local_settings``
from the path: the cloud writes that module into
``<state>/dashboard/etc/local/`` and puts ``etc`` on the server's
PYTHONPATH, so nothing is written into the venv.  Sessions and the cache
are files under ``<state>/dashboard`` (no memcached), the SECRET_KEY is a
0600 file there, and the static files are collected and compressed once
into ``<state>/dashboard/static``, which WhiteNoise serves.
"""

import hashlib
import importlib.metadata
import pathlib
import secrets
import sys
from typing import Any

from trovestack.cloud import configs
from trovestack.cloud import layout as layout_mod
from trovestack.cloud import processes
from trovestack.cloud import services
from trovestack.cloud import supervision

NAME = 'dashboard'
SETUP_STEP = f'{NAME}-setup'
SERVICE = services.Service(
    NAME, wsgi_target='openstack_dashboard.wsgi:application')
SETTINGS_MODULE = 'openstack_dashboard.settings'
# What the collected static files depend on besides the settings.
DISTRIBUTIONS = ('horizon', 'trove-dashboard', 'Django',
                 'django-compressor', 'whitenoise')
STAMP = '.trovestack-stamp'

# Horizon's settings module, mid-import, already holds MIDDLEWARE (its
# own local_settings example imports HORIZON_CONFIG the same way).
_CODE = '''\
import openstack_dashboard.local.enabled as _local_enabled
import trove_dashboard.enabled as _trove_enabled
from horizon.utils import secret_key as _secret_key
from openstack_dashboard.settings import MIDDLEWARE as _MIDDLEWARE

# trove-dashboard's panels, as if its enabled/_*.py files were copied into
# openstack_dashboard/local/enabled as its documentation says.
if _trove_enabled.__path__[0] not in _local_enabled.__path__:
    _local_enabled.__path__.append(_trove_enabled.__path__[0])

# The collected static files, served before anything else runs.
MIDDLEWARE = ('whitenoise.middleware.WhiteNoiseMiddleware', *_MIDDLEWARE)
SECRET_KEY = _secret_key.generate_or_read_from_file({key_file!r})
'''


def paths(layout: layout_mod.Layout) -> dict[str, pathlib.Path]:
    """{name: path} of the dashboard's files under the state directory."""
    root = layout.service_dir(NAME)
    etc = layout.config_dir(NAME)
    return {'root': root, 'etc': etc,
            'settings': etc / 'local' / 'local_settings.py',
            'secret_key': root / 'secret_key',
            'static': root / 'static', 'sessions': root / 'sessions',
            'cache': root / 'cache'}


def url(state: layout_mod.CloudState) -> str:
    """The dashboard's address (loopback)."""
    return SERVICE.url(state)


def settings(state: layout_mod.CloudState,
             layout: layout_mod.Layout) -> dict[str, Any]:
    """Horizon's settings for this cloud (plain values, no secrets)."""
    where = paths(layout)
    return {
        'DEBUG': False,
        'ALLOWED_HOSTS': [layout_mod.HOST, 'localhost', '[::1]'],
        'OPENSTACK_KEYSTONE_URL': configs.identity_url(state),
        'OPENSTACK_KEYSTONE_DEFAULT_ROLE': 'member',
        'OPENSTACK_ENDPOINT_TYPE': 'publicURL',
        # The project overview asks Neutron for its quotas without checking
        # the catalog, and fails on a cloud without compute (no Neutron).
        'OPENSTACK_NEUTRON_NETWORK': {'enable_quotas': False},
        'SESSION_ENGINE': 'django.contrib.sessions.backends.file',
        'SESSION_FILE_PATH': str(where['sessions']),
        'CACHES': {'default': {
            'BACKEND': 'django.core.cache.backends.filebased.'
                       'FileBasedCache',
            'LOCATION': str(where['cache'])}},
        'STATIC_ROOT': str(where['static']),
        'STATIC_URL': '/static/',
        'COMPRESS_OFFLINE': True,
        # Errors into the log file (with DEBUG off Django logs none).
        'LOGGING': {
            'version': 1, 'disable_existing_loggers': False,
            'handlers': {'console': {'class': 'logging.StreamHandler'}},
            'root': {'handlers': ['console'], 'level': 'WARNING'},
        },
    }


def render(state: layout_mod.CloudState, layout: layout_mod.Layout) -> str:
    """The text of Horizon's local_settings.py for this cloud."""
    lines = ['# Written by trovestack (trovestack.cloud.dashboard): '
             'changes are overwritten.',
             _CODE.format(key_file=str(paths(layout)['secret_key']))]
    lines += [f'{name} = {value!r}'
              for name, value in settings(state, layout).items()]
    return '\n'.join(lines) + '\n'


def write_settings(state: layout_mod.CloudState,
                   layout: layout_mod.Layout) -> None:
    """Write local_settings.py and, once, the SECRET_KEY file (0600)."""
    where = paths(layout)
    for name in ('root', 'etc', 'sessions', 'cache'):
        where[name].mkdir(mode=0o700, parents=True, exist_ok=True)
    (where['etc'] / 'local').mkdir(mode=0o700, exist_ok=True)
    (where['etc'] / 'local' / '__init__.py').touch()
    if not where['secret_key'].exists():
        layout_mod.write_private(where['secret_key'],
                                 secrets.token_urlsafe(48))
    text = render(state, layout)
    if not where['settings'].exists() or \
            where['settings'].read_text() != text:
        layout_mod.write_private(where['settings'], text)


def environment(layout: layout_mod.Layout) -> dict[str, str]:
    """What the server and its set-up need to find Horizon's settings."""
    return {'DJANGO_SETTINGS_MODULE': SETTINGS_MODULE,
            'PYTHONPATH': str(paths(layout)['etc'])}


def stamp(layout: layout_mod.Layout) -> str:
    """A digest of what the collected static files depend on: the
    settings and the versions of Horizon and its helpers."""
    digest = hashlib.sha256(paths(layout)['settings'].read_bytes())
    for name in DISTRIBUTIONS:
        digest.update(f'{name}={importlib.metadata.version(name)}'.encode())
    return digest.hexdigest()


def needs_setup(layout: layout_mod.Layout) -> bool:
    """True when the static files are missing or were made for other
    settings or versions (after write_settings)."""
    kept = paths(layout)['static'] / STAMP
    return not kept.exists() or kept.read_text() != stamp(layout)


def set_up(layout: layout_mod.Layout) -> None:
    """Collect Horizon's static files into the state directory and
    compress them offline, then record for what."""
    log = layout.log_file(SETUP_STEP)
    env = environment(layout)
    for command in (['collectstatic', '--noinput', '--clear'],
                    ['compress', '--force']):
        processes.run_checked(
            [sys.executable, '-m', 'django', *command, '--verbosity', '0'],
            log, env, what=f'dashboard {command[0]}')
    layout_mod.write_private(paths(layout)['static'] / STAMP, stamp(layout))


def setup_step(layout: layout_mod.Layout) -> supervision.Step:
    """The set-up as a step of the start graph."""
    return supervision.Step(SETUP_STEP, lambda: set_up(layout))


def program(state: layout_mod.CloudState,
            layout: layout_mod.Layout) -> supervision.Program:
    """The dashboard's server, once its static files are there."""
    return supervision.Program(
        NAME, SERVICE.command(state, layout),
        ready=lambda: processes.http_answers(url(state)),
        env=environment(layout), needs=(SETUP_STEP,),
        log=str(layout.log_file(NAME)))

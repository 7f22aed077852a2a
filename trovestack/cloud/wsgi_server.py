"""Serve one OpenStack WSGI application with gunicorn.

Usage: python -m trovestack.cloud.wsgi_server MODULE:ATTR HOST:PORT TAG

The applications parse ``sys.argv`` with oslo.config while they load, so the
gunicorn command line cannot be used: this program clears ``sys.argv`` before
it loads the application.  TAG (the state directory) only marks the process
as ours in the process table.
"""

import importlib
import sys
from typing import Any

from gunicorn.app import base


class _Server(base.BaseApplication):
    def __init__(self, target: str, bind: str, tag: str) -> None:
        self._target = target
        self._options = {
            'bind': bind,
            'workers': 1,
            'worker_class': 'gthread',
            'threads': 8,
            'timeout': 600,
            'graceful_timeout': 5,
            # gunicorn's default (2 s) closes an idle connection just as a
            # client polling every 2 s (openstacksdk's wait_for_*) sends
            # on it again: 'Remote end closed connection without response'.
            'keepalive': 75,
            'proc_name': f'trovestack-{target.split(".")[0]} {tag}',
            'accesslog': '-',
        }
        self._tag = tag
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        module_name, attr = self._target.split(':')
        return getattr(importlib.import_module(module_name), attr)


def main() -> None:
    target, bind, tag = sys.argv[1:4]
    sys.argv = [sys.argv[0]]
    _Server(target, bind, tag).run()


if __name__ == '__main__':
    main()

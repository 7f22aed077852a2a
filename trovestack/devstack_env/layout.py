"""Where staged artifacts and environments live, and their names."""

import dataclasses
import pathlib
import re

from trovestack.common import files
from trovestack.common.errors import UserError

DEFAULT_NAME = 'devstack'
_NAME = re.compile(r'^[a-z][a-z0-9]{0,11}$')


def cache_root() -> pathlib.Path:
    """Staged artifacts, shared by every environment and kept between runs."""
    return files.cache_dir('trovestack', 'devstack-env')


def state_root() -> pathlib.Path:
    """One directory per environment (its record, overlay and logs)."""
    return files.state_dir('trovestack', 'devstack-env')


def check_name(name: str) -> str:
    """``name`` when it can name an environment (it becomes part of a
    network namespace, a machine and an interface name), else UserError."""
    if not _NAME.match(name):
        raise UserError(f'environment name {name!r}: use 1-12 lower-case '
                        'letters and digits, starting with a letter')
    return name


@dataclasses.dataclass(frozen=True)
class EnvPaths:
    """The files and directories of one environment."""

    name: str
    root: pathlib.Path

    @classmethod
    def of(cls, name: str,
           root: pathlib.Path | None = None) -> 'EnvPaths':
        check_name(name)
        return cls(name, (root or state_root()) / name)

    @property
    def record(self) -> pathlib.Path:
        return self.root / 'container.json'

    @property
    def upper(self) -> pathlib.Path:
        return self.root / 'overlay' / 'upper'

    @property
    def work(self) -> pathlib.Path:
        return self.root / 'overlay' / 'work'

    @property
    def merged(self) -> pathlib.Path:
        return self.root / 'rootfs'

    @property
    def console_log(self) -> pathlib.Path:
        return self.root / 'console.log'

    @property
    def stack_log(self) -> pathlib.Path:
        """stack.sh's output, as seen from the host."""
        return self.root / 'stack.sh.out'

    @property
    def stack_record(self) -> pathlib.Path:
        return self.root / 'stack.json'

    @property
    def machine(self) -> str:
        return f'trovestack-{self.name}'

    @property
    def namespace(self) -> str:
        return f'trovestack-ds-{self.name}'

    @property
    def cgroup_name(self) -> str:
        return f'trovestack-ds-{self.name}'

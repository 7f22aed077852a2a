"""Which Trove the local cloud runs: the release in trovestack's venv, or a
developer's source tree (``cloud up --trove-source DIR``).

:class:`TroveSource` names one; :func:`of_tree` describes a tree without
installing it, :func:`of_cloud` what a cloud's state directory records.
The image builder, ``provision``, ``instance sync-agent`` and ``doctor``
take the guest agent's source from here, so that the agent and the control
plane come from one tree.
"""

import dataclasses
import email.parser
import importlib.metadata
import pathlib
import subprocess

from trovestack.cloud import LocalCloudError
from trovestack.cloud import layout as layout_mod

DIST = 'trove'


@dataclasses.dataclass(frozen=True)
class TroveSource:
    """A Trove: ``path`` None for the release installed in the venv."""

    version: str
    path: str | None = None
    commit: str | None = None
    dirty: bool = False

    @property
    def is_tree(self) -> bool:
        return self.path is not None

    def identity(self) -> str:
        """A short string equal for equal code: ``release:26.0.0``,
        ``tree:/src/trove@<commit>[+dirty]`` or ``tree:/src/trove`` (not a
        git checkout)."""
        if not self.is_tree:
            return f'release:{self.version}'
        if self.commit:
            return (f'tree:{self.path}@{self.commit}'
                    + ('+dirty' if self.dirty else ''))
        return f'tree:{self.path}'

    def describe(self) -> str:
        """One line for people: where this Trove comes from."""
        if not self.is_tree:
            return f'trove {self.version} (release)'
        where = f'trove {self.version} from {self.path}'
        if self.commit:
            where += f' at {self.commit[:12]}'
            if self.dirty:
                where += ' (uncommitted changes)'
        return where


def release() -> TroveSource:
    """The trove release installed beside trovestack."""
    try:
        return TroveSource(version=importlib.metadata.version(DIST))
    except importlib.metadata.PackageNotFoundError:
        return TroveSource(version='not installed')


def _git(path: pathlib.Path | str, *args: str) -> str | None:
    try:
        result = subprocess.run(['git', '-C', str(path), *args],
                                capture_output=True, text=True, timeout=30,
                                stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def _tree_version(path: pathlib.Path) -> str:
    pkg_info = path / 'PKG-INFO'
    if pkg_info.is_file():
        headers = email.parser.Parser().parsestr(pkg_info.read_text(),
                                                 headersonly=True)
        if headers.get('Version'):
            return headers['Version']
    return _git(path, 'describe', '--tags', '--always') or 'unknown'


def check_tree(path: pathlib.Path | str) -> pathlib.Path:
    """``path`` as an absolute path if it is a Trove source tree, else a
    one-line error."""
    tree = pathlib.Path(path).expanduser().absolute()
    setup_cfg = tree / 'setup.cfg'
    if not setup_cfg.is_file() or not (tree / DIST / '__init__.py').is_file():
        raise LocalCloudError(f'{tree} is not a Trove source tree (no '
                              f'setup.cfg and trove/ package)')
    for line in setup_cfg.read_text(errors='replace').splitlines():
        key, _, value = line.partition('=')
        if key.strip() == 'name':
            if value.strip() != DIST:
                raise LocalCloudError(f'{tree} holds {value.strip()}, not '
                                      f'{DIST}')
            break
    return tree


def of_tree(path: pathlib.Path | str) -> TroveSource:
    """The Trove of a source tree: its version, git commit and whether it
    has uncommitted changes (a tree outside git has neither)."""
    tree = check_tree(path)
    commit = _git(tree, 'rev-parse', 'HEAD')
    dirty = bool(commit and _git(tree, 'status', '--porcelain',
                                 '--untracked-files=no'))
    return TroveSource(version=_tree_version(tree), path=str(tree),
                       commit=commit, dirty=dirty)


def of_cloud(state_dir: pathlib.Path | str | None = None) -> TroveSource:
    """The Trove the cloud of ``state_dir`` (default: the default state
    directory) runs, or would run at its next start."""
    layout = layout_mod.Layout(state_dir or layout_mod.default_state_dir())
    state = layout.load_state()
    if state is None or not state.trove_source:
        return release()
    return of_tree(state.trove_source)


def check_compiles(path: pathlib.Path | str, package: str = DIST) -> None:
    """A one-line error naming the first module of the tree's ``package``
    that does not compile (a syntax error would otherwise show only once
    the code runs: in an image build's last minutes, or in a guest)."""
    tree = check_tree(path)
    for module in sorted((tree / package).rglob('*.py')):
        try:
            compile(module.read_bytes(), str(module), 'exec',
                    dont_inherit=True)
        except (SyntaxError, ValueError) as exc:
            line = getattr(exc, 'lineno', None)
            where = module.relative_to(tree)
            raise LocalCloudError(
                f'{where}' + (f' line {line}' if line else '')
                + f' does not compile: {getattr(exc, "msg", exc)} '
                f'(in the Trove tree {tree})') from None

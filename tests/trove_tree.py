"""A Trove source tree to test "the Trove tree under test" with.

The tree is the sdist of the trove release the venv pins, unpacked (no test
downloads it: ``tools/install-test-deps`` keeps it in the cache), with
markers a test can see:

- the API marker: every entry of the API's version document (``GET /`` on
  trove-api, no token needed) carries ``"trovestack_marker": MARKER``;
- the guest agent marker: the agent logs ``trovestack agent marker: MARKER``
  right after its logging is set up (in the guest's
  ``/var/log/trove/trove-guestagent.log``).

``break_agent`` leaves a syntax error in the module the agent starts from.
"""

import importlib.metadata
import os
import pathlib
import tarfile

AGENT_MODULE = pathlib.Path('trove', 'cmd', 'guest.py')
API_MODULE = pathlib.Path('trove', 'versions.py')
AGENT_LOG_LINE = 'trovestack agent marker: %s'
API_FIELD = 'trovestack_marker'
SDIST_CACHE_ENV = 'TROVESTACK_SDIST_CACHE'


def release():
    """The trove release installed in the venv."""
    return importlib.metadata.version('trove')


def sdist_dir():
    """Where tools/install-test-deps keeps sdists:
    $TROVESTACK_SDIST_CACHE (the test session sets it to the user's cache
    before it moves XDG_CACHE_HOME), else the XDG cache's."""
    if os.environ.get(SDIST_CACHE_ENV):
        return pathlib.Path(os.environ[SDIST_CACHE_ENV])
    cache = pathlib.Path(os.environ.get('XDG_CACHE_HOME')
                         or pathlib.Path.home() / '.cache')
    return cache / 'trovestack' / 'sdists'


def sdist(version=None):
    """The cached sdist of ``version`` (default: the venv's release)."""
    version = version or release()
    path = sdist_dir() / f'trove-{version}.tar.gz'
    if not path.is_file():
        raise AssertionError(f'{path} is missing: run tools/install-test-deps '
                             f'(it keeps the trove sdist there)')
    return path


def make_tree(dest, api_marker=None, agent_marker=None, break_agent=False):
    """Unpack the sdist under ``dest`` and set the markers; returns the
    tree's path (``dest/trove-<version>``)."""
    archive = sdist()
    dest = pathlib.Path(dest)
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter='data')
    tree = dest / archive.name[:-len('.tar.gz')]
    if api_marker is not None:
        set_api_marker(tree, api_marker)
    if agent_marker is not None:
        set_agent_marker(tree, agent_marker)
    if break_agent:
        with open(tree / AGENT_MODULE, 'a') as module:
            module.write('\ndef broken_by_the_test(:\n')
    return tree


def _replace_once(path, old, new):
    text = path.read_text()
    if text.count(old) != 1:
        raise AssertionError(f'{path}: expected {old!r} exactly once')
    path.write_text(text.replace(old, new))


def set_api_marker(tree, marker):
    """The API's version document carries ``marker`` (replacing any
    earlier one)."""
    path = pathlib.Path(tree, API_MODULE)
    original = '"status": self.status,'
    text = path.read_text()
    start = text.find(original)
    end = text.find('\n', start + len(original))
    if text.find(original, start + 1) != -1 or start == -1:
        raise AssertionError(f'{path}: expected {original!r} exactly once')
    indent = text[text.rfind('\n', 0, start) + 1:start]
    marked = f'{original}\n{indent}"{API_FIELD}": {marker!r},'
    if text[end + 1:].lstrip().startswith(f'"{API_FIELD}"'):
        end = text.find('\n', end + 1)
    path.write_text(text[:start] + marked + text[end:])


def set_agent_marker(tree, marker):
    """The guest agent logs ``marker`` at start (replacing any earlier
    one)."""
    path = pathlib.Path(tree, AGENT_MODULE)
    anchor = '    logging.setup(CONF, None)\n'
    line = f'    LOG.info({AGENT_LOG_LINE!r}, {marker!r})\n'
    text = path.read_text()
    if text.count(anchor) != 1:
        raise AssertionError(f'{path}: expected {anchor!r} exactly once')
    head, tail = text.split(anchor)
    if tail.startswith('    LOG.info(' + repr(AGENT_LOG_LINE)):
        tail = tail.split('\n', 1)[1]
    path.write_text(head + anchor + line + tail)

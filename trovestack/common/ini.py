"""oslo.config style INI files: a line-preserving editor, and the text of
a whole new file (:func:`render`).

Only the lines of options that are set change; comments, blank lines, other
sections and other options stay byte-for-byte. Semantics follow devstack's
``iniset``: an option that already appears in the section gets its value
replaced wherever it appears there (so oslo.config, which takes the last
one, sees the new value); a new option goes after the last option of the
section; a new section goes at the end of the file.
"""

import os
import pathlib
import re
from collections.abc import Mapping
from typing import Any

from trovestack.common import files

_SECTION = re.compile(r'^\[(?P<name>[^\]]+)\]\s*$')
_OPTION = re.compile(
    r'^(?P<key>[^\s#;=:\[][^=:]*?)\s*[=:]\s*(?P<value>.*?)\s*$')


class IniFile:
    """The lines of one INI file, editable in place."""

    def __init__(self, text: str = '') -> None:
        self.lines = text.splitlines(keepends=True)

    @classmethod
    def load(cls, path: pathlib.Path | str) -> 'IniFile':
        """Read ``path``; a missing file gives an empty document."""
        try:
            with open(path, encoding='utf-8') as stream:
                return cls(stream.read())
        except FileNotFoundError:
            return cls()

    def text(self) -> str:
        return ''.join(self.lines)

    def save(self, path: pathlib.Path | str) -> None:
        """Write atomically next to ``path``, keeping its permissions."""
        try:
            mode = os.stat(path).st_mode & 0o777
        except FileNotFoundError:
            mode = 0o644
        files.write_atomic(path, self.text(), mode=mode)

    def _entries(self) -> list[tuple[str, str | None, int, int]]:
        """(section, key or None, first line, end line) per option/header.

        For an option the range covers its continuation lines; for a
        section header key is None and the range is the header line.
        """
        section = None
        entries: list[tuple[str, str | None, int, int]] = []
        index = 0
        while index < len(self.lines):
            line = self.lines[index]
            header = _SECTION.match(line)
            option = _OPTION.match(line)
            if header:
                section = header.group('name').strip()
                entries.append((section, None, index, index + 1))
            elif option and section is not None:
                end = index + 1
                while end < len(self.lines) and self._continues(end):
                    end += 1
                entries.append((section, option.group('key'), index, end))
                index = end
                continue
            index += 1
        return entries

    def _continues(self, index: int) -> bool:
        line = self.lines[index]
        return line[:1] in (' ', '\t') and line.strip() != ''

    def sections(self) -> list[str]:
        return list(dict.fromkeys(e[0] for e in self._entries()))

    def options(self, section: str) -> list[str]:
        return list(dict.fromkeys(
            key for name, key, _, _ in self._entries()
            if name == section and key is not None))

    def get(self, section: str, key: str) -> str | None:
        """The value oslo.config would read (the last one), or None."""
        value = None
        for name, entry_key, start, _ in self._entries():
            if name == section and entry_key == key:
                # _entries() found an option on that line
                value = _OPTION.match(  # type: ignore[union-attr]
                    self.lines[start]).group('value')
        return value

    def set(self, section: str, key: str, value: str) -> str | None:
        """Set ``key`` in ``section``; returns the previous value or None."""
        old = self.get(section, key)
        new_line = f'{key} = {value}\n'
        entries = self._entries()
        matches = [e for e in entries if e[0] == section and e[1] == key]
        if matches:
            for _, _, start, end in reversed(matches):
                self.lines[start:end] = [new_line]
            return old
        in_section = [e for e in entries if e[0] == section]
        if in_section:
            self._insert(in_section[-1][3], new_line)
        else:
            self._append_section(section, new_line)
        return None

    def update(self, sections: Mapping[str, Mapping[str, Any]]) -> list[str]:
        """Set each option of {section: {option: value}} whose value
        differs; the ``section.option`` names that changed."""
        changed = []
        for section, options in sections.items():
            for option, value in options.items():
                value = str(value)
                if self.get(section, option) != value:
                    self.set(section, option, value)
                    changed.append(f'{section}.{option}')
        return changed

    def _insert(self, index: int, line: str) -> None:
        if index > 0 and not self.lines[index - 1].endswith('\n'):
            self.lines[index - 1] += '\n'
        self.lines.insert(index, line)

    def _append_section(self, section: str, line: str) -> None:
        if self.lines and not self.lines[-1].endswith('\n'):
            self.lines[-1] += '\n'
        if self.lines and self.lines[-1].strip():
            self.lines.append('\n')
        self.lines.extend([f'[{section}]\n', line])


def render(sections: Mapping[str, Mapping[str, Any]]) -> str:
    """The INI text of ``{section: {option: value}}``, in that order."""
    lines = []
    for section, options in sections.items():
        lines.append(f'[{section}]')
        lines.extend(f'{key} = {value}' for key, value in options.items())
        lines.append('')
    return '\n'.join(lines)

"""INI editing for the fake devstack library, with iniset/iniget semantics.

    ini.py set FILE SECTION OPTION VALUE   create file/section/option as needed
    ini.py get FILE SECTION OPTION         print the value (empty if missing)
    ini.py has FILE SECTION OPTION         exit 0 if the option is set
    ini.py delete FILE SECTION OPTION      remove the option

Like devstack's sed-based functions it works line by line, so comments,
order and other sections stay untouched; values are written verbatim.
"""

import pathlib
import re
import sys

SECTION = re.compile(r'^\[(?P<name>[^\]]+)\]\s*$')


def _option_re(option):
    return re.compile(rf'^{re.escape(option)}[ \t]*=[ \t]*(?P<value>.*)$')


def _section_span(lines, section):
    """(start, end) line indexes of a section's body, or None."""
    start = None
    for index, line in enumerate(lines):
        match = SECTION.match(line)
        if match and start is not None:
            return start, index
        if match and match.group('name') == section:
            start = index + 1
    return None if start is None else (start, len(lines))


def _find(lines, section, option):
    span = _section_span(lines, section)
    if span is None:
        return span, None
    pattern = _option_re(option)
    for index in range(*span):
        if pattern.match(lines[index]):
            return span, index
    return span, None


def set_option(lines, section, option, value):
    span, index = _find(lines, section, option)
    entry = f'{option} = {value}'
    if index is not None:
        lines[index] = entry
    elif span is not None:
        end = span[1]
        while end > span[0] and not lines[end - 1].strip():
            end -= 1
        lines.insert(end, entry)
    else:
        lines.extend(['', f'[{section}]', entry])
    return lines


def main(argv):
    action, path, section, option = argv[:4]
    path = pathlib.Path(path)
    lines = path.read_text().splitlines() if path.exists() else []
    span, index = _find(lines, section, option)
    if action == 'get':
        # like devstack's iniget: an empty line when the option is missing
        print('' if index is None else
              _option_re(option).match(lines[index]).group('value'))
        return 0
    if action == 'has':
        return 0 if index is not None else 1
    if action == 'delete':
        if index is not None:
            del lines[index]
    elif action == 'set':
        set_option(lines, section, option, argv[4])
    else:
        print(f'ini.py: unknown action {action}', file=sys.stderr)
        return 2
    path.write_text('\n'.join(lines) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))

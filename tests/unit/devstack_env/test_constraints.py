"""upper-constraints and global-requirements from the project's pins."""

from trovestack.devstack_env import constraints


def test_parse_pins():
    text = '\n'.join(['# comment', 'PyMySQL==1.2.4', 'oslo.config===9.6.0',
                      'pbr>=6.0', 'eventlet==0.36.1 ; python_version>"3"',
                      'keystone[ldap]==30.0.0  # comment', ''])
    assert constraints.parse_pins(text) == {
        'pymysql': '1.2.4', 'oslo-config': '9.6.0', 'eventlet': '0.36.1',
        'keystone': '30.0.0'}


def test_wheel_pins():
    names = ['oslo.config-9.6.0-py3-none-any.whl',
             'PyYAML-6.0.2-cp311-cp311-manylinux_2_17_x86_64.whl',
             'README.txt']
    assert constraints.wheel_pins(names) == {'oslo-config': '9.6.0',
                                             'pyyaml': '6.0.2'}


def test_upper_constraints_prefers_the_project_pins():
    text = constraints.upper_constraints(
        {'nova': '34.0.0', 'pbr': '7.1.3'},
        {'pbr': '7.0.0', 'six': '1.17.0', 'libvirt-python': '12.8.0'},
        drop=['libvirt_python'])
    assert text == 'nova===34.0.0\npbr===7.1.3\nsix===1.17.0\n'


def test_global_requirements_names_every_pin_once():
    text = constraints.global_requirements(['PyMySQL', 'pymysql', 'nova'])
    lines = text.splitlines()
    assert lines == sorted(lines)
    assert lines.count('pymysql>=0') == 1
    assert 'python-memcached>=0' in lines and 'nova>=0' in lines

"""Read a tempest.conf with trove-tempest-plugin's own option definitions."""

from oslo_config import cfg
from trove_tempest_plugin import config as plugin_config

from trovestack.common import ini


def load(path):
    """A ConfigOpts with the plugin's options registered, parsing ``path``."""
    conf = cfg.ConfigOpts()
    conf.register_group(plugin_config.database_group)
    conf.register_opts(plugin_config.DatabaseGroup,
                       group=plugin_config.database_group)
    conf.register_opt(plugin_config.service_option, group='service_available')
    conf(args=['--config-file', str(path)], project='tempest',
         default_config_files=[], default_config_dirs=[])
    return conf


def check(path, options):
    """Each (section, option) must be a plugin option whose value parses.

    Returns {(section, option): parsed value}; raises AssertionError or an
    oslo.config error otherwise.
    """
    conf = load(path)
    known = {'database': {opt.dest for opt in plugin_config.DatabaseGroup},
             'service_available': {plugin_config.service_option.dest}}
    document = ini.IniFile.load(path)
    parsed = {}
    for section, option in options:
        assert option in known[section], f'[{section}] {option} unknown'
        assert document.get(section, option) is not None
        parsed[section, option] = getattr(conf[section], option)
    return parsed

"""Datastores shipped with trovestack (entry points in setup.cfg).

Every Trove guest agent manager since Victoria runs the database in a
container, so container mode is the default. Package mode bakes the
distribution's database packages into the image for offline clouds.
"""

from trovestack.imagebuild import plugins

_GUEST_SERVICES = ('guest-agent', 'docker')

MYSQL = plugins.DatastorePlugin(
    name='mysql',
    manager='mysql',
    versions=('8.0', '8.4'),
    default_version='8.0',
    modes=(plugins.CONTAINER,),
    container_image='mysql',
    config_paths=('/etc/trove/conf.d', '/etc/mysql/conf.d'),
    service_names=_GUEST_SERVICES,
    note='MySQL is not packaged by Debian or Ubuntu main; container mode '
         'only.',
)

MARIADB = plugins.DatastorePlugin(
    name='mariadb',
    manager='mariadb',
    versions=('10.11', '11.4'),
    default_version='10.11',
    modes=(plugins.CONTAINER, plugins.PACKAGE),
    container_image='mariadb',
    package_elements=('trove-guest-mariadb',),
    packages=('mariadb-server', 'mariadb-client', 'mariadb-backup'),
    package_versions={('debian', 'bookworm'): '10.11',
                      ('ubuntu', 'noble'): '10.11',
                      ('ubuntu', 'jammy'): '10.6'},
    config_paths=('/etc/trove/conf.d', '/etc/mysql/conf.d'),
    service_names=_GUEST_SERVICES + ('mariadb',),
)

POSTGRESQL = plugins.DatastorePlugin(
    name='postgresql',
    manager='postgresql',
    versions=('13', '14', '15', '16', '17'),
    default_version='15',
    modes=(plugins.CONTAINER, plugins.PACKAGE),
    container_image='postgres',
    package_elements=('trove-guest-postgresql',),
    packages=('postgresql', 'postgresql-client'),
    package_versions={('debian', 'bookworm'): '15',
                      ('ubuntu', 'noble'): '16',
                      ('ubuntu', 'jammy'): '14'},
    config_paths=('/etc/trove/conf.d', '/etc/postgresql'),
    service_names=_GUEST_SERVICES + ('postgresql',),
)

"""Datastores shipped with trovestack (entry points in setup.cfg).

Every Trove guest agent manager since Victoria runs the database in a
container, so container mode is the default. Package mode bakes the
distribution's database packages into the image for offline clouds.
"""

from trovestack.imagebuild import plugins

MYSQL = plugins.DatastorePlugin(
    name='mysql',
    versions=('8.0', '8.4'),
    default_version='8.0',
    modes=(plugins.CONTAINER,),
    note='MySQL is not packaged by Debian or Ubuntu main; container mode '
         'only.',
)

MARIADB = plugins.DatastorePlugin(
    name='mariadb',
    versions=('10.11', '11.4'),
    default_version='10.11',
    modes=(plugins.CONTAINER, plugins.PACKAGE),
    package_elements=('trove-guest-mariadb',),
    package_versions={('debian', 'bookworm'): '10.11',
                      ('ubuntu', 'noble'): '10.11',
                      ('ubuntu', 'jammy'): '10.6'},
)

POSTGRESQL = plugins.DatastorePlugin(
    name='postgresql',
    versions=('13', '14', '15', '16', '17'),
    default_version='15',
    modes=(plugins.CONTAINER, plugins.PACKAGE),
    package_elements=('trove-guest-postgresql',),
    package_versions={('debian', 'bookworm'): '15',
                      ('ubuntu', 'noble'): '16',
                      ('ubuntu', 'jammy'): '14'},
)

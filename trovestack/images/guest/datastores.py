"""Datastores shipped with trovestack (entry points in setup.cfg).

Trove 26's guest agent runs every datastore in a container: the image is
``[<manager>] docker_image`` + ``:`` + the datastore version, so a guest
image holds the guest agent and a container runtime, never the database
itself, and one image serves every datastore.  The versions follow Trove
2026.2's matrix (MySQL 8.0/8.4, MariaDB 11.4/11.8, PostgreSQL 16/17/18),
plus MariaDB 10.11 and PostgreSQL 15: Debian bookworm's versions, kept
because their offline datastore images (``trovestack
build-datastore-image``) build from a bookworm-only mirror.
"""

from trovestack.images.guest import plugins

MYSQL = plugins.DatastorePlugin(
    name='mysql',
    versions=('8.0', '8.4'),
    default_version='8.4',
    note='No offline datastore image: MySQL is in no Debian suite; guests '
         "pull Trove's image.",
)

MARIADB = plugins.DatastorePlugin(
    name='mariadb',
    versions=('10.11', '11.4', '11.8'),
    default_version='11.8',
)

POSTGRESQL = plugins.DatastorePlugin(
    name='postgresql',
    versions=('15', '16', '17', '18'),
    default_version='17',
    note='17 is the newest version with an offline datastore image.',
)

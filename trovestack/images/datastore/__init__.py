"""Database container images for Trove's guest agent, built offline from
Debian packages (no Docker daemon).

``build('mariadb', '11.8')`` returns a :class:`DatastoreImage`: a
docker-archive named ``trovestack/mariadb:11.8`` (tag == Trove's datastore
version), its sha256, and whether it was (re)built.
``build_backup('mariadb', '11.8')`` builds the image Trove runs its
backups and restores in, ``trovestack/db-backup-mariadb:11.8``
(:mod:`trovestack.images.datastore.backup`).
"""

from trovestack.images.datastore.backup import build_backup  # noqa: F401
from trovestack.images.datastore.builder import BuildError  # noqa: F401
from trovestack.images.datastore.builder import DatastoreImage  # noqa: F401
from trovestack.images.datastore.builder import build  # noqa: F401
from trovestack.images.datastore.datastores import find  # noqa: F401
from trovestack.images.datastore.datastores import supported  # noqa: F401

"""Find and remove what trovestack made in a cloud, and nothing else.

What counts as ours:

* Glance images tagged ``trove`` that also carry every property in
  :data:`MARKER_PROPERTIES` (load-trove-image, and so the devstack plugin
  and ``trovestack provision``, stamp them on every image it uploads).  An
  image tagged ``trove`` by anyone else lacks them and is kept.
* Trove datastore versions whose image is one of those images, and a
  datastore left with no version once they are gone (it held only ours).
* Nova flavors of the test flavor table (trovestack.testenv.flavors) whose
  id, name and spec match the table exactly; a flavor with a table id or
  name but another spec is someone else's and is kept.
* On this host (:func:`clean_builds`, no cloud needed): the work
  directories of image builds that were killed, with what is mounted or
  attached below them, and diskimage-builder's /tmp/dib_build.*,
  /tmp/dib_image.* whose creator is gone; a running build's are kept.

The plan (:class:`Item` objects, which know how to delete themselves) is
made before anything is deleted; deletion goes on past a failed item and
every item reports what happened to it.  :func:`clean` does it all and
returns a :class:`CleanResult` of result rows.
"""

import dataclasses
import logging

import load_image
from load_image import datastores as ds_registry
from trovestack.common import connection
from trovestack.common import results
from trovestack.images.datastore import builder as datastore_builder
from trovestack.images.guest import builder as image_builder
from trovestack.testenv import flavors as flavors_mod

LOG = logging.getLogger(__name__)

GUEST_IMAGE_TAG = load_image.GUEST_IMAGE_TAG
# Stamped by load_image.load() on every image it uploads.
MARKER_PROPERTIES = ('trove_datastore', 'trove_datastore_version')
NO_FLAVORS = 'none'

DELETED = results.DELETED
WOULD_DELETE = results.WOULD_DELETE
KEPT = results.KEPT
FAILED = results.FAILED


@dataclasses.dataclass
class CleanResult:
    """What clean() did (or would do) to each resource."""

    rows: list
    failures: int = 0


@dataclasses.dataclass
class Item:
    """A planned deletion: a resource, what happens to it, and how."""

    resource_type: str
    name: str
    id: str
    action: str
    detail: str = ''
    uses: str = ''  # id of the image a datastore version points at
    delete: object = dataclasses.field(default=None, repr=False,
                                       compare=False)
    # Items that must be gone first; if one fails this one is kept.
    requires: list = dataclasses.field(default_factory=list, repr=False,
                                       compare=False)


def is_ours(image):
    """True for an image tagged trove with every trovestack marker."""
    properties = image.properties or {}
    return (GUEST_IMAGE_TAG in (image.tags or [])
            and all(properties.get(key) for key in MARKER_PROPERTIES))


def plan_images(conn, datastores=None):
    """(items, our image ids) for the images tagged ``trove``.

    With ``datastores`` only our images of those datastores are planned
    for deletion; images without our marker are always listed as kept.
    """
    items, ours = [], set()
    for image in conn.image.images(tag=GUEST_IMAGE_TAG):
        if is_ours(image):
            datastore = (image.properties or {}).get('trove_datastore')
            if datastores and datastore not in datastores:
                continue
            ours.add(image.id)
            properties = image.properties or {}
            items.append(Item(
                'image', image.name, image.id, WOULD_DELETE,
                f'{properties.get("trove_datastore")} '
                f'{properties.get("trove_datastore_version")} guest image',
                delete=_deleter(conn.image.delete_image, image.id)))
        else:
            missing = [key for key in MARKER_PROPERTIES
                       if not (image.properties or {}).get(key)]
            items.append(Item('image', image.name, image.id, KEPT,
                              'tagged trove but not made by trovestack (no '
                              + ', '.join(missing) + ')'))
    return items, ours


def plan_datastores(trove, image_ids):
    """Items for the versions using ``image_ids`` and emptied datastores."""
    versions = ds_registry.list_versions(trove)
    items, by_datastore = [], {}
    for version in versions:
        by_datastore.setdefault(
            (version.datastore_name, version.datastore_id), []).append(version)
    for (name, datastore_id), members in sorted(by_datastore.items()):
        ours = [Item('datastore version', f'{name} {version.name}',
                     version.id, WOULD_DELETE, f'uses image {version.image}',
                     uses=version.image,
                     delete=_deleter(trove.mgmt_ds_versions.delete,
                                     version.id))
                for version in members if version.image in image_ids]
        items.extend(ours)
        if ours and len(ours) == len(members):
            items.append(Item(
                'datastore', name, datastore_id, WOULD_DELETE,
                'has no other version',
                delete=_deleter(trove.datastores.delete, datastore_id),
                requires=ours))
    return items


def link_images(image_items, datastore_items):
    """Make each image wait for the versions that use it to go first."""
    versions = [item for item in datastore_items
                if item.resource_type == 'datastore version']
    for image in image_items:
        image.requires = [v for v in versions if v.uses == image.id]


def plan_flavors(conn, flavor_set=flavors_mod.DEFAULT_FLAVOR_SET):
    """Items for the table's flavors that exist (exact matches only)."""
    existing = flavors_mod.inventory(conn)
    items = []
    for spec in flavors_mod.flavor_specs(flavor_set):
        matching = existing.matching(spec)
        if not matching:
            continue
        flavor = matching[0]
        differences = spec.differences(flavor)
        if differences:
            items.append(Item('flavor', flavor.name, flavor.id, KEPT,
                              'differs from the test flavor table: '
                              + ', '.join(differences)))
        else:
            items.append(Item(
                'flavor', flavor.name, flavor.id, WOULD_DELETE,
                f'test flavor ({flavor_set} set)',
                delete=_deleter(conn.compute.delete_flavor, flavor.id)))
    return items


def execute(items):
    """Delete every planned item; returns the number that failed."""
    failures = 0
    for item in items:
        if item.action != WOULD_DELETE:
            continue
        blocked = [r for r in item.requires if r.action != DELETED]
        if blocked:
            item.action = KEPT
            item.detail = ('kept because ' + ', '.join(
                f'{r.resource_type} {r.name}' for r in blocked)
                + ' could not be deleted')
            continue
        LOG.info('Deleting %s %s (%s)', item.resource_type, item.name,
                 item.id)
        try:
            item.delete()
        except Exception as exc:  # noqa: BLE001 - go on, report at the end
            LOG.error('Cannot delete %s %s (%s): %s', item.resource_type,
                      item.name, item.id, ' '.join(str(exc).split()))
            item.action = FAILED
            item.detail = ' '.join(str(exc).split())[:200]
            failures += 1
        else:
            item.action = DELETED
    return failures


def _deleter(function, resource_id):
    def delete():
        return function(resource_id)
    return delete


def plan(conn, flavor_set=flavors_mod.DEFAULT_FLAVOR_SET, datastores=None):
    """Every Item, in the order they must be deleted."""
    image_items, our_images = plan_images(conn, datastores)
    datastore_items = plan_datastores(connection.trove_client(conn),
                                      our_images)
    link_images(image_items, datastore_items)
    flavor_items = []
    if flavor_set != NO_FLAVORS:
        flavor_items = plan_flavors(conn, flavor_set)
    return datastore_items + image_items + flavor_items


def clean(conn, *, flavor_set=flavors_mod.DEFAULT_FLAVOR_SET,
          datastores=None, dry_run=False):
    """Delete what trovestack made (or, with dry_run, say what would go)."""
    items = plan(conn, flavor_set, datastores)
    failures = 0 if dry_run else execute(items)
    return CleanResult(
        rows=[results.Row(item.resource_type, _text(item.name), item.action,
                          item.detail, id=_text(item.id)) for item in items],
        failures=failures)


BUILD_WORK_DIR = 'build work dir'


def clean_builds(dry_run=False):
    """Remove what killed guest and datastore image builds left on this
    host: their work directories, what is mounted below them and the loop
    devices backed by their files (see trovestack.common.workdirs).  The
    default output directories are searched besides the registered work
    directories.  Returns a CleanResult."""
    swept = image_builder.sweep(
        [image_builder.default_cache_dir() / 'images'], dry_run=dry_run)
    swept += datastore_builder.sweep(
        [datastore_builder.default_output_dir()], dry_run=dry_run)
    rows = [results.Row(BUILD_WORK_DIR, s.path, s.action, s.detail,
                        id=s.owner) for s in swept]
    return CleanResult(rows=rows, failures=len(results.failed(rows)))


def _text(value):
    # troveclient sometimes hands ids over as bytes.
    return value.decode() if isinstance(value, bytes) else value

"""Is a cloud ready for Trove's tests?  A list of checks, each saying why.

Every check gives one result row (kind ``check``) whose ``action`` is
``ok``, ``missing`` (something must be created or registered), ``failed``
(it is there but wrong, or the check itself could not be done),
``warning`` (it works, but probably not as meant: a guest agent from
another Trove than the control plane's), ``info`` (nothing to compare
with) or ``skipped`` (not asked for).  :func:`run_checks` runs them all in
order.  Nothing here changes the cloud.
"""

import dataclasses
import logging
import os

import load_image
from load_image import datastores as ds_registry
from trovestack.cloud import trove_source
from trovestack.common import connection
from trovestack.common import errors
from trovestack.common import ini
from trovestack.common import results
from trovestack.testenv import flavors as flavors_mod

LOG = logging.getLogger(__name__)

OK = results.OK
MISSING = results.MISSING
FAILED = results.FAILED
SKIPPED = results.SKIPPED
WARNING = results.WARNING
INFO = 'info'
PROBLEMS = (MISSING, FAILED)

# (service type, what runs it): what Trove's tests need in the catalog.
REQUIRED_SERVICES = (
    ('identity', 'Keystone'),
    ('image', 'Glance'),
    ('compute', 'Nova'),
    ('database', 'Trove'),
)
GUEST_IMAGE_TAG = load_image.GUEST_IMAGE_TAG


def _check(label, result, detail=''):
    """The result row of one check."""
    return results.Row('check', label, result, detail)


def problems(checks):
    """The checks that are missing or failed."""
    return [c for c in checks if c.action in PROBLEMS]


def warnings(checks):
    """The checks that passed with a warning."""
    return [c for c in checks if c.action == WARNING]


def check_services(conn):
    """One check row per required service type in the catalog."""
    catalog = _catalog_types(conn)
    checks = []
    for service_type, project in REQUIRED_SERVICES:
        if service_type in catalog:
            checks.append(_check(f'service {service_type}', OK,
                                f'{project} is in the catalog'))
        else:
            checks.append(_check(
                f'service {service_type}', MISSING,
                f'no {service_type} endpoint in the catalog ({project} is '
                'not deployed or not registered in Keystone)'))
    return checks


def _catalog_types(conn):
    access = conn.session.auth.get_access(conn.session)
    return {entry.get('type') for entry in access.service_catalog.catalog}


def check_guest_images(conn):
    """[Row]: is there at least one active image tagged ``trove``?"""
    images = list(conn.image.images(tag=GUEST_IMAGE_TAG))
    active = [image for image in images if image.status == 'active']
    if active:
        names = ', '.join(sorted(image.name or image.id for image in active))
        return [_check('guest images', OK,
                      f'{len(active)} active image(s) tagged '
                      f'{GUEST_IMAGE_TAG}: {names}')]
    if images:
        states = ', '.join(sorted(f'{image.name} ({image.status})'
                                  for image in images))
        return [_check('guest images', FAILED,
                      f'no image tagged {GUEST_IMAGE_TAG} is active: '
                      f'{states}')]
    return [_check('guest images', MISSING,
                  f'no image tagged {GUEST_IMAGE_TAG} in Glance; build one '
                  'with "trovestack build-image" and load it with '
                  '"trovestack load-image"')]


def check_datastores(conn, versions, wanted=None, control=None):
    """Checks for each wanted datastore (all registered ones by default).

    ``versions`` are the management API's datastore versions (every field,
    inactive ones too); ``wanted`` is [(name, version or None)] where None
    means the datastore's default version.  With ``control`` (a
    :class:`ControlPlane`), the guest agent of each version's image is
    compared with the control plane's Trove.
    """
    by_datastore = {}
    for version in versions:
        by_datastore.setdefault(version.datastore_name, []).append(version)
    if not wanted:
        if not by_datastore:
            return [_check('datastores', MISSING,
                          'no datastore version is registered in Trove; '
                          'register one with "trovestack load-image"')]
        wanted = [(name, None) for name in sorted(by_datastore)]
    checks = []
    for name, version in wanted:
        checks.extend(_check_datastore(conn, name, version,
                                       by_datastore.get(name, []),
                                       sorted(by_datastore), control))
    return checks


def _check_datastore(conn, name, version, versions, known, control=None):
    label = f'datastore {name}' + (f':{version}' if version else '')
    if not versions:
        return [_check(label, MISSING,
                      f'datastore {name!r} is not registered (registered: '
                      f'{", ".join(known) or "none"})')]
    default = next((v for v in versions if v.default), None)
    if version is None:
        if default is None:
            return [_check(label, MISSING,
                          f'datastore {name!r} has no default version; '
                          f'run "trovestack activate {name} VERSION"')]
        target = default
    else:
        target = next(iter(ds_registry.matching_versions(versions, version)),
                      None)
        if target is None:
            names = ', '.join(sorted(v.name for v in versions))
            return [_check(label, MISSING,
                          f'datastore {name!r} has no version {version!r} '
                          f'(versions: {names})')]
    checks = [_version_state(label, name, target, default)]
    image_check, image = _version_image(conn, label, target)
    checks.append(image_check)
    if control is not None and image is not None:
        checks.append(check_agent(f'{label} guest agent', image, control))
    return checks


def _version_state(label, name, target, default):
    if not target.active:
        return _check(label, FAILED,
                     f'version {target.name} is registered but inactive; '
                     f'run "trovestack activate {name} {target.name}"')
    if default is None or default.id != target.id:
        current = default.name if default is not None else 'none'
        return _check(label, FAILED,
                     f'version {target.name} is active but not the default '
                     f'(default: {current}); run "trovestack activate '
                     f'{name} {target.name}"')
    return _check(label, OK,
                 f'version {target.name} is registered, active and default')


def _version_image(conn, label, version):
    """(check row, the Glance image or None)."""
    check = f'{label} image'
    if version.image:
        image = conn.image.find_image(version.image)
        if image is None:
            return _check(check, MISSING,
                         f'version {version.name} points at image '
                         f'{version.image}, which is not in Glance'), None
        return _image_state(check, image), image
    tags = [t for t in (version.image_tags or []) if t]
    if not tags:
        return _check(check, MISSING,
                     f'version {version.name} has neither an image nor '
                     'image tags'), None
    images = [i for i in conn.image.images(tag=tags[0])
              if set(tags) <= set(i.tags or [])]
    active = [i for i in images if i.status == 'active']
    if not active:
        return _check(check, MISSING,
                     f'no active image has the tags {", ".join(tags)} '
                     f'that version {version.name} selects by'), None
    return _image_state(check, active[0]), active[0]


def _image_state(check, image):
    label = f'{image.name} ({image.id})'
    if image.status != 'active':
        return _check(check, FAILED, f'image {label} is {image.status}, '
                     'not active')
    if GUEST_IMAGE_TAG not in (image.tags or []):
        return _check(check, FAILED,
                     f'image {label} is active but not tagged '
                     f'{GUEST_IMAGE_TAG}')
    return _check(check, OK, f'image {label} is active and tagged '
                 f'{GUEST_IMAGE_TAG}')


# Glance properties of a built image: where its guest agent comes from
# (TroveSource.identity()'s form; git:<url>@<commit> for a git build), its
# version and, for a tree, the digest of the tree's content.
AGENT_SOURCE = 'trove_agent_source'
AGENT_VERSION = 'trove_agent_version'
AGENT_DIGEST = 'trove_agent_digest'
REBUILD = ('rebuild the image ("trovestack provision"; devstack: stack.sh) '
           'or update running guests ("trovestack instance sync-agent")')


@dataclasses.dataclass(frozen=True)
class ControlPlane:
    """The Trove the control plane runs: ``source`` None when unknown,
    ``where`` how it was found, or why it could not be."""

    source: trove_source.TroveSource | None
    where: str


@dataclasses.dataclass(frozen=True)
class ImageAgent:
    """What an image records of its guest agent (None: not recorded)."""

    source: str | None = None
    version: str | None = None
    digest: str | None = None

    @classmethod
    def of(cls, image):
        properties = dict(getattr(image, 'properties', None) or {})
        return cls(*(properties.get(key) or getattr(image, key, None)
                     for key in (AGENT_SOURCE, AGENT_VERSION, AGENT_DIGEST)))

    def describe(self):
        text = self.source or 'unknown'
        return text + (f' (trove {self.version})' if self.version else '')


def control_plane(conn, *, trove_dir=None, state_dir=None):
    """The :class:`ControlPlane` of ``conn``'s cloud: the tree given
    (``--trove-dir``: devstack's ``$TROVE_DIR``), else the local cloud's
    Trove when ``conn`` is the local cloud of ``state_dir`` (its Keystone),
    else unknown.  A ``trove_dir`` that is no Trove tree is a UserError."""
    if trove_dir:
        return ControlPlane(trove_source.of_tree(trove_dir),
                            f'--trove-dir {trove_dir}')
    from trovestack.cloud import configs

    layout = configs.local_cloud_at(connection.auth_url(conn), state_dir)
    if layout is not None:
        where = f'the local cloud of {layout.root}'
        try:
            return ControlPlane(trove_source.of_cloud(layout.root), where)
        except errors.UserError as exc:  # its tree is gone
            return ControlPlane(None, f'{where}: {exc}')
    return ControlPlane(None, 'not the local cloud of this machine; for '
                              'devstack give --trove-dir $TROVE_DIR')


def tree_digest(path):
    """The content digest of a Trove tree, as a local build records it."""
    from trovestack.images.guest import guest_agent

    return guest_agent.source_identity(guest_agent.LOCAL, path=path) \
        .split(':', 1)[1]


def _hex(digest):
    return (digest or '').rsplit(':', 1)[-1] or None


def _same_code(agent, source):
    """True when the agent's recorded source is the control plane's
    code: the same identity, or a git build of the clean tree's commit."""
    if agent.source == source.identity():
        return True
    if agent.source.startswith('git:') and source.commit and \
            not source.dirty:
        return agent.source.rsplit('@', 1)[-1] == source.commit
    return False


def check_agent(label, image, control):
    """One check: does ``image``'s guest agent come from the Trove the
    control plane runs?  ``warning`` when not (or when the tree changed
    since the build), ``info`` when either side is unknown."""
    agent = ImageAgent.of(image)
    name = image.name or image.id
    if not agent.source:
        return _check(label, INFO,
                      f'image {name} records no guest agent source '
                      f'({AGENT_SOURCE}): unknown, loaded before images '
                      'recorded it')
    source = control.source
    if source is None:
        return _check(label, INFO,
                      f'image {name}: guest agent {agent.describe()}; the '
                      f"control plane's Trove is unknown ({control.where})")
    if not _same_code(agent, source):
        return _check(label, WARNING,
                      f'image {name} has the guest agent '
                      f'{agent.describe()}, the control plane runs '
                      f'{source.identity()} ({source.describe()}): {REBUILD}')
    if source.is_tree and agent.digest:
        try:
            current = tree_digest(source.path)
        except errors.UserError as exc:  # the tree went away
            return _check(label, INFO, f'image {name}: guest agent '
                          f'{agent.describe()}; {exc}')
        if _hex(agent.digest) != current:
            return _check(label, WARNING,
                          f'image {name} has the guest agent of '
                          f'{source.path}, which changed since the image '
                          f'was built (digest {_hex(agent.digest)[:12]}, '
                          f'now {current[:12]}): {REBUILD}')
    return _check(label, OK,
                  f'image {name} has the guest agent {agent.describe()}, '
                  "the control plane's")


def check_flavors(conn, flavor_set, extra_ids=()):
    """Are the test flavors of ``flavor_set`` (and ``extra_ids``) there?"""
    by_id = flavors_mod.inventory(conn).by_id
    specs = flavors_mod.flavor_specs(flavor_set)
    missing, different = [], []
    for spec in specs:
        flavor = by_id.get(spec.id)
        if flavor is None:
            missing.append(f'{spec.name} (id {spec.id})')
        elif spec.differences(flavor):
            different.append(f'{spec.name} (id {spec.id}): '
                             + ', '.join(spec.differences(flavor)))
    label = f'flavors {flavor_set}'
    checks = []
    if missing:
        checks.append(_check(label, MISSING,
                            f'{len(missing)} of {len(specs)} missing: '
                            + ', '.join(missing)
                            + '; run "trovestack flavors"'))
    elif different:
        checks.append(_check(label, FAILED,
                            f'{len(different)} differ from the test flavor '
                            'table: ' + '; '.join(different)))
    else:
        checks.append(_check(label, OK, f'all {len(specs)} present'))
    for option, flavor_id in extra_ids:
        if flavor_id in by_id:
            checks.append(_check(f'flavor {option}', OK,
                                f'{flavor_id} ({by_id[flavor_id].name}) '
                                'exists'))
        else:
            checks.append(_check(f'flavor {option}', MISSING,
                                f'tempest.conf names flavor {flavor_id}, '
                                'which Nova does not have'))
    return checks


def read_tempest_conf(path):
    """The IniFile at ``path``; raises OSError when unreadable."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path} does not exist')
    return ini.IniFile.load(path)


def check_tempest_conf(path, registered_names):
    """[database] and [service_available] trove of a tempest.conf."""
    label = 'tempest config'
    try:
        document = read_tempest_conf(path)
    except (OSError, ValueError) as exc:
        return [_check(label, MISSING,
                      f'cannot read {path}: {exc}; run "trovestack '
                      'test-config --tempest-conf PATH"')]
    checks = []
    available = (document.get('service_available', 'trove') or '').lower()
    if available == 'true':
        checks.append(_check(f'{label} trove', OK,
                            '[service_available] trove = True'))
    else:
        checks.append(_check(f'{label} trove', MISSING,
                            f'{path} lacks [service_available] trove = True'))
    enabled = [name.strip() for name in
               (document.get('database', 'enabled_datastores') or '')
               .split(',') if name.strip()]
    if not enabled:
        checks.append(_check(f'{label} datastores', MISSING,
                            f'{path} lacks [database] enabled_datastores'))
        return checks
    unknown = [name for name in enabled
               if registered_names is not None
               and name not in registered_names]
    if unknown:
        checks.append(_check(f'{label} datastores', FAILED,
                            f'[database] enabled_datastores names '
                            f'{", ".join(unknown)}, not registered in '
                            'Trove'))
    else:
        checks.append(_check(f'{label} datastores', OK,
                            'enabled_datastores = ' + ','.join(enabled)))
    return checks


def tempest_flavor_ids(path):
    """[(option, id)] of the flavors a readable tempest.conf names."""
    try:
        document = read_tempest_conf(path)
    except (OSError, ValueError):
        return []
    found = []
    for option in ('flavor_id', 'resize_flavor_id'):
        value = document.get('database', option)
        if value:
            found.append((option, value))
    return found


def run_checks(conn, *, datastores=None, tempest_conf=None,
               flavor_set='tempest', control=None):
    """Every check, in order, as result rows; an API failure in one check
    becomes its failed row.  ``control``: the :class:`ControlPlane` whose
    Trove each checked version's guest agent is compared with (None: no
    comparison)."""
    checks = check_services(conn)
    present = {c.name.split()[-1] for c in checks if c.action == OK}
    if 'image' in present:
        checks.extend(_guarded('guest images', check_guest_images, conn))
    registered = None
    if {'database', 'image'} <= present:
        registered, datastore_checks = _datastore_checks(conn, datastores,
                                                         control)
        checks.extend(datastore_checks)
    else:
        checks.append(_check(
            'datastores', MISSING,
            'not checked: needs the database and image services'))
    tempest_flavors = []
    if tempest_conf:
        tempest_flavors = tempest_flavor_ids(tempest_conf)
    if 'compute' in present:
        checks.extend(_guarded(f'flavors {flavor_set}', check_flavors,
                               conn, flavor_set, tempest_flavors))
    else:
        checks.append(_check(f'flavors {flavor_set}', MISSING,
                            'not checked: needs the compute service'))
    if tempest_conf:
        checks.extend(check_tempest_conf(tempest_conf, registered))
    else:
        checks.append(_check('tempest config', SKIPPED,
                            'no --tempest-conf given'))
    return checks


def _datastore_checks(conn, wanted, control=None):
    """(registered datastore names, checks)."""
    try:
        if not connection.has_admin_role(conn):
            return None, [_check(
                'datastores', FAILED,
                'not checked: the management API needs the admin role, '
                'which these credentials lack')]
        versions = ds_registry.list_versions(connection.trove_client(conn))
    except Exception as exc:  # noqa: BLE001 - reported as a row
        LOG.debug('Datastore check failed', exc_info=True)
        return None, [_check('datastores', FAILED, _one_line(exc, 'Trove'))]
    names = {v.datastore_name for v in versions}
    return names, _guarded('datastores', check_datastores, conn, versions,
                           wanted, control)


def _guarded(label, function, *args):
    """function(*args); an API failure becomes one failed check."""
    try:
        return function(*args)
    except Exception as exc:  # noqa: BLE001 - reported as a row
        LOG.debug('Check %s failed', label, exc_info=True)
        return [_check(label, FAILED, _one_line(exc))]


def _one_line(exc, where=''):
    text = ' '.join(str(exc).split()) or type(exc).__name__
    return f'{where}: {text}' if where else text

"""Trove's configuration for instances on a prepared cloud: the one path the
devstack plugin's extra phase (:mod:`trovestack.orchestration.devstack`)
and ``trovestack provision`` on the compute-enabled local cloud
(:mod:`trovestack.trove.compute_trove`) share.

:func:`instance_settings` turns what :func:`instance_prereqs.converge`
found or made, and the image choice, into
:class:`trove_config.InstanceSettings`; :func:`apply` writes them (and
Trove's default datastore) into trove.conf and trove-guestagent.conf.
"""

import pathlib
from collections.abc import Mapping
from collections.abc import Sequence

from trovestack.common import results
from trovestack.trove import instance_prereqs
from trovestack.trove import trove_config


def instance_settings(
        prepared: instance_prereqs.Prepared, *,
        docker_images: Mapping[str, str],
        insecure_registries: Sequence[str] = (),
        network_isolation: bool = False, volume_support: bool = True,
        volume_type: str | None = None,
        timeouts: trove_config.Timeouts = trove_config.TCG_TIMEOUTS,
        guest_transport_url: str | None = None,
        backup_docker_images: Mapping[str, str] | None = None,
) -> trove_config.InstanceSettings:
    """:class:`trove_config.InstanceSettings` from ``prepared``
    (:class:`instance_prereqs.Prepared`) and the caller's choices."""
    return trove_config.InstanceSettings(
        management_networks=[prepared.network_id] if prepared.network_id
        else [],
        management_security_groups=[prepared.security_group_id]
        if prepared.security_group_id else [],
        docker_images=docker_images,
        backup_docker_images=backup_docker_images or {},
        insecure_registries=insecure_registries,
        network_isolation=network_isolation,
        volume_support=volume_support, volume_type=volume_type,
        timeouts=timeouts, keypair=prepared.keypair,
        guest_transport_url=guest_transport_url)


def apply(settings: trove_config.InstanceSettings,
          config_files: Mapping[str, pathlib.Path | str], *,
          default_datastore: str | None = None,
          extra: trove_config.Config | None = None) -> list[results.Row]:
    """Write ``settings`` (and ``default_datastore``, and ``extra``
    {file: {section: {option: value}}}) into ``config_files`` ({file name:
    path}); [Row] per file (updated or unchanged)."""
    config = trove_config.instance_config(settings)
    if default_datastore:
        config[trove_config.TROVE_CONF]['DEFAULT']['default_datastore'] = \
            default_datastore
    for name, sections in (extra or {}).items():
        for section, options in sections.items():
            config[name].setdefault(section, {}).update(options)
    return trove_config.apply(config, config_files)

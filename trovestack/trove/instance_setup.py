"""Trove's configuration for instances on a prepared cloud: the one path the
devstack plugin's extra phase (:mod:`trovestack.orchestration.devstack`)
and ``trovestack provision`` on the compute-enabled local cloud
(:mod:`trovestack.trove.compute_trove`) share.

:func:`instance_settings` turns what :func:`instance_prereqs.converge`
found or made, and the image choice, into
:class:`trove_config.InstanceSettings`; :func:`apply` writes them (and
Trove's default datastore) into trove.conf and trove-guestagent.conf.
"""

from trovestack.trove import trove_config


def instance_settings(prepared, *, docker_images, insecure_registries=(),
                      network_isolation=False, volume_support=True,
                      volume_type=None, timeouts=trove_config.TCG_TIMEOUTS,
                      guest_transport_url=None, backup_docker_images=None):
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


def apply(settings, config_files, *, default_datastore=None, extra=None):
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

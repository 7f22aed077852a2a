"""The control plane's side of one instance, with Trove's own code.

Runs as a child process inside the verification namespace (``python -m
trovestack.images.verify.control``), where the broker listens.  It reads a JSON
spec on stdin and writes one JSON event per line on stdout:

- ``files``: what Trove's ``get_injected_files`` puts on the config drive
  (guest_info.conf, trove-guestagent.conf, daemon.json), computed by that
  very method with a per-instance RPC key, as the taskmanager does;
- ``prepare``: ``trove.guestagent.api.API.prepare`` was cast, as the
  taskmanager casts it right after the server is created (the message waits
  in the guest's queue until the agent consumes it);
- ``heartbeat``: each heartbeat the conductor topic receives (status);
- ``database``/``user``: a database and a user created through the guest
  API and listed back once the guest reported HEALTHY (instance ACTIVE).

It exits when stdin closes (the parent is gone) or after the last event.
Nothing here touches a database: the instance key lives in memory.
"""

import json
import os
import sys
import tempfile
import threading
import time
import types
from typing import Any

EXIT_WHEN_PARENT_GONE = 0.5


def _emit(event: str, **fields: object) -> None:
    sys.stdout.write(json.dumps(dict(fields, event=event)) + '\n')
    sys.stdout.flush()


def _watch_parent() -> None:
    """Exit when the parent closes our stdin (it died or gave up)."""
    sys.stdin.read()
    os._exit(0)


class _DatastoreVersion:
    """The attributes of a datastore version that Trove's templates and
    injected-file code read."""

    def __init__(self, datastore: str, manager: str, version: str) -> None:
        self.datastore_name = datastore
        self.manager = manager
        self.name = version
        self.version = version
        self.registry_ext = None
        self.repl_strategy = None


def _instance_class() -> type:
    from trove.instance import models

    class Instance:
        """Just what get_injected_files reads of a Trove instance."""

        get_injected_files = models.BaseInstance.get_injected_files
        datastore_registry_ext = models.BaseInstance.datastore_registry_ext
        datastore_repl_strategy = models.BaseInstance.datastore_repl_strategy

        def __init__(self, instance_id: str,
                     ds_version: _DatastoreVersion) -> None:
            self.id = instance_id
            self.tenant_id = 'trovestack-verify'
            self.ds_version = ds_version
            self.db_info = types.SimpleNamespace(ssl_mode=None)

    return Instance


def _configure(spec: dict[str, Any], guest_config: str) -> Any:
    from oslo_messaging import opts as messaging_opts
    from trove import rpc
    from trove.common import cfg

    from trovestack.trove import trove_config

    conf = cfg.CONF
    # transport_url is registered by oslo.messaging on first use.
    conf.register_opts([option for group, options in messaging_opts.list_opts()
                        if group in (None, 'DEFAULT') for option in options
                        if option.name == 'transport_url'])
    conf([], project='trove', default_config_files=[])
    conf.set_override('transport_url', spec['transport_url'])
    conf.set_override('guest_config', str(guest_config))
    conf.set_override('docker_insecure_registries',
                      spec.get('insecure_registries') or [])
    conf.set_override('network_isolation', False, group='network')
    # The guest API calls wait as long as the local cloud's taskmanager and
    # API do for a TCG guest (Trove's 15 s for list_databases is exceeded
    # by a guest on a busy 2-core host).
    for name in ('agent_call_low_timeout', 'agent_call_high_timeout'):
        conf.set_override(name, getattr(trove_config.TCG_TIMEOUTS, name))
    rpc.set_defaults(control_exchange='trove')
    rpc.init(conf)
    return conf


def _remember_key(instance_id: str, key: str | None) -> None:
    """Trove looks the per-instance key up in its database; ours is kept
    in Trove's own key cache instead."""
    from trove.instance import models

    models._instance_encryption_key = models.instance_encryption_key_cache(
        func=lambda wanted: key if wanted == instance_id else None)


def _guest_api(context: Any, instance_id: str) -> Any:
    import oslo_messaging as messaging
    from trove import rpc
    from trove.guestagent import api

    class GuestAPI(api.API):
        def _create_guest_queue(self) -> None:
            # As upstream, without reading the key from the database.
            target = messaging.Target(topic=self._get_routing_key(),
                                      server=self.id,
                                      version=self.API_BASE_VERSION)
            from trove.instance.models import get_instance_encryption_key
            server = rpc.get_server(target, [],
                                    key=get_instance_encryption_key(self.id))
            server.start()
            server.stop()
            server.wait()

    return GuestAPI(context, instance_id)


class ConductorEndpoint:
    """Receives what the guest casts on the conductor topic."""

    def __init__(self, instance_id: str) -> None:
        import oslo_messaging as messaging

        self.target = messaging.Target(version='1.0')
        self.instance_id = instance_id
        self.statuses: list[str | None] = []
        self.changed = threading.Condition()

    def heartbeat(self, context: dict[str, Any], instance_id: str,
                  payload: dict[str, Any], sent: object = None) -> None:
        status = payload.get('service_status')
        _emit('heartbeat', instance_id=instance_id, status=status)
        with self.changed:
            self.statuses.append(status)
            self.changed.notify_all()

    def update_backup(self, context: dict[str, Any], instance_id: str,
                      backup_id: str, sent: object = None,
                      **fields: object) -> None:
        _emit('cast', method='update_backup')

    def report_root(self, context: dict[str, Any], instance_id: str,
                    user: object = None) -> None:
        _emit('cast', method='report_root')

    def notify_end(self, context: dict[str, Any],
                   serialized_notification: object,
                   notification_args: object) -> None:
        _emit('cast', method='notify_end')

    def notify_exc_info(self, context: dict[str, Any],
                        serialized_notification: object, message: str,
                        exception: object) -> None:
        _emit('cast', method='notify_exc_info', message=message)

    def wait_for(self, wanted: str) -> None:
        with self.changed:
            while wanted not in self.statuses:
                self.changed.wait()


def _conductor_server(conf: Any, endpoint: ConductorEndpoint) -> Any:
    import oslo_messaging as messaging
    from oslo_messaging.rpc import dispatcher
    from trove import rpc
    from trove.common.rpc import conductor_host_serializer
    from trove.common.rpc import serializer

    target = messaging.Target(topic=conf.conductor_queue, server='verify',
                              version='1.0')
    server = messaging.get_rpc_server(
        rpc.TRANSPORT, target, [endpoint], executor='threading',
        serializer=conductor_host_serializer.ConductorHostSerializer(
            serializer.TroveRequestContextSerializer(None)),
        access_policy=dispatcher.DefaultRPCAccessPolicy)
    server.start()
    return server


def _taskmanager_context(instance_id: str) -> Any:
    """A request context as trove-taskmanager holds it while creating an
    instance: it carries the create notification, which the guest ends
    (through the conductor) when prepare is over."""
    from trove.common import context as trove_context
    from trove.common import notification

    context = trove_context.TroveContext(project_id='trovestack-verify')
    context.notification = notification.DBaaSInstanceCreate(
        context, request_id=context.request_id, server_type='taskmanager',
        tenant_id=context.project_id, instance_id=instance_id)
    return context


def _schema_models(manager: str) -> tuple[type, type]:
    if manager == 'postgresql':
        from trove.common.db.postgresql import models
        return models.PostgreSQLSchema, models.PostgreSQLUser
    from trove.common.db.mysql import models
    return models.MySQLSchema, models.MySQLUser


def _create_and_list(guest: Any, manager: str, spec: dict[str, Any]) -> None:
    """A database and a user through the guest API, then list them back
    until both show up (create_* are casts)."""
    schema_cls, user_cls = _schema_models(manager)
    database = schema_cls(name=spec['database'])
    # A user's databases are given by name; the model builds their schemas.
    user = user_cls(name=spec['user'], password=spec['user_password'],
                    databases=[spec['database']])
    guest.create_database([database.serialize()])
    guest.create_user([user.serialize()])
    databases = users = []
    while True:
        databases = [d['_name'] for d in guest.list_databases()[0]]
        users = [u['_name'] for u in guest.list_users()[0]]
        if spec['database'] in databases and spec['user'] in users:
            break
        time.sleep(2)
    _emit('database', names=databases)
    _emit('user', names=users)


def main() -> None:
    spec = json.loads(sys.stdin.readline())
    manager = spec['manager']
    instance_id = spec['instance_id']
    with tempfile.NamedTemporaryFile('w', dir=spec['work_dir'],
                                     prefix='guest-', suffix='.conf',
                                     delete=False) as f:
        f.write(spec['guest_config'])
    try:
        conf = _configure(spec, f.name)

        from trove.common import crypto_utils
        from trove.common import template

        key = (crypto_utils.generate_random_key()
               if conf.enable_secure_rpc_messaging else None)
        _remember_key(instance_id, key)
        ds_version = _DatastoreVersion(spec['datastore'], manager,
                                       spec['version'])
        instance = _instance_class()(instance_id, ds_version)
        files = instance.get_injected_files(manager, spec['version'])
    finally:
        os.unlink(f.name)
    # Listen on the conductor topic before anything can heartbeat.
    endpoint = ConductorEndpoint(instance_id)
    server = _conductor_server(conf, endpoint)
    _emit('files', files=files)
    sys.stdin.readline()  # "go": the guest has been started
    threading.Thread(target=_watch_parent, daemon=True).start()

    guest = _guest_api(_taskmanager_context(instance_id), instance_id)
    flavor = {'id': 'verify', 'name': 'verify', 'ram': spec['memory_mb'],
              'vcpus': spec['cpus']}
    config = template.SingleInstanceConfigTemplate(
        ds_version, flavor, instance_id).render()
    # As with volume_support: the agent formats and mounts this device
    # when it starts; prepare names it again.
    volume = conf.get(manager)
    guest.prepare(spec['memory_mb'], None, [], [],
                  device_path=volume.device_path,
                  mount_point=volume.mount_point, config_contents=config,
                  ds_version=spec['version'])
    _emit('prepare', device_path=volume.device_path)
    endpoint.wait_for('healthy')
    _create_and_list(guest, manager, spec)
    server.stop()
    _emit('done')


if __name__ == '__main__':
    main()

"""Trove's Swift client on the compute cloud (``remote_swift_client``).

Trove uses one setting, ``swift_url``, for two readers: its own calls to
object storage (the API checks a token before a backup and an object
before a restore; the task manager deletes backups) and the URL it hands a
guest for the backup it runs.  Here they differ: Trove's services run in
the host's namespace and reach object storage on loopback, guests reach it
on the management network's gateway.  So ``swift_url`` is the guests' URL
and Trove's own calls go through this client, which takes the catalog's
endpoint (loopback) as Trove does when ``swift_url`` is unset.
"""

from typing import Any

from swiftclient import client as swift
from trove.common import cfg
from trove.common import clients

CONF = cfg.CONF


def swift_client(context: Any, region_name: str | None = None) -> Any:
    """A Swift connection for Trove's own calls, on the catalog's URL."""
    url = clients.get_endpoint(
        context.service_catalog, service_type=CONF.swift_service_type,
        endpoint_region=(region_name
                         or CONF.service_credentials.region_name),
        endpoint_type=CONF.swift_endpoint_type)
    return swift.Connection(preauthurl=url, preauthtoken=context.auth_token,
                            tenant_name=context.project_id,
                            insecure=CONF.swift_api_insecure)

"""devstack's real stack.sh in a systemd container (``trovestack devstack``).

Staging (``staging``) makes, once per content, everything stack.sh needs
without a network: a Debian rootfs, a local apt repository of the
packages devstack installs (``packages``), a wheelhouse with an
upper-constraints file (``constraints``) and the OpenStack repositories
made from PyPI sdists.  ``container`` boots an overlay of the rootfs with
``systemd-nspawn -b`` in a network namespace of its own and takes it all
down again; ``stack`` writes local.conf and runs stack.sh inside;
``environment`` chains them for ``trovestack devstack up/down/status``.

This package sits between the commands and ``trovestack.orchestration``
(it reuses ``orchestration.kickstart`` to turn a sample into local.conf).
"""

"""Compute and network for the local cloud (``trovestack cloud up --compute``).

Placement, neutron (ML2/OVN), nova conductor/scheduler/compute (libvirt,
qemu TCG) and Open vSwitch/OVN on the userspace datapath, started by hand
from PyPI and Debian packages.  Everything that touches guest traffic
(ovs-vswitchd, ovn-controller, libvirtd and its qemu guests, nova-compute
and its privsep helpers) runs inside one network namespace of the cloud's
own; the control plane stays on host loopback and is mirrored into the
namespace by :mod:`.forwarder`.
"""

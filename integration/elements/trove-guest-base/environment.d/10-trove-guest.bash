#!/bin/bash
# Settings shared by the trove-guest-* elements; trove-image-builder sets
# them from its options, the defaults suit a direct disk-image-create run.
export TROVE_GUEST_USER=${TROVE_GUEST_USER:-trove}
export TROVE_GUEST_CONF_DIR=${TROVE_GUEST_CONF_DIR:-/etc/trove}
default_datasources="ConfigDrive, OpenStack, NoCloud, None"
export TROVE_GUEST_DATASOURCES=${TROVE_GUEST_DATASOURCES:-$default_datasources}
unset default_datasources
# No ifupdown stanzas for eth0/eth1 from the debootstrap element: cloud-init
# writes the network from the config drive (or DHCP on the first NIC when
# there is none); interfaces that don't exist or get no DHCP answer would
# hold networking.service (and the boot) for minutes.
DIB_APT_MINIMAL_CREATE_INTERFACES=${DIB_APT_MINIMAL_CREATE_INTERFACES:-0}
export DIB_APT_MINIMAL_CREATE_INTERFACES
# Nobody picks a boot entry on a cloud guest's console: no menu wait (DIB's
# default is 5 s, each boot).
export DIB_GRUB_TIMEOUT=${DIB_GRUB_TIMEOUT:-0}

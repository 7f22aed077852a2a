#!/bin/bash
# Settings shared by the trove-guest-* elements; trove-image-builder sets
# them from its options, the defaults suit a direct disk-image-create run.
export TROVE_GUEST_USER=${TROVE_GUEST_USER:-trove}
export TROVE_GUEST_CONF_DIR=${TROVE_GUEST_CONF_DIR:-/etc/trove}
default_datasources="ConfigDrive, OpenStack, NoCloud, None"
export TROVE_GUEST_DATASOURCES=${TROVE_GUEST_DATASOURCES:-$default_datasources}
unset default_datasources

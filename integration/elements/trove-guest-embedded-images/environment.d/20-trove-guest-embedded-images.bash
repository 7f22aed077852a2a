#!/bin/bash
# Where the embedded docker-archives wait in the image until they are loaded
# at boot (only when the build host could not load them at build time).
default_dir=/var/lib/trove-embedded-images
export TROVE_EMBEDDED_IMAGES_DIR=${TROVE_EMBEDDED_IMAGES_DIR:-$default_dir}
unset default_dir

#!/bin/bash
# Where the embedded docker-archives wait in the image until they are loaded.
export TROVE_EMBEDDED_IMAGES_DIR=${TROVE_EMBEDDED_IMAGES_DIR:-/var/lib/trove-embedded-images}

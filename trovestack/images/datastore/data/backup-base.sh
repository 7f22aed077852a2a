#!/bin/bash
# mmdebstrap customize hook of the backup images: the Python environment
# Trove's backup code (main.py, in the image's top layer) runs in.
#
# Usage: backup-base.sh <rootfs> <wheelhouse> <venv>
# <wheelhouse> is a host directory of wheels for the image's Python, with
# requirements.txt (Trove's backup/requirements.txt) and constraints.txt:
# the venv is made by the image's own python3 and filled from it with no
# index, so nothing is downloaded in the chroot.  pip leaves afterwards:
# nothing in the image installs anything.
set -euo pipefail

rootfs=$1
wheelhouse=$2
venv=$3
inside=/tmp/trovestack-wheelhouse

# With nothing of the host's environment: its PIP_* settings (indexes,
# find-links, certificates) name host paths.
function in_root {
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
        chroot "$rootfs" "$@"
}

mkdir -p "$rootfs$inside"
cp -r "$wheelhouse/." "$rootfs$inside/"
in_root python3 -m venv "$venv"
in_root "$venv/bin/pip" install --quiet --no-index --no-cache-dir \
    --disable-pip-version-check --find-links "$inside" \
    --requirement "$inside/requirements.txt" \
    --constraint "$inside/constraints.txt"
in_root "$venv/bin/pip" uninstall --quiet --yes pip
rm -rf "${rootfs:?}$inside"

# The interpreter Trove's command names: python3 from the venv (PATH).
test -x "$rootfs$venv/bin/python3"
# Every compiled module finds its libraries in the image.
missing=$(in_root find "$venv" -name '*.so' -exec ldd {} + 2>/dev/null |
    grep 'not found' | sort -u || true)
if [[ -n $missing ]]; then
    echo "backup-base.sh: libraries missing in the image:" >&2
    echo "$missing" >&2
    exit 1
fi

# Nothing of the build host's apt state belongs in the image.
rm -rf "${rootfs:?}"/var/lib/apt/lists/* "${rootfs:?}"/var/cache/apt/*.bin \
    "${rootfs:?}"/var/cache/apt/archives/*.deb

#!/bin/bash
# Second mmdebstrap customize hook of the PostgreSQL images (after
# customize.sh): makes the template data directory that the entrypoint
# copies into an empty $PGDATA instead of running initdb in the guest
# (initdb costs minutes of an emulated CPU, a copy seconds), then removes
# what only the packages' maintainer scripts and locale-gen needed.
#
# Usage: postgresql-base.sh <rootfs> <postgresql version> <uid>
# The cluster is the one the entrypoint's initdb would make (superuser
# postgres, UTF8, the image's locale, local trust, host scram-sha-256),
# without a password: the entrypoint sets POSTGRES_PASSWORD on the copy.
set -euo pipefail

rootfs=$1
version=$2
uid=$3
template=/usr/share/trovestack/pgdata-template

install -d -o "$uid" -g "$uid" -m 0755 "$rootfs${template%/*}"
rm -rf "${rootfs:?}$template"
chroot --userspec="$uid:$uid" "$rootfs" env -i \
    PATH="/usr/lib/postgresql/$version/bin:/usr/bin:/bin" \
    LANG=en_US.utf8 \
    initdb --pgdata="$template" --username=postgres --encoding=UTF8 \
    --locale=en_US.utf8 --auth-local=trust --auth-host=scram-sha-256 \
    --no-sync >/dev/null
# One line per initdb setting the entrypoint's fallback must match.
echo "initdb --username=postgres --encoding=UTF8 --locale=en_US.utf8" \
    "--auth-local=trust --auth-host=scram-sha-256" \
    > "$rootfs${template%/*}/pgdata-template.initdb"

# Perl runs postgresql-common's maintainer scripts and /usr/bin's pg_*
# wrappers; the image's PATH starts with the server's own bin directory,
# whose programs (postgres, initdb, pg_ctl, pg_isready, pg_rewind, psql)
# are binaries.  The locale sources served locale-gen (customize.sh).
rm -rf "${rootfs:?}"/usr/share/perl \
    "${rootfs:?}"/usr/lib/x86_64-linux-gnu/perl \
    "${rootfs:?}"/usr/share/i18n

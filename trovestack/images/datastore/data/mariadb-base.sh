#!/bin/bash
# Second mmdebstrap customize hook of the MariaDB images (after
# customize.sh): makes the template data directory that the entrypoint
# copies into an empty data directory instead of running
# mariadb-install-db in the guest (the bootstrap server costs a minute of
# an emulated CPU, a copy seconds).
#
# Usage: mariadb-base.sh <rootfs> <mariadb version> <uid>
# The system tables are the ones the entrypoint's fallback would make
# (root@localhost with an empty password, no test database), without
# accounts named after the build host (--cross-bootstrap: made to be
# copied to another host); the entrypoint sets root's password on the copy.  InnoDB's
# files are made with the settings Trove's config template
# (trove/templates/mariadb/config.template) gives the server, so it opens
# the copy as it is: system tablespace ibdata1:10M:autoextend, 50 MiB redo
# log, default page size.
set -euo pipefail

rootfs=$1
uid=$3
template=/usr/share/trovestack/mariadb-template

install -d -o "$uid" -g "$uid" -m 0755 "$rootfs${template%/*}"
rm -rf "${rootfs:?}$template"
install -d -o "$uid" -g "$uid" -m 0700 "$rootfs$template"
chroot --userspec="$uid:$uid" "$rootfs" env -i \
    PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    mariadb-install-db --no-defaults --datadir="$template" \
    --auth-root-authentication-method=normal --skip-test-db \
    --skip-name-resolve --cross-bootstrap \
    --innodb-data-file-path=ibdata1:10M:autoextend \
    --innodb-log-file-size=50M --innodb-use-native-aio=0 >/dev/null
# mariadb-install-db stops the bootstrap server cleanly: no crash
# recovery, and the buffer pool dump of an empty server is not needed.
rm -f "$rootfs$template/ib_buffer_pool"

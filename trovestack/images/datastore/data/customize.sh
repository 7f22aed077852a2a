#!/bin/bash
# mmdebstrap customize hook of the datastore images: turns the freshly
# installed root filesystem into the database image Trove's guest agent runs.
#
# Usage: customize.sh <rootfs> <mariadb|postgresql> <uid> <locale>
# Generates the locale, moves the service account to <uid> (Trove runs the
# container as uid:uid), and removes the cluster/system tables the Debian
# packages created, so the entrypoint initialises an empty data directory
# itself.  The entrypoint and healthcheck.sh come in the image's second
# layer, so that changing them does not rebuild this one.
set -euo pipefail

rootfs=$1
kind=$2
uid=$3
locale=$4

function in_root {
    chroot "$rootfs" "$@"
}

function move_account {
    local account=$1
    local old_uid old_gid
    old_uid=$(in_root id -u "$account")
    old_gid=$(in_root id -g "$account")
    in_root groupmod --gid "$uid" "$account"
    in_root usermod --uid "$uid" --gid "$uid" "$account"
    find "$rootfs" -xdev \( -uid "$old_uid" -o -gid "$old_gid" \) \
        -exec chown -h "$uid:$uid" {} +
}

function owned_dirs {
    local dir
    for dir in "$@"; do
        install -d -o "$uid" -g "$uid" -m 0755 "$rootfs$dir"
    done
}

echo "$locale UTF-8" > "$rootfs/etc/locale.gen"
in_root locale-gen >/dev/null

case "$kind" in
    mariadb)
        move_account mysql
        rm -rf "${rootfs:?}"/var/lib/mysql
        owned_dirs /var/lib/mysql /run/mysqld /var/log/mysql
        ;;
    postgresql)
        move_account postgres
        rm -rf "${rootfs:?}"/var/lib/postgresql/* \
            "${rootfs:?}"/etc/postgresql/*
        owned_dirs /var/lib/postgresql /var/lib/postgresql/data
        install -d -o "$uid" -g "$uid" -m 2775 "$rootfs/run/postgresql"
        ;;
    *)
        echo "customize.sh: unknown datastore kind $kind" >&2
        exit 2
        ;;
esac

# Nothing of the build host's apt state belongs in the image.
rm -rf "${rootfs:?}"/var/lib/apt/lists/* "${rootfs:?}"/var/cache/apt/*.bin \
    "${rootfs:?}"/var/cache/apt/archives/*.deb

#!/bin/bash
# Entrypoint of the trovestack PostgreSQL image (written for trovestack).
#
# Runs what it is given; when that is the server (no arguments, options
# only, or postgres + options) it first initialises an empty $PGDATA (a
# copy of the image's template cluster, else initdb) with the superuser
# 'postgres' and the password from POSTGRES_PASSWORD
# (local connections trusted, others scram-sha-256, listening on every
# address), in the image's en_US.utf8 locale.  Started as root, it drops
# to uid/gid 1001 first; run as a uid without a passwd entry, it gives
# itself one through nss_wrapper.
set -euo pipefail

service_uid=1001
: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA

function log {
    echo "entrypoint: $*" >&2
}

function die {
    log "error: $*"
    exit 1
}

# initdb and postgres refuse a uid that has no name: lend it one.
function ensure_user_entry {
    getent passwd "$(id -u)" >/dev/null && return 0
    local wrapper
    wrapper=$(find /usr/lib -name libnss_wrapper.so -print -quit)
    [[ -n "$wrapper" ]] || die "uid $(id -u) has no passwd entry"
    local dir
    dir=$(mktemp -d)
    {
        cat /etc/passwd
        printf 'postgres:x:%s:%s:PostgreSQL:%s:/bin/false\n' \
            "$(id -u)" "$(id -g)" /var/lib/postgresql
    } > "$dir/passwd"
    { cat /etc/group; echo "postgres:x:$(id -g):"; } > "$dir/group"
    export LD_PRELOAD="$wrapper" NSS_WRAPPER_PASSWD="$dir/passwd" \
        NSS_WRAPPER_GROUP="$dir/group"
}

# The image's template cluster (made at build time by initdb with the
# options below), copied; initdb itself when there is none.
template=/usr/share/trovestack/pgdata-template

# Set the superuser's password in single-user mode: the password goes
# through stdin, never the command line or a log line (no statement is
# logged, even on error), and no server listens meanwhile.
function set_password {
    local quoted=${POSTGRES_PASSWORD//\'/\'\'}
    printf "ALTER ROLE postgres PASSWORD '%s';\n" "$quoted" |
        postgres --single -D "$PGDATA" -c log_min_messages=warning \
            -c log_min_error_statement=panic postgres >/dev/null
}

function initialise {
    [[ -n "${POSTGRES_PASSWORD:-}" ]] || die "$PGDATA is empty:" \
        "set POSTGRES_PASSWORD to initialise it"
    if [[ -s "$template/PG_VERSION" ]]; then
        log "initialising $PGDATA from the image's template cluster"
        cp -R "$template/." "$PGDATA/"
        chmod 0700 "$PGDATA"
        set_password
    else
        log "initialising $PGDATA"
        local pwfile
        pwfile=$(mktemp)
        printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
        initdb --username=postgres --pwfile="$pwfile" --encoding=UTF8 \
            --locale="${LANG:-C.UTF-8}" --auth-local=trust \
            --auth-host=scram-sha-256 >/dev/null
        rm -f "$pwfile"
    fi
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
    log "initialised $PGDATA"
}

if [[ $# -eq 0 || "$1" == -* ]]; then
    set -- postgres "$@"
fi

if [[ "$1" == postgres ]]; then
    if [[ $(id -u) -eq 0 ]]; then
        install -d -o "$service_uid" -g "$service_uid" -m 3777 \
            /run/postgresql
        install -d -o "$service_uid" -g "$service_uid" -m 0700 "$PGDATA"
        exec setpriv --reuid="$service_uid" --regid="$service_uid" \
            --clear-groups "$0" "$@"
    fi
    ensure_user_entry
    mkdir -p "$PGDATA"
    chmod 0700 "$PGDATA"
    if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
        initialise
    fi
fi

exec "$@"

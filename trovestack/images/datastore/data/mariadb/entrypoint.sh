#!/bin/bash
# Entrypoint of the trovestack MariaDB image (written for trovestack).
#
# Runs what it is given; when that is the server (no arguments, options
# only, or mariadbd/mysqld + options) it first initialises an empty data
# directory: system tables (a copy of the image's template data directory,
# else mariadb-install-db), root's password from MYSQL_ROOT_PASSWORD (or
# MARIADB_ROOT_PASSWORD), a 'healthcheck' account and its client file
# <datadir>/.my-healthcheck.cnf for healthcheck.sh.  With
# MARIADB_AUTO_UPGRADE set, an existing data directory is upgraded and a
# missing healthcheck file recreated.  Started as root, it drops to
# uid/gid 1001 first.
set -euo pipefail

service_uid=1001

function log {
    echo "entrypoint: $*" >&2
}

function die {
    log "error: $*"
    exit 1
}

# The value of one server variable as the server would see it with the
# given options (config files included).
function server_variable {
    local name=$1
    shift
    "$@" --verbose --help 2>/dev/null \
        | awk -v name="$name" '$1 == name { print $2; exit }'
}

function sql_quote {
    local text=${1//\\/\\\\}
    printf "'%s'" "${text//\'/\\\'}"
}

function random_password {
    head -c 24 /dev/urandom | base64 | tr -d '/+='
}

function start_temporary_server {
    local socket=$1
    shift
    "$@" --skip-networking --socket="$socket" &
    temp_pid=$!
    local attempt=0
    while (( attempt++ < 120 )); do
        if mariadb-admin --no-defaults --protocol=socket --socket="$socket" \
                -uroot ping >/dev/null 2>&1; then
            return 0
        fi
        kill -0 "$temp_pid" 2>/dev/null || die "the server exited during setup"
        sleep 0.5
    done
    die "the server did not answer on $socket within 60 s"
}

# SIGTERM is the server's own clean shutdown and needs no account.
function stop_temporary_server {
    kill -TERM "$temp_pid"
    wait "$temp_pid" || die "the temporary server did not stop cleanly"
}

function run_sql {
    local socket=$1
    mariadb --no-defaults --protocol=socket --socket="$socket" -uroot --batch
}

function healthcheck_sql {
    local password=$1
    local host
    for host in localhost 127.0.0.1 ::1; do
        echo "CREATE OR REPLACE USER 'healthcheck'@'$host'" \
            "IDENTIFIED BY $(sql_quote "$password");"
        echo "GRANT USAGE ON *.* TO 'healthcheck'@'$host';"
    done
}

function write_healthcheck_file {
    local datadir=$1 socket=$2 password=$3
    local file=$datadir/.my-healthcheck.cnf
    rm -f "$file"
    (
        umask 077
        printf '[mariadb-client]\nprotocol=socket\nsocket=%s\n' "$socket" \
            > "$file"
        printf 'user=healthcheck\npassword=%s\n' "$password" >> "$file"
    )
}

# The image's template data directory (made at build time by
# mariadb-install-db with the options below), copied; mariadb-install-db
# itself when there is none.
template=/usr/share/trovestack/mariadb-template
# Set when the server itself runs the setup statements at its start.
init_sql=''

# The setup statements: root's password, no anonymous accounts, the
# healthcheck account.
function setup_sql {
    local root_password=$1 healthcheck_password=$2
    echo "SET SESSION sql_log_bin = 0;"
    echo "DELETE FROM mysql.global_priv WHERE user = '';"
    echo "FLUSH PRIVILEGES;"
    echo "ALTER USER 'root'@'localhost'" \
        "IDENTIFIED BY $(sql_quote "$root_password");"
    echo "CREATE OR REPLACE USER 'root'@'%'" \
        "IDENTIFIED BY $(sql_quote "$root_password");"
    echo "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
    healthcheck_sql "$healthcheck_password"
}

function initialise {
    local datadir=$1 socket=$2
    shift 2
    local root_password=${MYSQL_ROOT_PASSWORD:-${MARIADB_ROOT_PASSWORD:-}}
    [[ -n "$root_password" ]] || die "the data directory $datadir is empty:" \
        "set MYSQL_ROOT_PASSWORD to initialise it"
    local healthcheck_password
    healthcheck_password=$(random_password)
    if [[ -d "$template/mysql" ]]; then
        log "initialising $datadir from the image's template data directory"
        cp -R "$template/." "$datadir/"
        # The server runs them before it accepts connections; they reach
        # it through a pipe (the init file), never a file, log or argument.
        init_sql=$(setup_sql "$root_password" "$healthcheck_password")
        write_healthcheck_file "$datadir" "$socket" "$healthcheck_password"
        log "initialised $datadir (passwords set as the server starts)"
        return
    fi
    log "initialising $datadir"
    local defaults=()
    if [[ "${2:-}" == --defaults-file=* ]]; then
        defaults=("$2")
    fi
    mariadb-install-db "${defaults[@]}" --datadir="$datadir" \
        --auth-root-authentication-method=normal --skip-test-db \
        --skip-name-resolve >/dev/null
    local setup_socket
    setup_socket=$(mktemp -d)/setup.sock
    start_temporary_server "$setup_socket" "$@"
    setup_sql "$root_password" "$healthcheck_password" \
        | run_sql "$setup_socket"
    stop_temporary_server
    write_healthcheck_file "$datadir" "$socket" "$healthcheck_password"
    log "initialised $datadir"
}

# True when the data directory was last upgraded by another server version
# or lacks its healthcheck file.
function needs_upgrade {
    local datadir=$1 server=$2
    local version recorded='' info
    version=$("$server" --version | awk '{ print $3 }')
    # 11.x writes mariadb_upgrade_info, 10.11 mysql_upgrade_info.
    for info in "$datadir"/{mariadb,mysql}_upgrade_info; do
        if [[ -r "$info" ]]; then
            recorded=$(tr -d '\0\n' < "$info")
            break
        fi
    done
    [[ "${version%%-MariaDB*}" != "${recorded%%-MariaDB*}" ||
        ! -s "$datadir/.my-healthcheck.cnf" ]]
}

# The account mariadb-upgrade connects as while it runs (dropped after).
upgrade_user=trovestack_upgrade

function upgrade {
    local datadir=$1 socket=$2
    shift 2
    log "upgrading $datadir"
    # Trove may restore a data directory with passwords of its own, and a
    # server started with --skip-grant-tables checks them again once
    # anything runs FLUSH PRIVILEGES (mariadb-upgrade does): the server
    # itself runs an init file that makes a temporary administrator for
    # mariadb-upgrade (and the healthcheck account when its file is
    # missing); the passwords stay in files of a private directory.
    local setup_dir healthcheck_password=''
    setup_dir=$(mktemp -d)
    local setup_socket=$setup_dir/setup.sock admin_password
    admin_password=$(random_password)
    if [[ ! -s "$datadir/.my-healthcheck.cnf" ]]; then
        healthcheck_password=$(random_password)
    fi
    (
        umask 077
        {
            # Grant tables loaded even under --skip-grant-tables (Trove's
            # MariaDB manager starts the restored server so to reset
            # root's password): account statements are refused otherwise.
            echo "FLUSH PRIVILEGES;"
            echo "SET SESSION sql_log_bin = 0;"
            echo "CREATE OR REPLACE USER '$upgrade_user'@'localhost'" \
                "IDENTIFIED BY $(sql_quote "$admin_password");"
            echo "GRANT ALL ON *.* TO '$upgrade_user'@'localhost'" \
                "WITH GRANT OPTION;"
            if [[ -n "$healthcheck_password" ]]; then
                healthcheck_sql "$healthcheck_password"
            fi
        } > "$setup_dir/init.sql"
        printf '[client]\nuser=%s\npassword=%s\n' "$upgrade_user" \
            "$admin_password" > "$setup_dir/admin.cnf"
    )
    start_temporary_server "$setup_socket" "$@" \
        --init-file="$setup_dir/init.sql"
    rm -f "$setup_dir/init.sql"
    local admin=(--defaults-file="$setup_dir/admin.cnf" --protocol=socket
        --socket="$setup_socket")
    mariadb-upgrade "${admin[@]}" --silent >/dev/null \
        || log "mariadb-upgrade failed"
    local drop="SET SESSION sql_log_bin = 0;"
    drop+=" DROP USER '$upgrade_user'@'localhost';"
    echo "$drop" | mariadb "${admin[@]}" --batch \
        || log "could not drop the temporary account $upgrade_user"
    if [[ -n "$healthcheck_password" ]]; then
        write_healthcheck_file "$datadir" "$socket" "$healthcheck_password"
        mariadb --defaults-file="$datadir/.my-healthcheck.cnf" \
            --socket="$setup_socket" --batch -e 'SELECT 1' >/dev/null \
            || die "the healthcheck account does not log in after the upgrade"
    fi
    stop_temporary_server
    rm -rf "$setup_dir"
}

if [[ $# -eq 0 || "$1" == -* ]]; then
    set -- mariadbd "$@"
fi

if [[ "$1" == mariadbd || "$1" == mysqld ]]; then
    if [[ $(id -u) -eq 0 ]]; then
        install -d -o "$service_uid" -g "$service_uid" /run/mysqld
        exec setpriv --reuid="$service_uid" --regid="$service_uid" \
            --clear-groups "$0" "$@"
    fi
    datadir=$(server_variable datadir "$@")
    socket=$(server_variable socket "$@")
    datadir=${datadir%/}
    [[ -n "$datadir" ]] || die "cannot tell the data directory from: $*"
    mkdir -p "$datadir"
    if [[ ! -d "$datadir/mysql" ]]; then
        initialise "$datadir" "${socket:-/run/mysqld/mysqld.sock}" "$@"
    elif [[ -n "${MARIADB_AUTO_UPGRADE:-}" ]] \
            && needs_upgrade "$datadir" "$1"; then
        upgrade "$datadir" "${socket:-/run/mysqld/mysqld.sock}" "$@"
    fi
fi

if [[ -n "$init_sql" ]]; then
    # A here-string is a pipe in bash >= 5.1 when it fits its buffer.
    exec "$@" --init-file=/dev/stdin <<< "$init_sql"
fi
exec "$@"

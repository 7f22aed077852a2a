#!/bin/bash
# Health check of the trovestack MariaDB image (written for trovestack).
#
# Usage: healthcheck.sh [--defaults-file FILE] [--connect]
#                       [--innodb_initialized] [other --checks ignored]
# Trove's guest agent runs it as the container's health check with
# --defaults-file <datadir>/.my-healthcheck.cnf --connect --innodb_initialized.
# Exits 0 when every requested check passes (--connect when none is given).
set -euo pipefail

defaults=()
checks=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --defaults-file=*|--defaults-extra-file=*) defaults=("$1") ;;
        --defaults-file|--defaults-extra-file)
            defaults=("$1=${2:?$1 needs a file}")
            shift
            ;;
        --connect|--innodb_initialized) checks+=("$1") ;;
        --*) ;;
        *) echo "healthcheck.sh: unexpected argument $1" >&2; exit 2 ;;
    esac
    shift
done
if [[ ${#checks[@]} -eq 0 ]]; then
    checks=(--connect)
fi

function query {
    mariadb "${defaults[@]}" --connect-timeout=3 --batch --skip-column-names \
        -e "$1"
}

# One client run answers every check: starting the client costs seconds on
# an emulated guest, and Trove gives the whole health check 5 s.  Any
# answer means --connect passed; --innodb_initialized asks for the engine.
sql='SELECT 1'
for check in "${checks[@]}"; do
    if [[ "$check" == --innodb_initialized ]]; then
        sql="SELECT COUNT(*) FROM information_schema.ENGINES
            WHERE ENGINE = 'InnoDB'
            AND SUPPORT IN ('YES', 'DEFAULT', 'ENABLED')"
    fi
done
[[ "$(query "$sql")" == 1 ]] || exit 1

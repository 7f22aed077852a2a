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

for check in "${checks[@]}"; do
    case "$check" in
        --connect)
            [[ "$(query 'SELECT 1')" == 1 ]] || exit 1 ;;
        --innodb_initialized)
            innodb=$(query "SELECT 1 FROM information_schema.ENGINES
                WHERE ENGINE = 'InnoDB'
                AND SUPPORT IN ('YES', 'DEFAULT', 'ENABLED')")
            [[ "$innodb" == 1 ]] || exit 1
            ;;
    esac
done

#!/bin/bash
export TROVE_GUEST_DB_SERVICES="${TROVE_GUEST_DB_SERVICES:-} postgresql"

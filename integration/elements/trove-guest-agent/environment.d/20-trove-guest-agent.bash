#!/bin/bash
# Where the guest agent's virtualenv lives and what its unit is called.
export TROVE_GUEST_AGENT_VENV=${TROVE_GUEST_AGENT_VENV:-/opt/guest-agent-venv}
export TROVE_GUEST_AGENT_SERVICE=${TROVE_GUEST_AGENT_SERVICE:-guest-agent}

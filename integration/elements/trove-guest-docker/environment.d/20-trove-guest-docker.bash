#!/bin/bash
# The guest agent is released beside dockerd, not after it: it spends its
# first seconds (tens under TCG) reading its configuration and mounting the
# volume before it first asks dockerd anything, and docker.socket
# (listening from sockets.target on) holds that request until dockerd is up.
export TROVE_GUEST_AGENT_AFTER=${TROVE_GUEST_AGENT_AFTER:-docker.socket}

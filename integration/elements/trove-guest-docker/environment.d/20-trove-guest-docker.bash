#!/bin/bash
# In container mode the guest agent talks to dockerd as soon as it starts.
export TROVE_GUEST_AGENT_AFTER=${TROVE_GUEST_AGENT_AFTER:-docker.service}

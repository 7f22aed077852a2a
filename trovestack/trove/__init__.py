"""The Trove-facing library: instances, their prerequisites and
configuration, the guest agent of a running instance."""

"""The Trove-facing library: instances, their prerequisites and
configuration, Trove on the compute cloud, the guest agent of a running
instance."""

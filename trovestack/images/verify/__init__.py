"""verify-image: boot a guest image through Trove's prepare to ACTIVE."""

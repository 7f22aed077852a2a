"""Chains of library calls: provision, the devstack extra phase,
kick-start, doctor and cleanup."""

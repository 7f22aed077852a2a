"""Chains of library calls: provision, the devstack extra phase, the test
environment as steps (testconfig), kick-start, doctor and cleanup."""

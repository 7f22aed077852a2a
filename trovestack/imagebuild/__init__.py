"""Trove guest image builder: drives diskimage-builder with integration/elements."""

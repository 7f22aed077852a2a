"""Trove guest image builder: diskimage-builder + integration/elements."""

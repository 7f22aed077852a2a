"""Database container images for Trove's guest agent, built offline from
Debian packages (no Docker daemon)."""

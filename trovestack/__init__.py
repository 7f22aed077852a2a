"""trovestack: Trove developer and test tooling (the successor of redstack)."""

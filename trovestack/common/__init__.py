"""Plumbing shared by every layer: errors, result rows, files and paths,
INI files, bounded waits, mounts and work directories, network namespaces,
cloud connections and cached Keystone tokens.

It imports nothing of trovestack above it, and nothing in it knows about a
command line; the cliff layer (trovestack.commands) turns its types into
output.
"""

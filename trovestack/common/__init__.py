"""Plumbing shared by every tool here: errors, result rows, files and paths.

Nothing in this package knows about a command line; the cliff layer
(trovestack.commands.cliapp, trovestack.commands) turns its types into output.
"""

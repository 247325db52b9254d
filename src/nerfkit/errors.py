"""User-facing errors: the CLI prints their message on one line and exits with code 2."""

from __future__ import annotations


class NerfkitError(Exception):
    """A problem with the user's input (a file, a flag, a run folder), not a bug.

    The message must say what is wrong, which file, and what to do about it.
    """


class DataError(NerfkitError):
    """A dataset on disk is missing, malformed or inconsistent."""

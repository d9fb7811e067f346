"""Failures a user can act on. The CLI prints each as one line and exits with its code."""


class EcoctlError(Exception):
    """A failure with a one-line message that says what to do next."""

    exit_code = 1


class UsageError(EcoctlError):
    """Bad input: a name, an option, a file the user wrote."""

    exit_code = 2


class Unreachable(EcoctlError):
    """A system a provider talks to does not answer (not started yet, or down)."""

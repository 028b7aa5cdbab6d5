"""The one exception type a run raises for what the user asked for, before any work is done."""


class RunRefused(ValueError):
    """A run that cannot start as asked (unsafe path, folder held by another run, ...); the message names
    the problem and the fix. ``odebench`` prints it as one ``error:`` line and exits with code 2."""

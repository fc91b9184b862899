"""The project's exception hierarchy: one root, ``NBAError``, importable from every layer.

It lives in ``schemas`` because that package is the bottom of the dependency chain.
"""


class NBAError(Exception):
    """Root of every exception this project raises on purpose."""


class ConfigError(NBAError):
    """A configuration value or file is invalid; raised at start, never half-applied."""


class ProcessingError(NBAError):
    """An event could not be processed; the worker dead-letters it and goes on."""

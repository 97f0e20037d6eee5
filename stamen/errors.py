"""Errors that Stamen reports to the user as one line, without a traceback."""


class StamenError(Exception):
    """Bad input or a missing resource; the message is one line saying what to do."""


class ConfigError(StamenError, ValueError):
    """An invalid configuration value: the message names the allowed values."""


class DatasetUnavailable(StamenError, RuntimeError):
    """A data source that cannot be loaded here: the message says what to install."""


class RoundSkipped(StamenError):
    """A round that cannot be aggregated (too few replies for the rule, no valid shares):
    the model stays, the run goes on, and the message is written to the results."""

"""Every expected error: what bad input, configuration or environment raises.

Entry points report these as one `error: …` line and exit 1, without a traceback; the API answers
them with a 4xx or 5xx body. Each message already says what is wrong, where (file, line, archive
member, field, store) and what to do.
"""


class SpamfilterError(Exception):
    """An expected failure whose message names what is wrong, where, and what to do."""


class ConfigError(SpamfilterError, ValueError):
    """A configuration file or setting is missing or invalid; the message names the file and key."""


class DataError(SpamfilterError, ValueError):
    """Input data cannot be used; the message says which file and line (or archive member), and why."""


class MailError(SpamfilterError, ValueError):
    """An e-mail cannot be accepted: over a limit, or not an e-mail at all. The text names the limit and
    its params key, or what is missing; the caller adds where the message came from."""


class ModelInputError(SpamfilterError, ValueError, TypeError):
    """What a model was asked to score has the wrong shape (a ValueError to scikit-learn callers) or
    type (a TypeError); the message names the row or column."""


class BundleError(SpamfilterError, ValueError):
    """A serving bundle is missing or malformed; the message names the file and field."""


class RemoteError(SpamfilterError):
    """A DVC remote transfer failed; the message names the remote, what went wrong and what to set."""


class TrackingError(SpamfilterError, RuntimeError):
    """The MLflow tracking store cannot be used; the message names the store and what to do."""


class RegistryError(TrackingError):
    """A registry operation cannot proceed (no such alias or version, a stale gate verdict, …)."""


class ModelUnavailableError(RegistryError):
    """A model exists but cannot be loaded (artifact missing or corrupt, wrong classes, no such file)."""

"""The base of every error that describes bad input, configuration or environment.

Entry points report these as one `error: …` line and exit 1, without a traceback: the message
already says what is wrong and where.
"""


class SpamfilterError(Exception):
    """An expected failure whose message names what is wrong, where, and what to do."""

"""What a message may cost before it is refused: `MailLimits`, and `MailError` for a refused message.

Training reads untrusted archives and serving reads whatever a client posts, so every e-mail goes through
the same limits. Each limit is a param under `channels.email.ingest.limits` (`PARAMS_SECTION`; defaults in
`spamfilter.config.MailLimitsParams`, their one home), and a refusal names
the limit, the measured value and that key, so a caller can report it or raise the limit on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from spamfilter.config import MailLimitsParams
from spamfilter.errors import ConfigError, MailError

__all__ = ["DEFAULT_LIMITS", "MAX_DEPTH_CEILING", "PARAMS_SECTION", "MailError", "MailLimits", "params_key"]

PARAMS_SECTION = "channels.email.ingest.limits"
_DEFAULTS = MailLimitsParams()

# The parser nests one Python frame per MIME level, so the depth limit stays far below the interpreter's
# recursion limit (1,000) whatever params say.
MAX_DEPTH_CEILING = 100


def params_key(limit: str) -> str:
    """The params key of a limit, e.g. `channels.email.ingest.limits.max_bytes`: what an error tells the
    user to raise."""
    return f"{PARAMS_SECTION}.{limit}"


@dataclass(frozen=True, slots=True)
class MailLimits:
    """Bounds on one message. The first four refuse the message (MailError); `max_html_chars` only cuts.

    - max_bytes: size of the raw message, checked before any parsing.
    - max_parts: MIME parts, the message itself included; checked as the parser creates each part.
    - max_depth: MIME nesting, 0 for a message without parts; checked as the parser opens each level, so
      a deeply nested message is refused after reading only its first `max_depth` levels.
    - max_decoded_bytes: decoded size of all leaf parts together, estimated from the encoded length
      (an upper bound), so no attachment is decoded just to be measured.
    - max_html_chars: characters of one HTML part converted to text; the rest is dropped and counted as
      a defect. HTML is the costliest content to convert, and real HTML bodies are far shorter (the
      largest in the SpamAssassin corpus is 82 KB).
    """

    max_bytes: int = _DEFAULTS.max_bytes
    max_parts: int = _DEFAULTS.max_parts
    max_depth: int = _DEFAULTS.max_depth
    max_decoded_bytes: int = _DEFAULTS.max_decoded_bytes
    max_html_chars: int = _DEFAULTS.max_html_chars

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{params_key(field.name)} must be a positive integer, got {value!r}")
        if self.max_depth > MAX_DEPTH_CEILING:
            raise ConfigError(
                f"{params_key('max_depth')} must be at most {MAX_DEPTH_CEILING}, got {self.max_depth}: "
                "the parser nests one call per MIME level"
            )


DEFAULT_LIMITS = MailLimits()

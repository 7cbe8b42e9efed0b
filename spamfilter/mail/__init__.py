"""E-mail messages: raw RFC 822 bytes to the record the e-mail model reads, for training and serving.

    limits     MailLimits (size, parts, depth, decoded size, HTML length) and MailError
    parse      parse_message(raw) -> MailRecord, looks_like_email(raw), DEFAULT_HEADER_FIELDS
    headers    header values: unfolding, 8-bit bytes, RFC 2047 words, address lists
    charsets   bytes to text: declared charset, else detected, else latin-1
    transfer   transfer encodings known, RFC 2047 words undone, decoded sizes estimated
    html       HTML to text and link targets (selectolax behind a linear pre-pass)
    urls       web links in text and link targets, and their domains

Nothing here reads files or the network; parsing one message never raises anything but MailError.
"""

from spamfilter.mail.limits import MailError, MailLimits
from spamfilter.mail.parse import DEFAULT_HEADER_FIELDS, Attachment, MailRecord, looks_like_email, parse_message

__all__ = [
    "DEFAULT_HEADER_FIELDS",
    "Attachment",
    "MailError",
    "MailLimits",
    "MailRecord",
    "looks_like_email",
    "parse_message",
]

"""schemathesis hooks for the contract test (tests/api/test_contract.py loads them through SCHEMATHESIS_HOOKS).

schemathesis has no serializer for message/rfc822 and skips a media type it cannot send, so POST
/predict/email would only ever get application/octet-stream bodies. A raw e-mail is bytes either way:
its message/rfc822 bodies are sent as the octet-stream ones are, the generated string's UTF-8 bytes.
Registering is this module's one purpose, so it happens on import, as schemathesis loads hooks.
"""

from __future__ import annotations

import schemathesis

schemathesis.serializer.alias("message/rfc822", "application/octet-stream")

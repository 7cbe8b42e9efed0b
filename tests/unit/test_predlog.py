"""The prediction log's schema helpers."""

from __future__ import annotations

import time
import uuid

from spamfilter.predlog import new_prediction_id, text_sha256


def test_prediction_ids_are_version_7_uuids_ordered_by_time() -> None:
    first = new_prediction_id()
    time.sleep(0.002)
    later = [new_prediction_id() for _ in range(1000)]
    parsed = uuid.UUID(first)
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert abs((parsed.int >> 80) - time.time_ns() // 1_000_000) < 5_000
    assert all(first < other for other in later)
    assert len(set(later)) == 1000


def test_text_sha256() -> None:
    assert text_sha256("hello") == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"

"""The two labels, in one place: what the corpora, the model, the metrics, the prediction log and
the API all call a message."""

from __future__ import annotations

from typing import Final, Literal

HAM: Final = "ham"
SPAM: Final = "spam"
LABELS: Final = (HAM, SPAM)  # sorted: the order of a fitted model's `classes_`
Label = Literal["ham", "spam"]

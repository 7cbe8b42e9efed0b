"""Evidently's DataDriftPreset on the windows `bench/monitor.py` writes: run by a separate venv that has
Evidently installed (it is not a project dependency). Prints, as JSON on stdout, per case: the share of
windows in which Evidently found any column drifted, and how often each column drifted.

Usage (from bench/monitor.py): <venv>/bin/python bench/evidently_peer.py windows.json
"""

from __future__ import annotations

import json
import sys
import warnings
from collections import Counter
from pathlib import Path

import pandas as pd
from evidently import DataDefinition, Dataset, Report, __version__
from evidently.presets import DataDriftPreset

COLUMNS = ("text", "score", "predicted")


def drifted_columns(snapshot: dict) -> tuple[int, list[str]]:
    """Evidently's count of drifted columns, and which: a p-value method drifts below its threshold, a
    distance method (used when the reference has more than 1,000 rows) at or above it; the text column's
    verdict (a domain classifier against a percentile) is what the count leaves over."""
    count = 0
    drifted = []
    for metric in snapshot["metrics"]:
        config = metric["config"]
        if config["type"].endswith("DriftedColumnsCount"):
            count = int(metric["value"]["count"])
        elif config["type"].endswith("ValueDrift") and config["column"] != "text":
            method, value, threshold = config.get("method", ""), metric["value"], config["threshold"]
            if (value < threshold) if "p_value" in method else (value >= threshold):
                drifted.append(config["column"])
    return count, drifted + (["text"] if count > len(drifted) else [])


def main() -> int:
    warnings.filterwarnings("ignore")
    request = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    definition = DataDefinition(text_columns=["text"], numerical_columns=["score"], categorical_columns=["predicted"])
    reference = Dataset.from_pandas(pd.DataFrame(request["reference"]), data_definition=definition)
    results: dict[str, object] = {"version": __version__}
    for case, windows in request["windows"].items():
        alarms = 0
        columns: Counter[str] = Counter()
        for rows in windows:
            current = Dataset.from_pandas(pd.DataFrame(rows), data_definition=definition)
            snapshot = Report([DataDriftPreset()]).run(current, reference).dict()
            count, names = drifted_columns(snapshot)
            alarms += count > 0
            columns.update(names)
        results[case] = {
            "alarm_rate": alarms / len(windows),
            "columns": {name: f"{columns[name] / len(windows):.0%}" for name in COLUMNS if columns[name]},
        }
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

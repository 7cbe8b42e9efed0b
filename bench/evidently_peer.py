"""Evidently's DataDriftPreset on the windows `bench/monitor.py` writes: run by a separate venv that has
Evidently installed (it is not a project dependency). Prints, as JSON on stdout, per case: how many
windows, the share in which Evidently found any column drifted, and how often each column drifted.

The request holds groups (one per rotation of bench/monitor.py), each a reference table and its
windows per case; every window is compared with its own group's reference. The columns are the ones
our monitor checks: text, length (of the text), score, predicted (label), label (the true one).

Usage (from bench/monitor.py): <venv>/bin/python bench/evidently_peer.py windows.json [progress.jsonl]
(with a progress file, one JSON line per window is appended as it is checked: Evidently is slow.)
"""

from __future__ import annotations

import json
import sys
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
from evidently import DataDefinition, Dataset, Report, __version__
from evidently.presets import DataDriftPreset

COLUMNS = ("text", "length", "score", "predicted", "label")
COLUMN_KINDS = {
    "text_columns": ["text"],
    "numerical_columns": ["length", "score"],
    "categorical_columns": ["predicted", "label"],
}


def drifted_columns(snapshot: dict[str, Any]) -> tuple[int, list[str]]:
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
    progress = Path(sys.argv[2]) if len(sys.argv) > 2 else None
    definition = DataDefinition(**COLUMN_KINDS)
    references = [
        Dataset.from_pandas(pd.DataFrame(group["reference"]), data_definition=definition) for group in request["groups"]
    ]
    # Interleaved (by the share of each case's windows done, then rotation): a run stopped early has
    # looked at every case and rotation alike, and its progress lines are a fair sample.
    order = sorted(
        (
            (index / len(tables), number, case, index)
            for number, group in enumerate(request["groups"])
            for case, tables in group["windows"].items()
            for index in range(len(tables))
        )
    )
    windows: Counter[str] = Counter()
    alarms: Counter[str] = Counter()
    columns: dict[str, Counter[str]] = {case: Counter() for group in request["groups"] for case in group["windows"]}
    for _, number, case, index in order:
        rows = request["groups"][number]["windows"][case][index]
        current = Dataset.from_pandas(pd.DataFrame(rows), data_definition=definition)
        snapshot = Report([DataDriftPreset()]).run(current, references[number]).dict()
        count, names = drifted_columns(snapshot)
        windows[case] += 1
        alarms[case] += count > 0
        columns[case].update(names)
        if progress is not None:
            with progress.open("a", encoding="utf-8") as lines:
                lines.write(json.dumps({"case": case, "rotation": number, "alarm": count > 0, "columns": names}) + "\n")
    results = {
        case: {
            "windows": windows[case],
            "alarm_rate": alarms[case] / windows[case],
            "columns": {name: f"{counts[name] / windows[case]:.0%}" for name in COLUMNS if counts[name]},
        }
        for case, counts in columns.items()
        if windows[case]
    }
    print(json.dumps({"version": __version__, "cases": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

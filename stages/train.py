"""DVC stage `train`: fit the classifier on the features, assemble one raw-text pipeline, log and
register it in MLflow."""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import scipy.sparse

from spamfilter import entry, files
from spamfilter.config import Settings, flatten, load_params
from spamfilter.modeling.metrics import OBVIOUS_HAM, OBVIOUS_SPAM
from spamfilter.modeling.pipeline import assemble, build_classifier

log = logging.getLogger("stages.train")


def git_commit() -> str:
    """The checked-out commit, with `-dirty` when tracked files have uncommitted changes."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}-dirty" if dirty.strip() else commit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--features-dir", type=Path, default=Path("data/features"))
    parser.add_argument("--manifest", type=Path, default=Path("data/processed/manifest.json"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--model", type=Path, default=Path("models/model.joblib"))
    parser.add_argument("--run-info", type=Path, default=Path("models/training_run.json"))
    args = parser.parse_args(argv)
    all_params = load_params(args.params)
    settings = Settings()

    features = scipy.sparse.load_npz(args.features_dir / "train.npz")
    labels = np.load(args.features_dir / "train_labels.npy")
    featurizer = files.load_joblib(args.features_dir / "featurizer.joblib")
    classifier = build_classifier(all_params.train).fit(features, labels)
    model = assemble(featurizer, classifier)
    log.info("trained %s on %d messages", all_params.train.model, features.shape[0])

    manifest = files.read_json(args.manifest)
    tags = {
        "git_commit": git_commit(),
        "model_type": all_params.train.model,
        "data_raw_md5": str(manifest.get("raw_dvc_md5", "")),
        "data_sha256": str(manifest.get("dataset_sha256", "")),
        "data_rows": str(manifest.get("rows", "")),
        "data_train_rows": str(manifest.get("train_rows", "")),
        "data_test_rows": str(manifest.get("test_rows", "")),
    }
    from spamfilter.registry import tracking

    run = tracking.log_training_run(
        settings,
        model,
        params=flatten(all_params.model_dump(mode="json", exclude={"gate", "monitor"})),
        tags=tags,
        input_example=[OBVIOUS_SPAM[0], OBVIOUS_HAM[0]],
        run_name=f"train-{all_params.train.model}",
    )
    files.dump_joblib(args.model, model)
    files.write_json(args.run_info, run.as_dict())
    log.info("logged run %s; registered %s version %s", run.run_id, run.registered_model, run.model_version)
    return 0


if __name__ == "__main__":
    sys.exit(entry.run(main))

"""DVC stage `train`: fit the classifier on the features, assemble one raw-text pipeline, log and
register it in MLflow.

The run is tagged with the md5 of the pickled pipeline (what DVC records for `models/model.joblib`),
which is how `evaluate` finds it: no run id is written to a DVC output, so a rerun on unchanged
inputs leaves `dvc.lock` unchanged.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import scipy.sparse

from spamfilter import entry, files
from spamfilter.config import Settings, load_params, result_params
from spamfilter.modeling.metrics import OBVIOUS_HAM, OBVIOUS_SPAM
from spamfilter.modeling.pipeline import assemble, build_classifier
from spamfilter.registry import versions

log = logging.getLogger("stages.train")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--features-dir", type=Path, default=Path("data/features"))
    parser.add_argument("--manifest", type=Path, default=Path("data/processed/manifest.json"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--model", type=Path, default=Path("models/model.joblib"))
    args = parser.parse_args(argv)
    all_params = load_params(args.params)

    features = scipy.sparse.load_npz(args.features_dir / "train.npz")
    labels = np.load(args.features_dir / "train_labels.npy")
    featurizer = files.load_joblib(args.features_dir / "featurizer.joblib")
    classifier = build_classifier(all_params.train).fit(features, labels)
    model = assemble(featurizer, classifier)
    log.info("trained %s on %d messages", all_params.train.model, features.shape[0])
    files.dump_joblib(args.model, model)

    tags = versions.training_tags(
        files.read_json(args.manifest),
        model_type=all_params.train.model,
        git_commit=entry.git_commit(),
        model_md5=files.md5_file(args.model),
    )
    from spamfilter.registry import tracking  # mlflow is slow to import: only when logging

    run = tracking.log_training_run(
        Settings(),
        model,
        params=result_params(all_params),
        tags=tags,
        input_example=[OBVIOUS_SPAM[0], OBVIOUS_HAM[0]],
        run_name=f"train-{all_params.train.model}",
    )
    log.info("logged run %s; registered %s version %s", run.run_id, run.name, run.version)
    return 0


if __name__ == "__main__":
    sys.exit(entry.run(main))

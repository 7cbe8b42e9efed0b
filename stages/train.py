"""DVC stage `train@<channel>`: fit the classifier on the features, assemble one pipeline from raw input
(SMS text or a raw e-mail) to P(spam), log it and register it as a version of the channel's model in MLflow.

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
from spamfilter.config import CHANNELS, Channel, ChannelPaths, Settings, load_params, result_params
from spamfilter.modeling import channels
from spamfilter.modeling.pipeline import assemble
from spamfilter.registry import versions

log = logging.getLogger("stages.train")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--channel", choices=CHANNELS, default="sms")
    parser.add_argument("--features-dir", type=Path, help="default: data/features/<channel>")
    parser.add_argument("--manifest", type=Path, help="default: data/processed/<channel>/manifest.json")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--model", type=Path, help="default: models/<channel>/model.joblib")
    args = parser.parse_args(argv)
    channel: Channel = args.channel
    paths = ChannelPaths(channel)
    features_dir = args.features_dir or paths.features_dir
    model_path = args.model or paths.model
    params = load_params(args.params, channel)

    features = scipy.sparse.load_npz(features_dir / "train.npz")
    labels = np.load(features_dir / "train_labels.npy")
    featurizer = files.load_joblib(features_dir / "featurizer.joblib")
    classifier = channels.build_classifier(params).fit(features, labels)
    model = assemble(featurizer, classifier)
    log.info("%s: trained %s on %d messages", channel, params.train.model, features.shape[0])
    files.dump_joblib(model_path, model)

    tags = versions.training_tags(
        files.read_json(args.manifest or paths.processed_dir / "manifest.json"),
        model_type=params.train.model,
        git_commit=entry.git_commit(),
        model_md5=files.md5_file(model_path),
        channel=channel,
    )
    from spamfilter.registry import tracking  # mlflow is slow to import: only when logging

    run = tracking.log_training_run(
        Settings().for_channel(channel),
        model,
        params=result_params(params),
        tags=tags,
        input_example=channels.input_example(channel),
        run_name=f"train-{channel}-{params.train.model}",
        input_column=channels.input_column(channel),
    )
    log.info("logged run %s; registered %s version %s", run.run_id, run.name, run.version)
    return 0


if __name__ == "__main__":
    sys.exit(entry.run(main))

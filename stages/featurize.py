"""DVC stage `featurize@<channel>`: fit the channel's featurizer (normalisation and TF-IDF; for e-mail,
parsing first) on the training split only."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import scipy.sparse

from spamfilter import entry, files
from spamfilter.config import CHANNELS, Channel, ChannelPaths, load_params
from spamfilter.data.splits import read_split
from spamfilter.modeling import channels

log = logging.getLogger("stages.featurize")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--channel", choices=CHANNELS, default="sms")
    parser.add_argument("--train", type=Path, help="default: data/processed/<channel>/train.jsonl")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--out-dir", type=Path, help="default: data/features/<channel>")
    args = parser.parse_args(argv)
    channel: Channel = args.channel
    paths = ChannelPaths(channel)
    out_dir = args.out_dir or paths.features_dir
    params = load_params(args.params, channel)

    inputs, labels = read_split(channel, args.train or paths.train)
    featurizer = channels.build_featurizer(params)
    features = featurizer.fit_transform(inputs)

    with files.atomic_path(out_dir / "train.npz") as tmp, open(tmp, "wb") as handle:
        scipy.sparse.save_npz(handle, scipy.sparse.csr_matrix(features), compressed=True)
    with files.atomic_path(out_dir / "train_labels.npy") as tmp, open(tmp, "wb") as handle:
        np.save(handle, np.asarray(labels, dtype="<U4"))
    files.dump_joblib(out_dir / "featurizer.joblib", featurizer)
    log.info("%s: featurized %d training messages into %d features", channel, features.shape[0], features.shape[1])
    return 0


if __name__ == "__main__":
    sys.exit(entry.run(main))

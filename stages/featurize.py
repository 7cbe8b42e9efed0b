"""DVC stage `featurize`: fit normalisation + TF-IDF on the training split only."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import scipy.sparse

from spamfilter import entry, files
from spamfilter.config import load_params
from spamfilter.data import corpus
from spamfilter.modeling.pipeline import build_featurizer

log = logging.getLogger("stages.featurize")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train", type=Path, default=Path("data/processed/train.jsonl"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--out-dir", type=Path, default=Path("data/features"))
    args = parser.parse_args(argv)
    params = load_params(args.params).featurize

    messages = corpus.read_jsonl(args.train)
    texts, labels = corpus.texts_and_labels(messages)
    featurizer = build_featurizer(params)
    features = featurizer.fit_transform(texts)

    with files.atomic_path(args.out_dir / "train.npz") as tmp, open(tmp, "wb") as handle:
        scipy.sparse.save_npz(handle, scipy.sparse.csr_matrix(features), compressed=True)
    with files.atomic_path(args.out_dir / "train_labels.npy") as tmp, open(tmp, "wb") as handle:
        np.save(handle, np.asarray(labels, dtype="<U4"))
    files.dump_joblib(args.out_dir / "featurizer.joblib", featurizer)
    log.info("featurized %d training texts into %d features", features.shape[0], features.shape[1])
    return 0


if __name__ == "__main__":
    sys.exit(entry.run(main))

"""Model quality on the real corpus: de-duplicated, stratified 5-fold CV, the same folds for every model.

Prints spam F1, MCC and blocked-ham rate per model (pooled out-of-fold predictions, and the
mean ± sd over folds), and whether the targets hold:
  MNB baseline F1 >= 0.945; best model F1 >= 0.970, MCC >= 0.965, blocked-ham rate <= 0.2%.

    python bench/quality.py [--corpus PATH] [--params params.yaml] [--set train.linear_svm.C=0.3 ...]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from sklearn.model_selection import StratifiedKFold

from spamfilter.config import Params, parse_params
from spamfilter.data.corpus import deduplicate, parse_corpus
from spamfilter.modeling.metrics import classification_metrics
from spamfilter.modeling.pipeline import assemble, build_classifier, build_featurizer, spam_probability

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO_ROOT.parent / "shared" / "data" / "sms_spam_collection.tsv"
MODELS = ("mnb", "complement_nb", "logreg", "linear_svm")
REPORTED = ("f1", "mcc", "blocked_ham_rate", "precision", "recall")


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """`dvc exp run -S`-style overrides: `section.key=value`, value parsed as YAML."""
    for item in overrides:
        key, _, value = item.partition("=")
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return data


def cross_validate(texts: np.ndarray, labels: np.ndarray, params: Params, folds: list) -> dict[str, Any]:
    predicted = np.empty(len(texts), dtype=object)
    proba = np.empty(len(texts), dtype=float)
    per_fold = []
    for train_idx, test_idx in folds:
        featurizer = build_featurizer(params.featurize)
        features = featurizer.fit_transform(texts[train_idx].tolist())
        model = assemble(featurizer, build_classifier(params.train).fit(features, labels[train_idx]))
        fold_texts = texts[test_idx].tolist()
        proba[test_idx] = spam_probability(model, fold_texts)
        predicted[test_idx] = model.predict(fold_texts)
        per_fold.append(
            classification_metrics(labels[test_idx].tolist(), predicted[test_idx].tolist(), proba[test_idx])
        )
    pooled = classification_metrics(labels.tolist(), predicted.tolist(), proba)
    spread = {
        key: (float(np.mean([f[key] for f in per_fold])), float(np.std([f[key] for f in per_fold]))) for key in REPORTED
    }
    return {"pooled": pooled, "spread": spread}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--params", type=Path, default=REPO_ROOT / "params.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()

    base = apply_overrides(yaml.safe_load(args.params.read_text()) or {}, args.overrides)
    dataset = deduplicate([parse_corpus(args.corpus.read_bytes(), str(args.corpus))])
    texts = np.array([m.text for m in dataset.messages], dtype=object)
    labels = np.array([m.label for m in dataset.messages], dtype=object)
    seed = int(base.get("train", {}).get("seed", 42))
    folds = list(StratifiedKFold(args.folds, shuffle=True, random_state=seed).split(texts, labels))
    print(
        f"corpus: {args.corpus.name}, {len(texts)} distinct messages ({(labels == 'spam').sum()} spam), "
        f"{dataset.duplicates_dropped} duplicates dropped; stratified {args.folds}-fold CV, seed {seed}"
    )
    if args.overrides:
        print(f"overrides: {' '.join(args.overrides)}")
    header = f"{'model':<14} {'F1':>7} {'MCC':>7} {'blocked-ham':>12} {'precision':>10} {'recall':>7}   {'F1 mean±sd':>14} {'MCC mean±sd':>14}  {'time':>6}"
    print(header)
    print("-" * len(header))
    results = {}
    for name in args.models:
        data = apply_overrides(yaml.safe_load(yaml.safe_dump(base)), [f"train.model={name}"])
        params = parse_params(data, str(args.params))
        started = time.perf_counter()
        result = cross_validate(texts, labels, params, folds)
        elapsed = time.perf_counter() - started
        results[name] = result["pooled"]
        m, s = result["pooled"], result["spread"]
        print(
            f"{name:<14} {m['f1']:>7.4f} {m['mcc']:>7.4f} {m['blocked_ham_rate'] * 100:>11.3f}% {m['precision']:>10.4f} "
            f"{m['recall']:>7.4f}   {s['f1'][0]:>7.4f}±{s['f1'][1]:.4f} {s['mcc'][0]:>7.4f}±{s['mcc'][1]:.4f}  {elapsed:>5.1f}s",
            flush=True,
        )

    print()
    if "mnb" in results:
        ok = results["mnb"]["f1"] >= 0.945
        print(f"MNB baseline F1 {results['mnb']['f1']:.4f} (target >= 0.945): {'PASS' if ok else 'FAIL'}")
    best_name = max(results, key=lambda n: results[n]["f1"])
    best = results[best_name]
    ok = best["f1"] >= 0.970 and best["mcc"] >= 0.965 and best["blocked_ham_rate"] <= 0.002
    print(
        f"best model {best_name}: F1 {best['f1']:.4f} (>= 0.970), MCC {best['mcc']:.4f} (>= 0.965), "
        f"blocked-ham {best['blocked_ham_rate'] * 100:.3f}% (<= 0.2%): {'PASS' if ok else 'FAIL'}"
    )
    default_model = base.get("train", {}).get("model")
    print(
        f"params.yaml default model: {default_model} ({'the best' if default_model == best_name else 'not the best'})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

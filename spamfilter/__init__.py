"""The spam filter's library: what the DVC stages, the `spamfilter` command and the API call.

Sub-packages by concern, each importing only those before it:

    config, errors, files, labels, entry   top level: settings and params, error types, atomic files
    mail         RFC 822 e-mail parsing within limits (MIME, charsets, HTML, URLs, attachments)
    data         corpus formats, parsing, acquisition, the simulated feed, DVC remote storage
    modeling     text normalisation, featurizer, classifiers, lean scorer, metrics, plots
    registry     MLflow tracking (the one mlflow importer), gate, release, audit, bundle, PR report
    monitoring   prediction log, reference profile, drift checks, decision, report rendering
    cli          the `spamfilter` command: parses arguments, calls the library, prints

Nothing in `spamfilter` imports `api` or `stages`; `tests/ci/test_layout.py` checks these rules.
Importing the package has no side effects.
"""

__version__ = "0.1.0"

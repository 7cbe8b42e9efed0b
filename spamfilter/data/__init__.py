"""Data: corpus formats and their parsing, de-duplication and the split (`corpus`), obtaining the raw
corpus (`acquire`), the simulated labelled feed (`feed`) and the DVC remote storage (`storage`).

May import the top-level modules (`config`, `errors`, `files`, `labels`) only: data knows nothing of
models, the registry or monitoring.
"""

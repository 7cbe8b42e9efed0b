"""Registry: MLflow tracking and the model registry (`tracking`, the one module that imports mlflow),
the gate's pure rules (`gate`), the release flow gate → promote → export and rollback (`release`),
the promotion audit trail (`audit`), serving bundles (`bundle`) and the pull-request report
(`pr_report`).

May import the top-level modules, `data` and `modeling`. Nothing here is imported by `data` or
`modeling`; `tracking` is imported lazily (inside functions) because mlflow takes seconds to import.
"""

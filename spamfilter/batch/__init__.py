"""Batch scoring (`spamfilter score`): a corpus in any format the project reads, scored with a registered
model version, written as one Parquet file.

    inputs   reading a corpus in bounded chunks (SMS TSV/CSV, e-mail trees/mbox/Maildir/tar, Parquet, JSONL)
    output   the output's columns and the Parquet file, written beside its destination and renamed when done
    spark    the Spark engine: a session (local or any master), chunks scored by the model's pyfunc UDF
    job      the job: resolve the model, score every chunk with the engine asked for, write, summarise

May import the top-level modules, `data`, `mail`, `modeling` and `registry` (mlflow only through
`registry.tracking`); nothing but the command line imports it.
"""

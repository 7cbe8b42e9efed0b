"""Modeling: text normalisation (`text`), the featurizer, classifiers and the one pipeline from raw
text to P(spam) (`pipeline`), the lean scorer that serving and batch scoring use (`scoring`), metrics
and behavioural checks (`metrics`) and evaluation figures (`plots`).

May import the top-level modules only. Training, evaluation, the registry, the monitor and the API
all score through these functions: one preprocessing path.
"""

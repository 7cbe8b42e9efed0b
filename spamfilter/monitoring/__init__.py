"""Monitoring: the prediction-log schema and reader (`predlog`), the reference profile the evaluate
stage writes (`profile`), the drift checks split into text `descriptors`, `statistics`, `checks` and
the `decision`, the `monitor` run that reads its inputs and writes its reports, and the report's
`rendering` with its `svgchart` figures.

May import the top-level modules, `data`, `modeling` and `registry` (to load a model that scores
labelled batches). The checks and the decision are pure functions.
"""

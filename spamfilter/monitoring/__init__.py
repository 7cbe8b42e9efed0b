"""Monitoring, per channel: the prediction-log schema and reader (`predlog`), the reference profile the
evaluate stage writes (`profile`), the drift checks split into text `descriptors`, e-mail
`mail_descriptors`, `statistics`, `checks` and the `decision`, the `monitor` run that reads its inputs
and writes its reports, the report's `rendering` with its `svgchart` figures, and the e-mail `drill`
(the retraining loop rehearsed on a corpus collected in generations).

May import the top-level modules, `data`, `mail`, `modeling` and `registry` (to load a model that
scores labelled batches; the drill trains, registers and gates). The checks and the decision are pure
functions.
"""

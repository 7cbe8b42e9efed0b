"""Old import path of the text preprocessing classes, kept so models pickled before the package
was split into sub-packages still load.

Registered versions and serving bundles made before `spamfilter.modeling` existed pickle
`spamfilter.text.TextNormalizer` and `spamfilter.text.WordAnalyzer` by import path; unpickling
looks them up here and gets the very same classes (tested in `tests/model/test_old_models.py`).
New code imports `spamfilter.modeling.text`.
"""

from spamfilter.modeling.text import TextNormalizer, WordAnalyzer

__all__ = ["TextNormalizer", "WordAnalyzer"]

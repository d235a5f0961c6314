"""``compare``: every model x method x seed on identical splits, then one report.

```
compare/<YYYY-MM-DD_HH-MM-SS>_<dataset>/
  compare.yaml               the plan: base config, models (settings, pinned max length), methods, seeds, the test
  compare.log                what happened, with the traceback of every failed run
  <model>_<method>_seed<N>/  one ordinary run directory per model, encoder method and seed
  <method>_seed<N>/          one per seed for a method without an encoder (TF-IDF): it does not depend on the model
  comparison.json            per-run status and errors, the per-model-and-method table, the fairness check
  comparison.md              the table as Markdown
  plots/*.png                overlaid curves, F1 bars by model, accuracy against parameters and inference speed
  report.html                everything above in one self-contained file, led by a one-line recommendation
```

Fairness: the validation split is carved from train with ``data.split_seed`` (fixed for the whole comparison,
independent of the training seed); each model's maximum length is resolved once and pinned for all its runs; and
every run records fingerprints of its splits and token ids, which the report checks are identical (token ids within
each model: every model tokenizes with its own tokenizer).

``plan`` (compare.yaml and the run records), ``execute`` (running the plan), ``table``, ``statistics`` (the
significance marks and the recommendation), ``plots`` and ``report`` (comparison.json/.md and report.html).
"""

from __future__ import annotations

from distiltune.comparison.execute import compare
from distiltune.comparison.plan import RunRecord, load_plan, load_records
from distiltune.comparison.report import Comparison, render_report

__all__ = ["Comparison", "RunRecord", "compare", "load_plan", "load_records", "render_report"]

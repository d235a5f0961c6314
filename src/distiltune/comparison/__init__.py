"""``compare``: every method x every seed on identical data, then one report.

```
compare/<YYYY-MM-DD_HH-MM-SS>_<dataset>/
  compare.yaml          the plan: base config, methods, seeds (what --resume reads)
  compare.log           what happened, with the traceback of every failed run
  <method>_seed<N>/     one ordinary run directory per method and seed
  comparison.json       per-run status and errors, the per-method table, the fairness check
  comparison.md         the table as Markdown
  plots/*.png           overlaid curves, F1 bars, accuracy against trainable parameters
  report.html           everything above in one self-contained file
```

Fairness: the validation split is carved from train with ``data.split_seed`` (fixed for the whole comparison,
independent of the training seed), the maximum length is resolved once and pinned for every run, and every
run records fingerprints of its splits and token ids, which the report checks are identical.

``plan`` (compare.yaml and the run records), ``execute`` (running the plan), ``table``, ``plots`` and ``report``
(comparison.json/.md and report.html).
"""

from __future__ import annotations

from distiltune.comparison.execute import compare
from distiltune.comparison.plan import RunRecord, load_plan, load_records
from distiltune.comparison.report import Comparison, render_report

__all__ = ["Comparison", "RunRecord", "compare", "load_plan", "load_records", "render_report"]

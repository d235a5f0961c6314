"""What depends on the kind of task, in one package (the task seam).

* :mod:`.base`: the :class:`~distiltune.tasks.base.Task` interface and its registry (``get_task``, ``task_for`` a
  run's config, ``task_of_model`` a saved model).
* :mod:`.single_label`: single-label classification (texts and pairs), the first task: its metrics, loss,
  decisions, calibration fit and outputs.
* :mod:`.record`: metrics.json as a typed record (``RunMetrics``), written by every trainer and read by every reader.
* :mod:`.metrics`: the numerics every task shares (the one softmax, the one negative log-likelihood).
* :mod:`.calibration`: calibration metrics, temperature scaling and decision thresholds of softmax classifiers.

A new kind of task (multi-label) is one module beside :mod:`.single_label` that registers its ``Task``, plus its
tests.
"""

"""What depends on the kind of task: metrics, calibration, and (in :mod:`.base` and one module per task) how a
model's logits become probabilities, decisions, metrics and prediction rows."""

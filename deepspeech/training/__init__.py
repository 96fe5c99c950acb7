"""Placement, the compiled step, the training loop, checkpoints, evaluation and MLflow tracking."""

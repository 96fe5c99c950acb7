"""Manifests -> on-disk feature cache -> tf.data pipeline (the data stage of training)."""

"""Experiment tracking and the model registry: MLflow (local SQLite store or a tracking server)."""

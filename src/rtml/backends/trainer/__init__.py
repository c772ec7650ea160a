"""Trainer backends: ``local`` (XGBoost + Optuna in-process) and ``ray`` (Ray Tune + Ray Train)."""

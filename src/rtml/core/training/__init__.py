"""Training policy: time splits with a label-horizon gap, metrics, tuning, promotion.

No backend imports here (XGBoost, Optuna, Ray and MLflow live in rtml.backends)."""

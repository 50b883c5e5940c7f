"""Training, evaluation and the model registry (`ml.model_runs`, `ml.model_metrics`)."""

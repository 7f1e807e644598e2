"""Where else a search is recorded: the Optuna study in an RDB, Weights & Biases, MLflow.

``options`` holds the flags and their checks (no Ray, no tracker imported); ``trackers`` starts
what the flags ask for before Ray, gives the Tuner its logger callbacks and records the search's
result at the end; ``wandb_runs`` and ``mlflow_runs`` are the two trackers.
"""

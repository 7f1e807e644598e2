"""msa: hyperparameter search for audio-visual emotion recognition on RAVDESS, on Ray Tune.

The layers, and which way imports go between them: docs/explanation/architecture.md.
"""

__version__ = "0.1.0"

"""msa: hyperparameter search for audio-visual emotion recognition on RAVDESS, on Ray Tune.

Layers depend one way: data -> models -> train -> tune -> results -> analysis.
"""

__version__ = "0.1.0"

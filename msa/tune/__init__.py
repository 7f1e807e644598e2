"""Ray Tune layer: the trainable, the tuner, the searcher and the summary. The only layer that imports Ray."""

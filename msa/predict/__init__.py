"""``python -m msa.predict``: a tuned model on any recording, per subtitle cue or over sliding
windows (docs/how-to/predict-export.md).

In reading order: ``media`` (probe a file, stream its decoded tracks), ``spans`` (which frames
each cue or window shows the model), ``classifier`` (a checkpoint's model or an ONNX file behind
one interface), ``run`` (the streamed pass: crop, resample, classify), ``subtitles`` and
``timeline`` (the files read and written; pure Python), ``plot`` (the figure), ``__main__`` (the
command line).
"""

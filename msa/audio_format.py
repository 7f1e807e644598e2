"""The audio the speech encoders take, and so what clips are decoded to: one definition for the
data layer (decoding) and the models (receptive fields in milliseconds)."""

SAMPLE_RATE = 16_000  # Hz, mono: what wav2vec 2.0, HuBERT and WavLM were trained on

"""``python -m msa.predict``: emotion-annotated transcripts of any recording (issue #16).

``subtitles`` reads and writes WebVTT / SubRip cues; ``timeline`` holds the predictions of a
recording's windows, merges them into segments and writes the annotated outputs (.vtt, .srt,
.csv, .json). Neither imports torch: the command that classifies windows imports them.
"""

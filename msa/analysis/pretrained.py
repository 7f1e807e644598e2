"""The pretrained weights a trial loaded, as people read them: summary.json's and crossval.json's
``pretrained`` records and the trial frame's per-branch flags."""

from __future__ import annotations

import pandas as pd


def weights_label(loaded, digest) -> str:
    """One branch's flag of a trial (and its weights' sha256) -> "loaded, sha256 <12 hex>",
    "random init", or "not reported" (trials before the flag)."""
    if pd.isna(loaded):
        return "not reported"
    if not loaded:
        return "random init"
    return f"loaded, sha256 {digest[:12]}" if isinstance(digest, str) and digest else "loaded"


def describe_pretrained_branches(pretrained: dict) -> str:
    """summary.json's (or crossval.json's) ``pretrained`` record, per branch: the weights'
    source and sha256, or random init."""
    described = []
    for branch in ("video", "audio"):
        record = pretrained.get(branch)
        if record is None:
            described.append(f"{branch} weights: not recorded")
        elif isinstance(record, bool):  # searches before per-branch records
            described.append(f"{branch} weights: {weights_label(record, None)}")
        elif record.get("loaded"):
            digest = f" (sha256 {record['sha256'][:12]})" if record.get("sha256") else ""
            described.append(f"{branch} weights: {record.get('source')}{digest}")
        else:
            described.append(f"{branch} weights: random init")
    return ", ".join(described)

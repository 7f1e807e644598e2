"""The data side of an experiment, settled in the driver before Ray starts.

``prepare_experiment_data`` finds the data (or generates the embedded sample), prepares every
clip into the cache, splits by actor and returns a ``TrialData`` that every trial receives
once through ``tune.with_parameters``: a list of cache entries per part, never the arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from msa.data import default_cache_dir
from msa.data.decode import PrepareParams
from msa.data.labels import EMOTIONS, get_label_set
from msa.data.prepare import PreparedClip, PrepareReport, prepare
from msa.data.sample import ensure_sample
from msa.data.splits import PARTS, SplitConfig, split_actors, split_clips


@dataclass(frozen=True)
class TrialData:
    """What every trial needs to build its loaders: clips per part and the label order."""

    labels: tuple[str, ...]
    parts: dict[str, list[dict]]  # part -> PreparedClip.to_dict() of each clip
    actors: dict[str, list[int]]
    root: str
    cache: str  # the cache root: prepared clips and frozen-prefix features
    num_clips: int  # usable clips found (before the label set drops any)
    skipped: int  # files left out, with a reason, by preparation

    def clips(self, part: str) -> list[PreparedClip]:
        return [PreparedClip.from_dict(item) for item in self.parts[part]]

    def summary(self) -> dict:
        """The ``data`` block of summary.json."""
        return {"root": self.root, "clips": self.num_clips, "skipped": self.skipped, "actors": self.actors}


def prepare_experiment_data(
    data: Path | None,
    cache: Path | None,
    classes: str,
    split: SplitConfig,
    params: PrepareParams,
    progress: bool = True,
) -> tuple[TrialData, PrepareReport]:
    """Raises FileNotFoundError / NoUsableClipsError / SplitError for unusable data."""
    cache = cache or default_cache_dir()
    root = data if data is not None else ensure_sample(cache)
    report = prepare(root, cache, params, progress=progress)
    label_set = get_label_set(classes)
    clips = [clip for clip in report.clips if label_set.index(clip.name.emotion_name) is not None]
    names = [clip.name for clip in clips]
    required = [EMOTIONS.index(label) + 1 for label in label_set.labels]
    parts = split_clips(names, split, required)
    trial_data = TrialData(
        labels=label_set.labels,
        parts={part: [clips[i].to_dict() for i in parts[part]] for part in PARTS},
        actors=split_actors(names, parts),
        root=str(Path(root).resolve()),
        cache=str(Path(cache).resolve()),
        num_clips=len(report.clips),
        skipped=len(report.skipped),
    )
    return trial_data, report

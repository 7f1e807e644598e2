"""Emotion label sets. The index order of each set is fixed and recorded downstream."""

from dataclasses import dataclass

# RAVDESS emotion codes 01..08 in RAVDESS order.
EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")


@dataclass(frozen=True)
class LabelSet:
    name: str
    labels: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def index(self, emotion: str) -> int | None:
        """Class index of an emotion name, or None when this set excludes it."""
        return self.labels.index(emotion) if emotion in self.labels else None


LABEL_SETS = {
    "all8": LabelSet("all8", EMOTIONS),
    # The seed project's four classes, in the order its write-up lists them.
    "seed4": LabelSet("seed4", ("sad", "happy", "disgust", "angry")),
}


def get_label_set(name: str) -> LabelSet:
    try:
        return LABEL_SETS[name]
    except KeyError:
        raise ValueError(f"unknown label set {name!r}; choose from {', '.join(LABEL_SETS)}") from None

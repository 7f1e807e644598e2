"""What a search's budget-dependent choices follow: how many clips it trains on, and whether
its trials run on GPUs.

A batch size or an epoch count means different things on the 64 training clips of the
embedded sample and on the ~960 of all of RAVDESS: batches of 4 and 8 give a RAVDESS epoch
120-240 steps and starve a GPU; batches of 64 give the sample one step per epoch. So the
spaces draw batch sizes from :meth:`SearchScale.batch_sizes`, and the search's default epoch
budget (ASHA's max_t and grace period) comes from :func:`epoch_budget`.
"""

from __future__ import annotations

from dataclasses import dataclass

SAMPLE_TRAIN_CLIPS = 64  # the embedded sample's training actors (4 of 8) x 16 clips
MIN_STEPS_PER_EPOCH = (
    8  # optimiser steps per epoch at the largest batch: fewer and a rung sees too few updates
)
MIN_BATCH = 4  # clips: below this the BatchNorm over a batch's frames is too noisy
MAX_BATCH_CPU = 16  # clips: on CPU cores a larger batch only makes each step longer
# clips: 32 x 16 frames of 112 px through a trainable ResNet-18 (video_iter5) fit a quarter of a
# 16 GB T4 under bf16 autocast; larger batches would need --gpus-per-trial to grow with them.
MAX_BATCH_GPU = 32
BATCH_CHOICES = 3  # the largest batch, its half and its quarter (those not below MIN_BATCH)
# (training clips at least, max epochs, grace period), by the size of the training set: more
# clips give an epoch more steps, so the first rung (after the warm-up, which spaces search up
# to 2 epochs) stays at 2 epochs, while longer trials let the best configurations converge.
EPOCH_BUDGETS = (
    (0, 8, 2),  # the embedded sample (64 training clips)
    (256, 16, 2),  # a few actors of RAVDESS
    (768, 24, 2),  # all of RAVDESS: 960 training clips with the default 16 / 4 / 4 actor split
)


@dataclass(frozen=True)
class SearchScale:
    """The size of the search's training set, and whether its trials have GPUs."""

    train_clips: int = SAMPLE_TRAIN_CLIPS
    accelerator: bool = False

    def batch_sizes(self) -> tuple[int, ...]:
        """Powers of two from MIN_BATCH up to the largest batch that still gives an epoch
        MIN_STEPS_PER_EPOCH steps (capped by the device), at most BATCH_CHOICES of them."""
        cap = MAX_BATCH_GPU if self.accelerator else MAX_BATCH_CPU
        largest = MIN_BATCH
        while largest * 2 <= min(cap, self.train_clips // MIN_STEPS_PER_EPOCH):
            largest *= 2
        sizes = [largest >> shift for shift in reversed(range(BATCH_CHOICES))]
        return tuple(size for size in sizes if size >= MIN_BATCH)


def epoch_budget(train_clips: int, factor: int = 1) -> tuple[int, int]:
    """The default (max epochs, grace period) for a training set of ``train_clips`` clips, the
    epochs multiplied by ``factor`` (a space's ``epoch_factor``; the grace period stays)."""
    budget = [(epochs, grace) for least, epochs, grace in EPOCH_BUDGETS if train_clips >= least]
    epochs, grace = budget[-1]
    return epochs * factor, grace

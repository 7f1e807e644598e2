"""The confusion matrix drawn for the analysis (a figure) and for TensorBoard (an image and a table).

    fig = confusion_figure(counts, labels, title="val, epoch 3")       # one matrix
    pixels = confusion_image(counts)                                   # cheap: what trials log per epoch
    table = confusion_markdown(counts, labels)                         # ... with this labelled text
    image = draw_confusion(ax, counts, labels, title)                  # into an axes of your own

Rows are the true classes, columns the predicted ones; colours are the fraction of each true
class (rows sum to 1), and each cell that holds clips (and every diagonal cell) shows that
fraction with the clip count beneath. Figures are plain matplotlib ``Figure`` objects (no
pyplot state), so this runs headless and in Ray workers. No Ray, no torch.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

CMAP = "Blues"
DARK_CELL = 0.55  # a fraction above which the cell's text is white
CELL_PIXELS = 24  # side of one cell in confusion_image


def confusion_side(num_labels: int) -> float:
    """Inches for one matrix with its tick labels: the figure size that keeps the cells readable."""
    return max(0.55 * num_labels, 3.2) + 1.4


def confusion_rates(counts) -> np.ndarray:
    """Counts normalised per true class (row); an empty row stays 0."""
    counts = np.asarray(counts)
    return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)


def confusion_image(counts) -> np.ndarray:
    """The matrix as an RGB image (rows true, columns predicted, CMAP by the fraction of the true
    class) -> (N * CELL_PIXELS, N * CELL_PIXELS, 3) uint8. About a millisecond, where a Figure
    takes a few hundred: what a trial logs every epoch (its labelled numbers go as text)."""
    from matplotlib import colormaps  # the colour map alone, no figure machinery

    colours = colormaps[CMAP](confusion_rates(counts))[..., :3]  # (N, N, 3) in [0, 1]
    cells = np.ones((CELL_PIXELS, CELL_PIXELS, 1))
    return (np.kron(colours, cells) * 255).round().astype(np.uint8)


def confusion_markdown(counts, labels) -> str:
    """The matrix as a Markdown table: each cell the fraction of its true class (row) and the
    count, for TensorBoard's text tab."""
    counts = np.asarray(counts)
    rates = confusion_rates(counts)
    lines = ["| true \\ predicted | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for row, label in enumerate(labels):
        cells = (f"{rates[row, column]:.2f} ({counts[row, column]})" for column in range(len(labels)))
        lines.append(f"| **{label}** | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def draw_confusion(ax, counts, labels, title: str | None = None):
    """Draw one confusion matrix into ``ax`` -> the image (for a shared colour bar)."""
    counts = np.asarray(counts)
    rates = confusion_rates(counts)
    image = ax.imshow(rates, cmap=CMAP, vmin=0, vmax=1)
    for (row, column), rate in np.ndenumerate(rates):
        if counts[row, column] or row == column:
            ax.text(
                column,
                row,
                f"{rate:.2f}\n({counts[row, column]})",
                ha="center",
                va="center",
                fontsize="x-small",
                color="white" if rate > DARK_CELL else "#212529",
            )
    ax.set_xticks(range(len(labels)), list(labels), rotation=40, ha="right")
    ax.set_yticks(range(len(labels)), list(labels))
    ax.set(xlabel="predicted", ylabel="true")
    if title:
        ax.set_title(title, fontsize="medium")
    return image


def confusion_figure(counts, labels, title: str | None = None) -> Figure:
    """One confusion matrix as a Figure, with its colour bar (see the module doc)."""
    side = confusion_side(len(labels))
    fig = Figure(figsize=(side + 1.0, side + (0.3 if title else 0.0)), layout="constrained")
    ax = fig.subplots()
    image = draw_confusion(ax, counts, labels, title)
    fig.colorbar(image, ax=ax, label="fraction of the true class", shrink=0.8)
    return fig

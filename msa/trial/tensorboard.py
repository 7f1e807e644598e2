"""A trial's TensorBoard events: losses, metrics, the learning rate and the validation
confusion matrix of every epoch (in the trial folder, where Ray syncs it with the checkpoints).

The matrix goes as a colour image and as a labelled text table: drawing a matplotlib figure
every epoch cost a cached trial more than its epochs (benchmarks/bench_overhead.py)."""

from torch.utils.tensorboard import SummaryWriter

from msa.train.figures import confusion_image, confusion_markdown

LOSSES = ("train_loss", "val_loss")
SCORES = ("train_acc", "val_acc", "val_f1", "val_uar")
CONFUSION_TAG = "val/confusion_matrix"


def log_epoch(writer: SummaryWriter, metrics: dict, confusion, labels, epoch: int) -> None:
    for key in LOSSES:
        writer.add_scalar(f"loss/{key}", metrics[key], epoch)
    for key in SCORES:
        writer.add_scalar(f"metrics/{key}", metrics[key], epoch)
    writer.add_scalar("lr", metrics["lr"], epoch)
    writer.add_image(CONFUSION_TAG, confusion_image(confusion), epoch, dataformats="HWC")
    writer.add_text(CONFUSION_TAG, confusion_markdown(confusion, labels), epoch)
    writer.flush()

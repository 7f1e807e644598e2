"""A trial's TensorBoard events: losses, metrics, the learning rate and the validation
confusion matrix of every epoch (in the trial folder, where Ray syncs it with the checkpoints)."""

from torch.utils.tensorboard import SummaryWriter

from msa.train.figures import confusion_figure

LOSSES = ("train_loss", "val_loss")
SCORES = ("train_acc", "val_acc", "val_f1", "val_uar")


def log_epoch(writer: SummaryWriter, metrics: dict, confusion, labels, epoch: int) -> None:
    for key in LOSSES:
        writer.add_scalar(f"loss/{key}", metrics[key], epoch)
    for key in SCORES:
        writer.add_scalar(f"metrics/{key}", metrics[key], epoch)
    writer.add_scalar("lr", metrics["lr"], epoch)
    writer.add_figure("val/confusion_matrix", confusion_figure(confusion, labels), epoch)  # closes the figure
    writer.flush()

"""``msa predict MODEL INPUT...`` (alias ``python -m msa.predict``): the emotions in recordings,
per subtitle cue or over sliding windows.

Exit status: 0 every output written; 2 a bad argument or input (one line naming it; nothing is
written for that input, and earlier outputs stay); 1 an unexpected failure.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from msa.data.datasets import fixed_crop_dataset
from msa.data.decode import CROPS, PREDICT_WINDOW
from msa.data.media import MediaError, first_line
from msa.pareto import add_pick_argument
from msa.predict.classifier import Classifier, load_classifier
from msa.predict.html import EMBED_MEDIA_LIMIT, MB, PlayerError, check_player, write_player
from msa.predict.live_command import add_live_arguments, check_live_arguments, run_live
from msa.predict.media import MediaInfo, probe
from msa.predict.plot import PLOT_EXTENSIONS, PLOT_STYLES, draw_timeline
from msa.predict.run import predict_spans
from msa.predict.spans import cue_spans, window_spans
from msa.predict.subtitles import Cue, SubtitleError, read_subtitles
from msa.predict.timeline import OUTPUT_EXTENSIONS, AnnotatedCue, write_output

WINDOW, HOP = PREDICT_WINDOW, 1.0  # s: the default sliding window and hop
OUTPUT_SUFFIX = ".emotions"  # talk.mp4 -> talk.emotions.vtt beside it
DEFAULT_FORMAT = ".vtt"
# Subtitle tools round and pad their timings: a cue may end this far past the media's end (it is
# clipped there); further is a subtitle file for another recording.
CUE_END_TOLERANCE = 0.5  # s
PROG = "python -m msa.predict"


class InputError(ValueError):
    """A bad argument, input file or subtitle file (exit 2, one line)."""


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Annotate recordings with emotions: per subtitle cue, or over sliding windows.",
    )
    parser.add_argument(
        "model",
        metavar="MODEL",
        help="an experiment directory (its best checkpoint), a checkpoint file, or an ONNX file from msa export",
    )
    parser.add_argument(
        "inputs", metavar="INPUT", nargs="*", help="video (mp4, mkv, webm, mov) or audio files"
    )
    parser.add_argument("--trial", help="an experiment's trial folder to use instead of the best trial")
    add_pick_argument(parser, "the trial")
    parser.add_argument("--subtitles", metavar="IN.vtt|IN.srt", help="classify each cue (one INPUT only)")
    parser.add_argument("--window", type=float, default=WINDOW, help=f"seconds per window (default {WINDOW})")
    parser.add_argument("--hop", type=float, default=HOP, help=f"seconds between windows (default {HOP})")
    parser.add_argument(
        "--out",
        metavar="FILE|DIR",
        help="the output file (.vtt .srt .csv .json), or a folder for several INPUTs "
        f"(default: INPUT's name + {OUTPUT_SUFFIX}.vtt beside it)",
    )
    parser.add_argument(
        "--format", choices=[e[1:] for e in OUTPUT_EXTENSIONS], help="output format when --out is a folder"
    )
    parser.add_argument("--plot", metavar="OUT.png", help=f"draw the timeline ({', '.join(PLOT_EXTENSIONS)})")
    parser.add_argument("--plot-style", choices=PLOT_STYLES, default=PLOT_STYLES[0])
    parser.add_argument(
        "--html",
        metavar="OUT.html",
        help="an annotated-transcript page: the recording, its transcript and timeline, in one file "
        "that loads nothing from the network (the recording by its path relative to the page)",
    )
    parser.add_argument(
        "--embed-media",
        action="store_true",
        help=f"put the recording inside the --html page (up to {EMBED_MEDIA_LIMIT / MB:g} MB)",
    )
    parser.add_argument(
        "--crop",
        choices=CROPS,
        help="fixed: RAVDESS framing; face: around the detected face "
        "(default: face, unless the model was trained on fixed crops and INPUT is RAVDESS-named)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_live_arguments(parser)
    return parser


def parse_args(argv: list[str] | None, prog: str = PROG) -> argparse.Namespace:
    parser = build_parser(prog)
    args = parser.parse_intermixed_args(
        argv
    )  # INPUTs may follow options: MODEL --live - x.mp4 is refused by name
    for name in ("window", "hop"):
        if not getattr(args, name) > 0:
            parser.error(f"--{name} must be a number of seconds > 0")
    check_live_arguments(parser, args)
    if len(args.inputs) > 1 and (args.subtitles or args.plot or args.html):
        parser.error("--subtitles, --plot and --html belong to one recording: give one INPUT with them")
    if args.embed_media and not args.html:
        parser.error("--embed-media goes with --html")
    return args


def output_path(args: argparse.Namespace, recording: Path) -> Path:
    """Where INPUT's annotations go (see --out)."""
    suffix = f".{args.format}" if args.format else DEFAULT_FORMAT
    if args.out is None:
        return recording.with_name(recording.stem + OUTPUT_SUFFIX + suffix)
    out = Path(args.out)
    if out.is_dir() or len(args.inputs) > 1:
        if out.exists() and not out.is_dir():
            raise InputError(f"--out {out}: with several INPUTs it must be a folder")
        return out / (recording.stem + OUTPUT_SUFFIX + suffix)
    if out.suffix.lower() not in OUTPUT_EXTENSIONS:
        raise InputError(f"--out {out}: unknown extension (expected {', '.join(OUTPUT_EXTENSIONS)})")
    return out


def count(number: int, noun: str) -> str:
    return f"{number} {noun}{'s' * (number != 1)}"


def choose_crop(requested: str | None, trained: str, recording: Path) -> tuple[str, str]:
    """(crop, why): --crop; else the face crop, unless the model trained on RAVDESS's fixed
    framing and INPUT is a clip of that dataset (msa.data.datasets.fixed_crop_dataset)."""
    if requested:
        return requested, "--crop"
    if trained == "face":
        return "face", "the model was trained on face crops"
    dataset = fixed_crop_dataset(recording.name)
    if dataset is None:
        return "face", "not a clip of the dataset the fixed crop is framed for"
    return "fixed", f"a {dataset} clip, and the model was trained on {dataset} framing"


def check_input(classifier: Classifier, info: MediaInfo, recording: Path) -> None:
    if classifier.uses_audio and not info.has_audio:
        raise InputError(f"{recording}: no audio track, and the model classifies audio")
    if classifier.uses_video and not info.has_video and not classifier.predicts_without_video:
        raise InputError(f"{recording}: no video track, and the model classifies video only")


def read_cues(path: str, info: MediaInfo) -> list[Cue]:
    """The subtitle file's cues, each ending no later than the media (see CUE_END_TOLERANCE)."""
    if not Path(path).is_file():
        raise InputError(f"--subtitles {path}: no such file")
    cues = read_subtitles(path)
    if not cues:
        raise InputError(f"{path}: no cues")
    clipped = []
    for number, cue in enumerate(cues, start=1):
        if cue.start >= info.duration or cue.end > info.duration + CUE_END_TOLERANCE:
            raise InputError(
                f"{path}: cue {number} ({cue.start:.3f}-{cue.end:.3f} s) lies past the end of the media "
                f"({info.duration:.3f} s in {info.path})"
            )
        clipped.append(Cue(cue.start, min(cue.end, info.duration), cue.text, cue.identifier, cue.settings))
    return clipped


def annotate(args: argparse.Namespace, classifier: Classifier, recording: Path) -> str:
    """Classify one INPUT and write its outputs -> the summary line."""
    if not recording.is_file():
        raise InputError(f"{recording}: no such file")
    out = output_path(args, recording)
    info = probe(recording)
    check_input(classifier, info, recording)
    crop, why = choose_crop(args.crop, classifier.params.crop, recording)
    cues = read_cues(args.subtitles, info) if args.subtitles else None
    frames = classifier.params.num_frames
    if cues is not None:
        spans = cue_spans(cues, info.frame_times, frames)
    else:
        spans = window_spans(info.duration, args.window, args.hop, info.frame_times, frames)
    kind = "cue" if cues else "window"
    print(f"{recording}: {info.describe()}; {count(len(spans), kind)}", file=sys.stderr)
    if classifier.uses_video and info.has_video:
        print(f"  crop: {crop} ({why})", file=sys.stderr)
    started = time.perf_counter()
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=round(info.duration, 1), unit="s", desc="  predicting", leave=False, disable=None)

    def progress(seconds: float) -> None:
        if bar is not None:
            bar.update(max(0.0, round(min(seconds, info.duration), 1) - bar.n))

    try:
        predictions, stats = predict_spans(
            classifier, info, spans, crop, steady=cues is None, on_progress=progress
        )
    finally:
        if bar is not None:
            bar.close()
    elapsed = time.perf_counter() - started
    items = [AnnotatedCue(c, p) for c, p in zip(cues, predictions, strict=True)] if cues else predictions
    write_output(out, classifier.labels, items)
    written = [str(out)]
    if args.plot:
        draw_timeline(
            args.plot, classifier.labels, predictions, cues, args.plot_style, recording.name, info.duration
        )
        written.append(args.plot)
    if args.html:
        write_player(
            args.html,
            classifier.labels,
            items,
            media=recording,
            duration=info.duration,
            model=classifier.description,
            video=info.has_video,
            embed_media=args.embed_media,
        )
        written.append(args.html)
    sources = ", ".join(f"{n} {source}" for source, n in Counter(p.source for p in predictions).items())
    tops = Counter(p.label(classifier.labels) for p in predictions if p.classified).most_common(3)
    top = ", ".join(f"{label} {n}" for label, n in tops) or "none"
    speed = info.duration / elapsed if elapsed > 0 else float("inf")
    return (
        f"{recording}: {count(len(predictions), kind)} ({sources}); most often {top}; "
        f"{elapsed:.1f} s, {speed:.1f}x real time -> {', '.join(written)}"
    )


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    args = parse_args(argv, prog)
    if args.plot and Path(args.plot).suffix.lower() not in PLOT_EXTENSIONS:
        print(
            f"error: --plot {args.plot}: unknown extension (expected {', '.join(PLOT_EXTENSIONS)})",
            file=sys.stderr,
        )
        return 2
    if args.html and not args.live:  # its extension, and the size of media to embed: before the model loads
        try:
            check_player(args.html, Path(args.inputs[0]), args.embed_media)
        except PlayerError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    try:
        trial = args.trial
        if args.pick:  # (an ONNX model loads no training code: msa.export.source only for --pick)
            from msa.export.source import chosen_trial

            trial = chosen_trial(args.model, args.trial, args.pick)
        classifier = load_classifier(args.model, trial)
    except ImportError as error:
        print(f"error: {args.model}: {error} (ONNX models need the export extra)", file=sys.stderr)
        return 2
    except Exception as error:  # SourceError, CheckpointError, FileNotFoundError, ValueError
        print(f"error: {first_line(error)}", file=sys.stderr)
        return 2
    print(f"model: {classifier.description}; labels {', '.join(classifier.labels)}", file=sys.stderr)
    if args.live:
        return run_live(args, classifier)
    for recording in args.inputs:
        try:
            print(annotate(args, classifier, Path(recording)))
        except (InputError, MediaError, SubtitleError) as error:
            print(f"error: {first_line(error)}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

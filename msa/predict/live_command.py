"""``msa predict MODEL --live SOURCE``: the options of live annotation and the command's run
(msa.predict.live does the work).

Exit status: 0 the stream ended; 130 Ctrl-C (143 SIGTERM), after the complete windows are written;
2 a bad argument, a source that cannot be opened or that stalls (one line naming it); 1 an
unexpected failure. Every output file is valid whenever the command stops.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from msa.predict.classifier import Classifier
from msa.predict.live import STALL_TIMEOUT, LiveError, LiveOptions, LivePass, LiveSummary
from msa.predict.live_output import LiveRow, open_output
from msa.predict.live_source import STDIN, SourceReader, parse_source
from msa.predict.subtitles import Cue
from msa.predict.timeline import AnnotatedCue

EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143  # 128 + SIGINT, 128 + SIGTERM


def add_live_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("live annotation (--live SOURCE instead of INPUTs)")
    group.add_argument(
        "--live",
        metavar="SOURCE",
        help="annotate a stream as it arrives: '-' (stdin, e.g. ffmpeg ... -f matroska -), a URL "
        "(rtsp:// srt:// udp:// http(s)://), a device FORMAT:DEVICE (v4l2:/dev/video0, alsa:default, "
        "pulse:default), or a file still being written (with --follow); JSON lines on stdout unless --out",
    )
    group.add_argument("--follow", action="store_true", help="--live FILE: read the file as it grows")
    group.add_argument(
        "--subtitles-live",
        metavar="FILE|-",
        help="classify WebVTT cues as they arrive (a file as it grows, or stdin), each once the stream passes its end",
    )
    group.add_argument(
        "--max-latency",
        type=float,
        metavar="SECONDS",
        help="skip a complete window that has waited longer than this while a newer one is complete "
        "(default: the hop); skipped windows are counted and reported",
    )
    group.add_argument(
        "--stall-timeout",
        type=float,
        default=STALL_TIMEOUT,
        metavar="SECONDS",
        help=f"stop with exit 2 when SOURCE sends nothing for this long (default {STALL_TIMEOUT:g})",
    )


def check_live_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """parser.error (exit 2) for what --live cannot go with; sets the --max-latency default."""
    live_only = ("follow", "subtitles_live", "max_latency")
    if not args.live:
        given = [f"--{name.replace('_', '-')}" for name in live_only if getattr(args, name)]
        if given:
            parser.error(f"{', '.join(given)} go{'es' * (len(given) == 1)} with --live SOURCE")
        if not args.inputs:
            parser.error("give INPUT recordings, or --live SOURCE")
        return
    if args.inputs:
        parser.error(f"--live {args.live} annotates one stream: give no INPUT with it (got {args.inputs[0]})")
    if args.subtitles:
        parser.error("--subtitles reads a finished file; with --live, use --subtitles-live")
    if args.embed_media:
        parser.error("--embed-media needs a finished recording, not --live")
    if args.live == STDIN and args.subtitles_live == STDIN:
        parser.error("--live - and --subtitles-live - cannot both read stdin")
    if args.subtitles_live not in (None, STDIN) and not Path(args.subtitles_live).is_file():
        parser.error(f"--subtitles-live {args.subtitles_live}: no such file")
    if args.max_latency is None:
        args.max_latency = args.hop
    for name in ("max_latency", "stall_timeout"):
        if not getattr(args, name) > 0:
            parser.error(f"--{name.replace('_', '-')} must be a number of seconds > 0")


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: the complete windows are written, the files closed."""


def _terminate(signum, frame) -> None:
    raise _Terminated


class _Collected:
    """The rows written, kept for --plot and --html at the end (a few hundred bytes per window)."""

    def __init__(self, output):
        self.output, self.rows = output, []

    def write(self, row: LiveRow) -> None:
        self.output.write(row)
        self.rows.append(row)

    def close(self) -> None:
        self.output.close()


def run_live(args: argparse.Namespace, classifier: Classifier) -> int:
    def note(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    try:
        source = parse_source(args.live, args.follow)
        output = open_output(classifier.labels, args.out)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    collected = _Collected(output) if (args.plot or args.html) else output
    options = LiveOptions(args.window, args.hop, args.max_latency, args.stall_timeout, args.crop or "face")
    step = options.window / classifier.params.num_frames
    reader = SourceReader(source, step, classifier.uses_video, classifier.uses_audio, options.stall_timeout)
    live = LivePass(classifier, reader, options, collected, cue_mode=bool(args.subtitles_live), note=note)
    if args.subtitles_live:
        from msa.predict.live_cues import CueReader

        CueReader(args.subtitles_live, reader.items, reader.stop).start()
    previous = signal.signal(signal.SIGTERM, _terminate)
    kind = "cue" if args.subtitles_live else "window"
    status = 0
    reader.start()
    try:
        classifier.warm_up(options.window)  # while the source opens: not on the first windows' latency
        live.run()
    except _Terminated:
        status = EXIT_TERMINATED
    except KeyboardInterrupt:
        status = EXIT_INTERRUPTED
    except LiveError as error:
        print(f"error: {error}", file=sys.stderr)
        status = 2
    finally:
        signal.signal(signal.SIGTERM, previous)
        reader.stop.set()
        collected.close()
    if (args.plot or args.html) and collected.rows:
        has_video = reader.info is not None and reader.info.has_video
        _draw_at_end(args, classifier, collected.rows, live.summary, has_video)
    print(f"{args.live}: {live.summary.line(kind)}", file=sys.stderr)
    return status


def _draw_at_end(
    args: argparse.Namespace,
    classifier: Classifier,
    rows: list[LiveRow],
    summary: LiveSummary,
    has_video: bool,
) -> None:
    """--plot and --html from the rows written (a followed file is the page's media)."""
    predictions = [row.prediction for row in rows]
    cues = [Cue(row.start, row.end, row.text or "") for row in rows] if args.subtitles_live else None
    duration = max([summary.stream_seconds, *(row.end for row in rows)])
    if args.plot:
        from msa.predict.plot import draw_timeline

        draw_timeline(args.plot, classifier.labels, predictions, cues, args.plot_style, args.live, duration)
    if args.html:
        from msa.predict.html import write_player

        items = [AnnotatedCue(c, p) for c, p in zip(cues, predictions, strict=True)] if cues else predictions
        media = Path(args.live) if args.follow else None
        write_player(
            args.html,
            classifier.labels,
            items,
            media=media,
            duration=duration,
            model=classifier.description,
            video=has_video,
        )

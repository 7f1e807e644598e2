"""``python -m msa.predict.replay RECORDING``: a recording written to standard output as a live
stream, at the pace it plays (what ``ffmpeg -re -i RECORDING -c copy -f matroska -`` does, for
machines without FFmpeg's command line), to try ``msa predict MODEL --live -`` without a meeting
and to measure its latency (benchmarks/bench_live.py)::

    python -m msa.predict.replay talk.mp4 | msa predict MODEL --live -

The packets are copied, not re-encoded, each sent when the wall clock reaches its timestamp
(divided by ``--speed``) and flushed at once, so the reader gets the stream as a capture would
deliver it. Exit status: 0 at the recording's end, 2 a recording that cannot be read (one line),
0 when the reader goes away (a closed pipe).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from msa.data.media import error_line

FORMATS = ("matroska", "mpegts")
# Every packet leaves at once: Matroska otherwise holds a cluster (about a second) before writing it.
CLUSTER_TIME_LIMIT = 40  # ms
MUXER_OPTIONS = {
    "matroska": {"flush_packets": "1", "cluster_time_limit": str(CLUSTER_TIME_LIMIT)},
    "mpegts": {"flush_packets": "1"},
}
PROG = "python -m msa.predict.replay"


class _Unbuffered:
    """A file descriptor for FFmpeg's writer: every write goes straight to it."""

    def __init__(self, fd: int):
        self.fd = fd

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]
        return len(data)


def replay(recording: str, out_fd: int, speed: float = 1.0, format: str = FORMATS[0]) -> None:
    """Copy ``recording``'s first video and audio tracks to ``out_fd`` at ``speed`` times real time."""
    import av

    with av.open(recording) as source:
        tracks = [s for s in (*source.streams.video[:1], *source.streams.audio[:1])]
        with av.open(
            _Unbuffered(out_fd), "w", format=format, buffer_size=4096, options=MUXER_OPTIONS[format]
        ) as sink:
            copies = {track.index: sink.add_stream_from_template(track) for track in tracks}
            started, first = time.monotonic(), None
            for packet in source.demux(*tracks):
                if packet.dts is None:  # a demuxer's flush packet
                    continue
                at = float(packet.pts * packet.time_base) if packet.pts is not None else None
                if at is not None:
                    first = at if first is None else first
                    delay = started + (at - first) / speed - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)  # the pace of the recording: what a capture would deliver
                packet.stream = copies[packet.stream.index]
                sink.mux(packet)


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("recording", metavar="RECORDING")
    parser.add_argument("--speed", type=float, default=1.0, help="times real time (default 1)")
    parser.add_argument("--format", choices=FORMATS, default=FORMATS[0], help="the stream's container")
    args = parser.parse_args(argv)
    if not args.speed > 0:
        parser.error("--speed must be > 0")
    if not os.path.isfile(args.recording):
        print(f"{prog}: {args.recording}: no such file", file=sys.stderr)
        return 2
    import av

    try:
        replay(args.recording, sys.stdout.fileno(), args.speed, args.format)
    except BrokenPipeError:
        return 0
    except av.FFmpegError as error:
        if isinstance(getattr(error, "__context__", None), BrokenPipeError) or "Broken pipe" in str(error):
            return 0
        print(f"{prog}: {args.recording}: {error_line(error)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

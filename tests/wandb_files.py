"""Reading W&B offline runs back from their files, as `wandb sync` would upload them.

An offline run folder holds ``run-<id>.wandb``: a LevelDB-style log (a 7-byte header, then
32 KiB blocks of chunks, each with a 7-byte header: crc32, length, type) of protobuf Records.
"""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

HEADER_BYTES = 7  # ":W&B" + magic + version
BLOCK_BYTES = 32 * 1024
CHUNK_HEADER_BYTES = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


@dataclass
class OfflineRun:
    folder: Path
    run_id: str = ""
    project: str = ""
    group: str = ""
    name: str = ""
    job_type: str = ""
    config: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)  # one dict per logged step
    summary: dict = field(default_factory=dict)
    exited: bool = False


def records(path: Path):
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    position, pending = HEADER_BYTES, b""
    while position + CHUNK_HEADER_BYTES <= len(data):
        left_in_block = BLOCK_BYTES - position % BLOCK_BYTES
        if left_in_block < CHUNK_HEADER_BYTES:  # the block's tail is padding
            position += left_in_block
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + CHUNK_HEADER_BYTES])
        position += CHUNK_HEADER_BYTES
        if kind == 0 and length == 0:
            break
        pending += data[position : position + length]
        position += length
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def item_key(item) -> str:
    return item.key or "/".join(item.nested_key)


def read_offline_run(folder: Path, timeout: float = 30.0) -> OfflineRun:
    """The run in ``folder``, once its exit record is on disk (wandb's service process may still
    be flushing when wandb.finish returns, more so on a busy machine)."""
    deadline = time.time() + timeout
    run = read_run_file(folder)
    while not run.exited and time.time() < deadline:
        time.sleep(0.2)
        run = read_run_file(folder)
    return run


def read_run_file(folder: Path) -> OfflineRun:
    (path,) = folder.glob("run-*.wandb")
    run = OfflineRun(folder)
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.run_id, run.project, run.group = record.run.run_id, record.run.project, record.run.run_group
            run.name, run.job_type = record.run.display_name, record.run.job_type
            run.config.update({item_key(i): json.loads(i.value_json) for i in record.run.config.update})
        elif kind == "config":
            run.config.update({item_key(i): json.loads(i.value_json) for i in record.config.update})
        elif kind == "history":
            run.history.append({item_key(i): json.loads(i.value_json) for i in record.history.item})
        elif kind == "summary":
            run.summary.update({item_key(i): json.loads(i.value_json) for i in record.summary.update})
        elif kind == "exit":
            run.exited = True
    return run


def offline_runs(folder: Path) -> list[OfflineRun]:
    """Every offline run under ``folder`` (a trial's, or the summary run's), oldest first."""
    return [read_offline_run(path) for path in sorted(folder.glob("**/wandb/offline-run-*"))]

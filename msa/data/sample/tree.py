"""The tree on disk: atomic generation of a whole sample and its place in the cache.

A sample is written into a temporary sibling folder, its :data:`.spec.MARKER` last, and the
folder is then renamed into place, so a half-written tree is never taken for a finished one.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import uuid
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from msa.data import default_cache_dir
from msa.data.sample.encoding import write_clip
from msa.data.sample.spec import GENERATOR_VERSION, MARKER, SampleSpec, clip_relpath


def _write_one(args) -> str:
    """Write one clip; ``args`` is (root, spec, clip) so that it can be sent to a worker process."""
    root, spec, clip = args
    path = Path(root) / clip_relpath(*clip)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_clip(path, spec, clip)
    return str(path)


def is_complete(root: Path, spec: SampleSpec | None = None) -> bool:
    """Whether ``root`` holds a finished sample (its marker is present, readable, and names
    this generator version and, when given, this spec)."""
    try:
        marker = json.loads((Path(root) / MARKER).read_text())
    except (OSError, ValueError):
        return False
    if marker.get("version") != GENERATOR_VERSION:
        return False
    return spec is None or marker.get("spec") == spec.to_dict()


def _default_workers(n_clips: int) -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, n_clips))


def generate_sample(
    root: Path, spec: SampleSpec = SampleSpec(), workers: int | None = None, progress: bool = True
) -> Path:
    """Write the sample described by ``spec`` to ``root`` (``root/Actor_XX/*.mp4``) and return
    ``root``. Nothing to do when ``root`` already holds it. The clips are written into a
    temporary sibling folder, the marker last, and the folder is then renamed into place, so a
    half-written tree is never taken for a finished one; when two processes race, the loser
    discards its own copy and uses the winner's. A folder at ``root`` without a valid marker is
    replaced."""
    root = Path(root)
    if is_complete(root, spec):
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        clips = spec.clips()
        workers = _default_workers(len(clips)) if workers is None else max(1, int(workers))
        jobs = [(str(tmp), spec, clip) for clip in clips]
        from tqdm import tqdm

        bar = tqdm(
            total=len(jobs),
            desc="sample clips",
            unit="clip",
            file=sys.stderr,
            disable=not progress,
            leave=False,
        )
        with bar:
            if workers == 1:
                for job in jobs:
                    _write_one(job)
                    bar.update()
            else:
                import multiprocessing

                # spawn: safe even when the caller runs threads (torch, Ray) that fork would copy.
                ctx = multiprocessing.get_context("spawn")
                with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
                    try:
                        for future in as_completed([pool.submit(_write_one, job) for job in jobs]):
                            future.result()
                            bar.update()
                    except BaseException:
                        pool.shutdown(wait=True, cancel_futures=True)
                        raise
        marker = {
            "generator": "msa.data.sample",
            "version": GENERATOR_VERSION,
            "spec": spec.to_dict(),
            "clips": len(clips),
        }
        (tmp / MARKER).write_text(json.dumps(marker, indent=1, sort_keys=True) + "\n")
        _install(tmp, root, spec)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def _install(tmp: Path, root: Path, spec: SampleSpec) -> None:
    """Rename ``tmp`` to ``root``; give way to a finished ``root``; move an unfinished one aside."""
    for _ in range(10):
        try:
            os.rename(tmp, root)
            return
        except OSError:
            if not root.exists():
                continue  # it vanished between the calls: try again
            if is_complete(root, spec):
                return  # another process won; the caller removes tmp
            stale = root.parent / f".{root.name}.stale-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            try:
                os.rename(root, stale)
            except OSError:
                continue  # someone else moved it first
            shutil.rmtree(stale, ignore_errors=True)
    raise RuntimeError(f"could not move the generated sample into place at {root}")


def sample_dir(cache_dir: Path | None = None, spec: SampleSpec = SampleSpec()) -> Path:
    """Where the sample for ``spec`` lives in the cache: ``CACHE/sample-v1-<hash>``."""
    cache_dir = default_cache_dir() if cache_dir is None else Path(cache_dir)
    return cache_dir / f"sample-v{GENERATOR_VERSION}-{spec.short_hash()}"


def ensure_sample(
    cache_dir: Path | None = None,
    spec: SampleSpec = SampleSpec(),
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """The embedded sample's root in the cache, generated on first use (one line on stderr
    when it is, and one with the time it took)."""
    root = sample_dir(cache_dir, spec)
    if is_complete(root, spec):
        return root
    n = len(spec.clips())
    print(f"Generating the embedded sample dataset ({n} clips) into {root} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    generate_sample(root, spec, workers=workers, progress=progress)
    print(f"Embedded sample ready in {time.perf_counter() - start:.1f} s.", file=sys.stderr, flush=True)
    return root

"""Audio backbone weights: a Hugging Face speech encoder (wav2vec 2.0, HuBERT, WavLM, ...).

A source is a hub id ("facebook/wav2vec2-base", or "ID@REVISION" for a branch, tag or commit)
or a local folder written by save_pretrained. Hub ids live in the standard Hugging Face cache,
where transformers' from_pretrained(ID, local_files_only=True) finds them too.
huggingface_hub does all the HTTP and reads its settings from the environment when it is
imported: HF_ENDPOINT, HF_HOME / HF_HUB_CACHE, HF_HUB_OFFLINE (then fetch only finds), HF_TOKEN.

Only what a model needs is fetched: config.json and the weights in one format, chosen from the
repo's file listing in the order of WEIGHT_FILES (safetensors first; an index brings its
shards), never the whole repo, which often also holds TF / Flax / ONNX copies.

Time bound: every request carries `timeout`, and the whole network part runs under a
stall.Watchdog beaten by each answered step, so an endpoint that refuses or never answers fails
within about `timeout` seconds, whatever huggingface_hub's retries would add. While a file's
body streams the watchdog is held: huggingface_hub reports progress once per 10 MB, so a slow
but live link would look stalled; a body that stops flowing fails on huggingface_hub's own read
timeout (HF_HUB_DOWNLOAD_TIMEOUT, 10 s) after its five resumes, about a minute.
"""

import json
from collections.abc import Callable
from pathlib import Path

import httpx2
from huggingface_hub import HfApi, constants, hf_hub_download, try_to_load_from_cache
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import validate_repo_id
from tqdm import tqdm

from msa.weights.files import FETCH_TIMEOUT, WeightsFiles, WeightsUnavailable, weights_files
from msa.weights.stall import Stalled, Watchdog

DEFAULT_AUDIO_WEIGHTS = "facebook/wav2vec2-base"
# transformers' model_type of the speech encoders msa's audio branch runs (and `list` shows).
SPEECH_MODEL_TYPES = ("wav2vec2", "hubert", "wavlm")
CONFIG = "config.json"
# In order of preference: safetensors (no pickle, memory-mapped) before PyTorch's pickles; an
# ".index.json" maps tensors to the shards of a checkpoint split in several files.
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def find(source: str) -> WeightsFiles:
    """The model `source` names, from its folder or the Hugging Face cache; never touches the network."""
    hub = _hub_id(source)
    folder = Path(source).expanduser() if hub is None else _cached_snapshot(source, *hub)
    if not (folder / CONFIG).is_file():
        raise WeightsUnavailable(f"audio weights {source}: {folder} has no {CONFIG}")
    index_or_weights = _preferred(lambda name: (folder / name).is_file())
    if index_or_weights is None:
        raise WeightsUnavailable(f"audio weights {source}: {folder} has none of {', '.join(WEIGHT_FILES)}")
    if not index_or_weights.endswith(".index.json"):
        return weights_files("audio", source, folder, other=[CONFIG], weights=[index_or_weights])
    shards = _shards(folder / index_or_weights)
    if missing := [shard for shard in shards if not (folder / shard).is_file()]:
        raise WeightsUnavailable(
            f"audio weights {source}: {folder} lacks {missing[0]}, a shard of {index_or_weights}"
        )
    return weights_files("audio", source, folder, other=[CONFIG, index_or_weights], weights=shards)


def fetch(source: str, progress: bool = True, timeout: float = FETCH_TIMEOUT) -> WeightsFiles:
    """find(source), downloading a hub id's config.json and weights into the Hugging Face cache first if missing."""
    hub = _hub_id(source)
    try:
        return find(source)
    except WeightsUnavailable as error:
        if hub is None:
            raise
        if constants.is_offline_mode():
            raise WeightsUnavailable(f"{error} (HF_HUB_OFFLINE is set: nothing is downloaded)") from None
    _download(source, *hub, progress=progress, timeout=timeout)
    return find(source)


def _hub_id(source: str) -> tuple[str, str | None] | None:
    """(repo id, revision or None for the default branch) of a hub source; None for a local folder."""
    path = Path(source).expanduser()
    if path.is_dir():
        return None
    if path.is_absolute() or source.startswith((".", "~")):
        raise WeightsUnavailable(f"audio weights {source!r}: no such folder")
    repo_id, _, revision = source.partition("@")
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise WeightsUnavailable(
            f"audio weights {source!r}: neither a folder nor a hub id (NAMESPACE/NAME, optionally @REVISION)"
        ) from None
    return repo_id, revision or None


def _cached_snapshot(source: str, repo_id: str, revision: str | None) -> Path:
    """The cache's snapshot folder of `revision`, found through its config.json."""
    config = try_to_load_from_cache(repo_id, CONFIG, revision=revision)
    if not isinstance(config, str):  # None, or a cached "this file does not exist"
        raise WeightsUnavailable(
            f"audio weights {source}: not in the Hugging Face cache ({constants.HF_HUB_CACHE}); "
            f"`msa weights fetch --audio {source}` gets it"
        )
    return Path(config).parent


def _preferred(exists: Callable[[str], bool]) -> str | None:
    """The first of WEIGHT_FILES that exists (a weights file or an index of shards)."""
    return next((name for name in WEIGHT_FILES if exists(name)), None)


def _shards(index: Path) -> list[str]:
    """The shard files an index maps tensors to, in name order."""
    return sorted(set(json.loads(index.read_text())["weight_map"].values()))


def _download(source: str, repo_id: str, revision: str | None, *, progress: bool, timeout: float) -> None:
    """Download config.json and the preferred weights of a hub repo into the cache."""
    what = f"audio weights {source}"
    watchdog = Watchdog(timeout)
    bar = _progress_bar(watchdog, enabled=progress)

    def get(name: str) -> Path:
        try:
            path = hf_hub_download(repo_id, name, revision=revision, etag_timeout=timeout, tqdm_class=bar)
        except RemoteEntryNotFoundError:
            raise WeightsUnavailable(f"{what}: {name} is listed but missing from the repo") from None
        watchdog.beat()
        return Path(path)

    def work() -> None:
        # Downloads go by `revision` (not by the listing's commit) so that huggingface_hub records
        # refs/<revision> -> commit, through which find() reaches the snapshot.
        listing = HfApi().model_info(repo_id, revision=revision, timeout=timeout)
        watchdog.beat()
        names = {sibling.rfilename for sibling in listing.siblings or ()}
        if CONFIG not in names:
            raise WeightsUnavailable(f"{what}: the repo has no {CONFIG}")
        index_or_weights = _preferred(names.__contains__)
        if index_or_weights is None:
            raise WeightsUnavailable(f"{what}: the repo has none of {', '.join(WEIGHT_FILES)}")
        get(CONFIG)
        fetched = get(index_or_weights)
        if index_or_weights.endswith(".index.json"):
            for shard in _shards(fetched):
                get(shard)

    try:
        watchdog.run(work)
    except WeightsUnavailable:
        raise
    except Stalled:
        raise WeightsUnavailable(
            f"{what}: no answer from {constants.ENDPOINT} within {timeout:g} s"
        ) from None
    except (httpx2.HTTPError, OSError) as error:  # huggingface_hub's request and cache errors are one or both
        raise WeightsUnavailable(f"{what}: {_reason(error, timeout)}") from None


def _reason(error: Exception, timeout: float) -> str:
    """One line for what huggingface_hub raised."""
    endpoint = constants.ENDPOINT
    if isinstance(error, LocalEntryNotFoundError) and error.__cause__ is not None:
        # hf_hub_download's wrapper of a failed request: the request's error says more.
        error = error.__cause__
    if isinstance(error, GatedRepoError):
        return "a gated repo: accept its conditions on the Hub and set HF_TOKEN"
    if isinstance(error, RepositoryNotFoundError):
        return f"no such model repo on {endpoint} (a private one needs HF_TOKEN)"
    if isinstance(error, RevisionNotFoundError):
        return "no such revision in the repo"
    if isinstance(error, HfHubHTTPError):
        return f"{endpoint} answered HTTP {error.response.status_code} {error.response.reason_phrase}"
    if isinstance(error, httpx2.TimeoutException):
        return f"no answer from {endpoint} within {timeout:g} s"
    if isinstance(error, httpx2.HTTPError):
        return f"cannot reach {endpoint}: {error}"
    return " ".join(str(error).split()) or type(error).__name__


def _progress_bar(watchdog: Watchdog, enabled: bool) -> type[tqdm]:
    """A tqdm class for huggingface_hub's per-file bars (on stderr). huggingface_hub opens one
    once a body's headers arrived and closes it when the body is done: the watchdog is held
    in between (see the module's docstring)."""

    class Bar(tqdm):
        def __init__(self, *args, desc: str = "", **kwargs):
            # huggingface_hub describes a bar by the tail of the file's URL: keep the file name
            super().__init__(*args, desc=desc.rsplit("/", 1)[-1], **{**kwargs, "disable": not enabled})
            watchdog.hold()
            self._holding = True

        def close(self):
            if getattr(self, "_holding", False):  # close() also runs from __del__
                self._holding = False
                watchdog.release()
            super().close()

    return Bar

"""One file over HTTP(S), the way a cache must receive it: streamed with a stall bound, checked,
then published atomically.

The bytes go to "<name>.partial-<pid>" next to the destination and are moved onto it with
os.replace only once complete (Content-Length) and matching the expected hash prefix, so a
reader of the destination never sees half a file; the partial file is removed on any failure,
Ctrl-C included. `timeout` bounds the connection and every read (a stall), not the whole
transfer; name resolution is the resolver's own business (a failing DNS fails at once).
"""

import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from msa.weights.files import WeightsUnavailable

CHUNK = 1 << 20  # bytes per read
USER_AGENT = "msa-weights"  # some hosts refuse urllib's default agent


def download(
    url: str, destination: Path, *, hash_prefix: str | None, progress: bool, timeout: float, what: str
) -> None:
    """Download `url` to `destination`; the sha256 of the bytes must start with `hash_prefix` (if
    given). Failures raise WeightsUnavailable(f"{what}: <reason>") and leave no file behind."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f"{destination.name}.partial-{os.getpid()}")
    try:
        digest = _get(url, partial, desc=destination.name, progress=progress, timeout=timeout, what=what)
        if hash_prefix is not None and not digest.startswith(hash_prefix):
            raise WeightsUnavailable(
                f"{what}: sha256 {digest} does not start with {hash_prefix}, the hash prefix in its file name "
                f"(a corrupt or different file); nothing was cached"
            )
        os.replace(partial, destination)
    finally:
        partial.unlink(missing_ok=True)


def _get(url: str, path: Path, *, desc: str, progress: bool, timeout: float, what: str) -> str:
    """GET `url` into `path`; returns the sha256 of what was written."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(path, "wb") as file:
            if response.status != 200:
                raise WeightsUnavailable(f"{what}: HTTP {response.status} {response.reason} (expected 200)")
            length = response.headers.get("Content-Length")
            total = int(length) if length is not None else None
            digest, received = hashlib.sha256(), 0
            with tqdm(
                total=total, unit="B", unit_scale=True, desc=desc, disable=not progress, file=sys.stderr
            ) as bar:
                while chunk := response.read(CHUNK):
                    file.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as error:
        error.close()
        raise WeightsUnavailable(f"{what}: HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        raise WeightsUnavailable(f"{what}: {_one_line(error.reason, timeout)}") from None
    except (OSError, http.client.HTTPException) as error:  # a timeout mid-body, a dropped connection
        raise WeightsUnavailable(f"{what}: {_one_line(error, timeout)}") from None
    if total is not None and received != total:
        raise WeightsUnavailable(f"{what}: the connection closed after {received} of {total} bytes")
    return digest.hexdigest()


def _one_line(reason: object, timeout: float) -> str:
    """A one-line reason; timeouts say how long they waited."""
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout:g} s"
    return str(reason) or type(reason).__name__

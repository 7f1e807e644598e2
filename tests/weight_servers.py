"""Loopback stand-ins for where pretrained weights come from, for tests on machines without internet.

FileServer(files)       a download host such as download.pytorch.org: GET/HEAD /<name> -> the bytes
HubServer(repos)        the part of the Hugging Face Hub that huggingface_hub's downloads use
BlackHoleServer()       accepts TCP connections and never answers (a hung host)
closed_port_url()       an http:// URL on which nothing listens (connection refused)
use_hub(monkeypatch, endpoint, home)   point huggingface_hub (and subprocesses) at a server and a cache
tiny_speech_repo(model_type)           a tiny wav2vec2 / hubert / wavlm repo's files

Servers bind 127.0.0.1 on a free port, serve from daemon threads, record each request as
(method, path) in .requests, and are context managers (or call .close(); in a pytest fixture,
`with HubServer(repos) as hub: yield hub`):

    with HubServer({"org/tiny": tiny_speech_repo("wav2vec2")}) as hub:
        use_hub(monkeypatch, hub.url, tmp_path / "hf")
        ...
        assert hub.downloads() == ["config.json", "model.safetensors"]
"""

import functools
import hashlib
import json
import re
import socket
import sys
import tempfile
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

HOST = "127.0.0.1"
LFS_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")  # what the Hub stores in LFS: its ETag is the sha256
LFS_POINTER_SIZE = 134  # bytes of a git-lfs pointer file, as the Hub reports it


class _Handler(BaseHTTPRequestHandler):
    """Hands each request to the owning server's respond(); no access log on stderr."""

    server: "_LoopbackHTTPServer"

    def do_GET(self):
        self._respond()

    def do_HEAD(self):
        self._respond()

    def _respond(self):
        path = unquote(urlsplit(self.path).path)
        self.server.owner.requests.append((self.command, path))
        reply = self.server.owner.respond(self.command, path)
        if reply is None:  # hang up without an answer
            return
        status, headers, body = reply
        self.send_response(status)
        for name, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(body)

    def log_message(self, format, *args):
        pass


class _LoopbackHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner):
        super().__init__((HOST, 0), _Handler)
        self.owner = owner

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that hung up is no news
            super().handle_error(request, client_address)


class _RecordingServer:
    """An HTTP server on 127.0.0.1 in a daemon thread; subclasses answer respond()."""

    SHUTDOWN_POLL = (
        0.02  # s: how often serve_forever looks for close() (its default, 0.5 s, slows every test)
    )

    def __init__(self):
        self.requests: list[tuple[str, str]] = []
        self._released = threading.Event()  # set on close: ends any handler that is holding back
        self._http = _LoopbackHTTPServer(self)
        self.port = self._http.server_address[1]
        self.url = f"http://{HOST}:{self.port}"
        self._thread = threading.Thread(
            target=self._http.serve_forever, args=(self.SHUTDOWN_POLL,), name=type(self).__name__, daemon=True
        )
        self._thread.start()

    def respond(self, method: str, path: str) -> tuple[int, dict[str, str], bytes] | None:
        """(status, headers, body) to send, or None to hang up without an answer."""
        raise NotImplementedError

    def close(self) -> None:
        self._released.set()
        self._http.shutdown()
        self._http.server_close()
        self._thread.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class FileServer(_RecordingServer):
    """Serves `files` ({name: bytes}) at /<name>, e.g. a checkpoint as torchvision names them
    ("resnet18-<first 8 hex of its sha256>.pth"); anything else is 404."""

    def __init__(self, files: dict[str, bytes]):
        self.files = dict(files)
        super().__init__()

    def url_of(self, name: str) -> str:
        return f"{self.url}/{name}"

    def respond(self, method, path):
        body = self.files.get(path.lstrip("/"))
        if body is None:
            return HTTPStatus.NOT_FOUND, {}, b"not found"
        return HTTPStatus.OK, {"Content-Type": "application/octet-stream"}, body


class HubServer(_RecordingServer):
    """The Hugging Face Hub API that huggingface_hub's downloads use, for `repos` ({repo_id:
    {file name: bytes}}), each repo at one commit (.commit(repo_id)) that "main" points to:

    GET  /api/models/{repo}[/revision/{rev}]   model info: id, sha, siblings (with sizes and LFS)
    GET  /api/models/{repo}/tree/{rev}         the file listing
    HEAD /{repo}/resolve/{rev}/{file}           X-Repo-Commit, ETag (the sha256 for LFS files), Content-Length
    GET  /{repo}/resolve/{rev}/{file}           the same and the bytes

    Unknown repo, revision or file: 404 with the X-Error-Code the Hub sends (RepoNotFound,
    RevisionNotFound, EntryNotFound), which huggingface_hub turns into its typed errors.
    stall_downloads=True leaves every GET of a file unanswered until close() (HEADs are answered).
    """

    API = re.compile(r"/api/models/(?P<repo>.+?)(?:/revision/(?P<rev>[^/]+)|/tree/(?P<tree>[^/]+)(?:/.*)?)?")
    RESOLVE = re.compile(r"/(?P<repo>.+?)/resolve/(?P<rev>[^/]+)/(?P<file>.+)")

    def __init__(self, repos: dict[str, dict[str, bytes]], stall_downloads: bool = False):
        self.repos = {repo_id: dict(files) for repo_id, files in repos.items()}
        self.stall_downloads = stall_downloads
        super().__init__()

    def commit(self, repo_id: str) -> str:
        """The repo's one commit: 40 hex digits derived from its content."""
        files = self.repos[repo_id]
        content = "".join(f"{name} {_git_oid(files[name])}\n" for name in sorted(files))
        return hashlib.sha1(f"{repo_id}\n{content}".encode()).hexdigest()

    def downloads(self) -> list[str]:
        """Names of the files whose bytes were requested (GET .../resolve/...), in order."""
        gets = [self.RESOLVE.fullmatch(path) for method, path in self.requests if method == "GET"]
        return [match["file"] for match in gets if match]

    def respond(self, method, path):
        if match := self.API.fullmatch(path):
            return self._api(
                match["repo"], match["tree"] or match["rev"] or "main", tree=match["tree"] is not None
            )
        if match := self.RESOLVE.fullmatch(path):
            if self.stall_downloads and method == "GET":
                self._released.wait()
                return None
            return self._resolve(match["repo"], match["rev"], match["file"])
        return _error(HTTPStatus.NOT_FOUND, "not found")

    def _check(self, repo_id: str, revision: str) -> tuple[int, dict, bytes] | None:
        """The 404 for an unknown repo or revision, else None."""
        if repo_id not in self.repos:
            return _error(HTTPStatus.NOT_FOUND, "Repository not found", code="RepoNotFound")
        if revision not in ("main", self.commit(repo_id)):
            return _error(HTTPStatus.NOT_FOUND, f"Invalid rev id: {revision}", code="RevisionNotFound")
        return None

    def _api(self, repo_id, revision, tree):
        if error := self._check(repo_id, revision):
            return error
        files = self.repos[repo_id]
        if tree:
            entries = [
                {
                    "type": "file",
                    "oid": _git_oid(data),
                    "size": len(data),
                    "path": name,
                    **_lfs(name, data, "oid"),
                }
                for name, data in sorted(files.items())
            ]
            return _json(entries)
        siblings = [
            {"rfilename": name, "size": len(data), "blobId": _git_oid(data), **_lfs(name, data, "sha256")}
            for name, data in sorted(files.items())
        ]
        return _json(
            {
                "_id": hashlib.md5(repo_id.encode()).hexdigest()[:24],
                "id": repo_id,
                "modelId": repo_id,
                "sha": self.commit(repo_id),
                "private": False,
                "gated": False,
                "disabled": False,
                "tags": [],
                "siblings": siblings,
                "lastModified": "2024-01-01T00:00:00.000Z",
                "createdAt": "2024-01-01T00:00:00.000Z",
            }
        )

    def _resolve(self, repo_id, revision, name):
        if error := self._check(repo_id, revision):
            return error
        commit = {"X-Repo-Commit": self.commit(repo_id)}
        data = self.repos[repo_id].get(name)
        if data is None:
            status, headers, body = _error(HTTPStatus.NOT_FOUND, "Entry not found", code="EntryNotFound")
            return status, {**headers, **commit}, body
        etag = hashlib.sha256(data).hexdigest() if name.endswith(LFS_SUFFIXES) else _git_oid(data)
        return (
            HTTPStatus.OK,
            {**commit, "ETag": f'"{etag}"', "Content-Type": "application/octet-stream"},
            data,
        )


class BlackHoleServer:
    """Accepts TCP connections on 127.0.0.1 and never answers, like a host behind a dead proxy.
    .connections counts the connections accepted."""

    ACCEPT_POLL = 0.1  # s: how often the accept loop looks for close()

    def __init__(self):
        self._socket = socket.create_server((HOST, 0))
        self._socket.settimeout(self.ACCEPT_POLL)
        self.port = self._socket.getsockname()[1]
        self.url = f"http://{HOST}:{self.port}"
        self._held: list[socket.socket] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="BlackHoleServer", daemon=True)
        self._thread.start()

    @property
    def connections(self) -> int:
        return len(self._held)

    def _accept(self):
        while not self._closed.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            self._held.append(connection)

    def close(self) -> None:
        self._closed.set()
        self._thread.join()
        for connection in self._held:  # a client still waiting gets end-of-file
            connection.close()
        self._socket.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def closed_port_url() -> str:
    """http://127.0.0.1:<port> where nothing listens (the port was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]
    return f"http://{HOST}:{port}"


def use_hub(monkeypatch, endpoint: str, home: Path, offline: bool = False) -> None:
    """Point huggingface_hub at `endpoint` with its cache under `home`, in this process and in
    subprocesses. huggingface_hub reads HF_ENDPOINT, HF_HOME, HF_HUB_CACHE and HF_HUB_OFFLINE
    once, at import, into huggingface_hub.constants: the environment alone would reach only
    subprocesses, so the constants are patched too (monkeypatch undoes both)."""
    from huggingface_hub import constants

    settings = {
        "HF_ENDPOINT": endpoint.rstrip("/"),
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HF_HUB_OFFLINE": "1" if offline else "0",
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(constants, "ENDPOINT", settings["HF_ENDPOINT"])
    # hf_hub_url builds file URLs from this template, made from ENDPOINT at import
    template = settings["HF_ENDPOINT"] + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    monkeypatch.setattr(constants, "HF_HOME", settings["HF_HOME"])
    monkeypatch.setattr(constants, "HF_HUB_CACHE", settings["HF_HUB_CACHE"])
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
    monkeypatch.setattr(constants, "AGENT_HARNESSES_PATH", str(home / ".agent_harnesses.json"))


def tiny_speech_repo(model_type: str, weights: str = "safetensors") -> dict[str, bytes]:
    """The files of a tiny transformers model repo ("wav2vec2", "hubert" or "wavlm"; random
    weights, the same on every call), written by save_pretrained:

    weights="safetensors"  config.json + model.safetensors
    weights="bin"          config.json + pytorch_model.bin (a repo from before safetensors)
    weights="both"         all three, as many hub repos hold them
    weights="sharded"      config.json + model.safetensors.index.json + two shards
    """
    if weights not in ("safetensors", "bin", "both", "sharded"):
        raise ValueError(f"weights must be safetensors, bin, both or sharded; got {weights!r}")
    return dict(_tiny_speech_repo(model_type, weights))


@functools.cache
def _tiny_speech_repo(model_type: str, weights: str) -> tuple[tuple[str, bytes], ...]:
    import torch
    from transformers import AutoConfig, AutoModel

    from msa.models.speech_encoders import BUILTIN_ARCHS

    torch.manual_seed(0)
    # msa's tiny wav2vec2 architecture, as this model_type: the smallest encoder with every part of a real one.
    tiny = {key: value for key, value in BUILTIN_ARCHS["tiny"].items() if key != "model_type"}
    model = AutoModel.from_config(AutoConfig.for_model(model_type, **tiny))
    with tempfile.TemporaryDirectory() as folder:
        if weights != "bin":
            # ~160 kB of weights: a 100 kB shard limit makes two shards
            model.save_pretrained(folder, max_shard_size="100KB" if weights == "sharded" else "50GB")
        else:
            model.config.save_pretrained(folder)
        if weights in ("bin", "both"):
            torch.save(model.state_dict(), Path(folder) / "pytorch_model.bin")
        return tuple((path.name, path.read_bytes()) for path in sorted(Path(folder).iterdir()))


def _git_oid(data: bytes) -> str:
    """The git blob id of `data`, as the Hub reports a file stored in git (not LFS)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _lfs(name: str, data: bytes, hash_key: str) -> dict:
    """The "lfs" entry of an LFS file (hash_key: "sha256" in model info, "oid" in a tree listing)."""
    if not name.endswith(LFS_SUFFIXES):
        return {}
    return {
        "lfs": {
            hash_key: hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "pointerSize": LFS_POINTER_SIZE,
        }
    }


def _json(value) -> tuple[int, dict, bytes]:
    return HTTPStatus.OK, {"Content-Type": "application/json"}, json.dumps(value).encode()


def _error(status: int, message: str, code: str | None = None) -> tuple[int, dict, bytes]:
    headers = {"Content-Type": "application/json", "X-Error-Message": message}
    if code is not None:
        headers["X-Error-Code"] = code
    return status, headers, json.dumps({"error": message}).encode()

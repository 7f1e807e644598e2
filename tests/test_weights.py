"""msa.weights against loopback servers: where fetched weights land, what is downloaded, how
failures read, and how long an unreachable source takes to fail."""

import hashlib
import io
import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest
import torch
import torchvision
from conftest import REPO
from tqdm import tqdm
from weight_servers import BlackHoleServer, FileServer, HubServer, closed_port_url, tiny_speech_repo, use_hub

import msa.weights.download
from msa.weights import FETCH_TIMEOUT, WeightsUnavailable, cached_weights, fetch_weights, find_weights

IMAGENET_FILE = "resnet18-f37072fd.pth"  # where torchvision caches ResNet18_Weights.IMAGENET1K_V1
SLOW_BOUND = 90  # s: an unreachable source must fail well within this (it takes about FETCH_TIMEOUT)
SPEECH_MODELS = {"wav2vec2": "Wav2Vec2Model", "hubert": "HubertModel", "wavlm": "WavLMModel"}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def resnet_bytes() -> bytes:
    """A random ResNet-18 state dict as torch.save writes it (~47 MB)."""
    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.save(torchvision.models.resnet18().state_dict(), buffer)
    return buffer.getvalue()


@pytest.fixture
def checkpoints(tmp_path, monkeypatch):
    """torchvision's checkpoint cache under a fresh $TORCH_HOME."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.fixture
def hf_home(tmp_path):
    return tmp_path / "hf"


def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("went to the network")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


# --- video ---


def test_video_url_lands_in_torchvision_cache(checkpoints, resnet_bytes):
    name = f"resnet18-{sha256(resnet_bytes)[:8]}.pth"
    with FileServer({name: resnet_bytes}) as server:
        files = fetch_weights("video", server.url_of(name), progress=False)
        # Cached: not fetched again.
        assert fetch_weights("video", server.url_of(name), progress=False) == files
        assert server.requests == [("GET", f"/{name}")]
    assert (files.branch, files.folder, files.files) == ("video", checkpoints, (name,))
    assert (files.sha256, files.size) == (sha256(resnet_bytes), len(resnet_bytes))
    assert find_weights("video", server.url_of(name)) == files
    assert os.listdir(checkpoints) == [name]
    torchvision.models.resnet18().load_state_dict(torch.load(files.paths[0], weights_only=True))


def test_video_bad_hash_prefix_leaves_nothing(checkpoints, resnet_bytes):
    with FileServer({"resnet18-00000000.pth": resnet_bytes}) as server:
        with pytest.raises(WeightsUnavailable, match="does not start with 00000000") as error:
            fetch_weights("video", server.url_of("resnet18-00000000.pth"), progress=False)
    assert "\n" not in str(error.value)
    assert list(checkpoints.iterdir()) == []  # no file, no partial file


def test_video_interrupted_download_leaves_nothing(checkpoints, resnet_bytes, monkeypatch):
    class CtrlC(tqdm):
        def update(self, n=1):
            raise KeyboardInterrupt

    monkeypatch.setattr(msa.weights.download, "tqdm", CtrlC)
    with FileServer({"resnet18-abcdef12.pth": resnet_bytes}) as server, pytest.raises(KeyboardInterrupt):
        fetch_weights("video", server.url_of("resnet18-abcdef12.pth"), progress=False)
    assert list(checkpoints.iterdir()) == []


def test_video_http_error(checkpoints):
    with FileServer({}) as server, pytest.raises(WeightsUnavailable, match="HTTP 404 Not Found"):
        fetch_weights("video", server.url_of("resnet18-abcdef12.pth"), progress=False)
    assert list(checkpoints.iterdir()) == []


def test_video_local_file(tmp_path, checkpoints, monkeypatch):
    no_network(monkeypatch)
    path = tmp_path / "mine.pt"
    torch.save({"conv1.weight": torch.ones(2)}, path)
    files = fetch_weights("video", str(path))
    assert (files.folder, files.files, files.sha256) == (tmp_path, ("mine.pt",), sha256(path.read_bytes()))
    assert find_weights("video", str(path)) == files
    with pytest.raises(WeightsUnavailable, match="no such file"):
        fetch_weights("video", str(tmp_path / "missing.pth"))


def test_video_name_from_the_cache(checkpoints, resnet_bytes, monkeypatch):
    """A name is read from the file torchvision's own download writes, not hash-checked there
    (as torchvision does), and torchvision loads that same file."""
    no_network(monkeypatch)
    checkpoints.mkdir(parents=True)
    (checkpoints / IMAGENET_FILE).write_bytes(resnet_bytes)
    files = find_weights("video", "IMAGENET1K_V1")
    assert files.paths == (checkpoints / IMAGENET_FILE,) and files.sha256 == sha256(resnet_bytes)
    assert fetch_weights("video", "DEFAULT").paths == files.paths
    model = torchvision.models.resnet18(weights="IMAGENET1K_V1")
    assert torch.equal(model.conv1.weight, torch.load(files.paths[0], weights_only=True)["conv1.weight"])


def test_video_unknown_or_missing(checkpoints):
    with pytest.raises(
        WeightsUnavailable, match="not a torchvision ResNet18_Weights name .IMAGENET1K_V1, DEFAULT."
    ):
        find_weights("video", "IMAGENET1K_V9")
    with pytest.raises(WeightsUnavailable, match="not downloaded .*msa weights fetch --video IMAGENET1K_V1"):
        find_weights("video", "IMAGENET1K_V1")
    with pytest.raises(ValueError, match="branch must be one of video, audio"):
        find_weights("text", "IMAGENET1K_V1")


def test_video_unreachable_fails_fast(checkpoints):
    start = time.monotonic()
    with pytest.raises(WeightsUnavailable, match="Connection refused"):
        fetch_weights("video", f"{closed_port_url()}/resnet18-abcdef12.pth", progress=False)
    print(f"closed port: failed after {time.monotonic() - start:.2f} s")
    assert time.monotonic() - start < 10


def test_video_black_hole_times_out(checkpoints):
    start = time.monotonic()
    with BlackHoleServer() as server, pytest.raises(WeightsUnavailable, match="no answer within 2 s"):
        fetch_weights("video", f"{server.url}/resnet18-abcdef12.pth", progress=False, timeout=2)
    print(f"black hole (timeout 2 s): failed after {time.monotonic() - start:.2f} s")
    assert time.monotonic() - start < 10
    assert list(checkpoints.iterdir()) == []


# --- audio ---


@pytest.mark.parametrize("model_type", list(SPEECH_MODELS))
def test_audio_fetches_config_and_safetensors_only(model_type, hf_home, monkeypatch):
    from transformers import AutoModel

    repo = tiny_speech_repo(model_type, weights="both")
    with HubServer({"org/tiny": repo}) as hub:
        use_hub(monkeypatch, hub.url, hf_home)
        files = fetch_weights("audio", "org/tiny", progress=False)
        assert hub.downloads() == ["config.json", "model.safetensors"]  # not pytorch_model.bin
    assert files.files == ("config.json", "model.safetensors")
    assert files.folder.parent.parent == hf_home / "hub" / "models--org--tiny"  # the standard cache
    assert files.sha256 == sha256(repo["model.safetensors"])
    assert files.size == len(repo["config.json"]) + len(repo["model.safetensors"])
    assert type(AutoModel.from_pretrained(files.folder)).__name__ == SPEECH_MODELS[model_type]

    # Later, offline and with the server gone: found in the cache, and fetch only finds.
    use_hub(monkeypatch, hub.url, hf_home, offline=True)
    assert find_weights("audio", "org/tiny") == files
    assert fetch_weights("audio", "org/tiny") == files
    assert find_weights("audio", f"org/tiny@{hub.commit('org/tiny')}").folder == files.folder


def test_audio_bin_only_repo(hf_home, monkeypatch):
    from transformers import AutoModel

    repo = tiny_speech_repo("wav2vec2", weights="bin")
    with HubServer({"org/old": repo}) as hub:
        use_hub(monkeypatch, hub.url, hf_home)
        files = fetch_weights("audio", "org/old", progress=False)
        assert hub.downloads() == ["config.json", "pytorch_model.bin"]
    assert files.files == ("config.json", "pytorch_model.bin")
    assert files.sha256 == sha256(repo["pytorch_model.bin"])
    AutoModel.from_pretrained(files.folder)


def test_audio_sharded_repo(hf_home, monkeypatch):
    from transformers import AutoModel

    repo = tiny_speech_repo("hubert", weights="sharded")
    shards = sorted(name for name in repo if name.startswith("model-"))
    with HubServer({"org/big": repo}) as hub:
        use_hub(monkeypatch, hub.url, hf_home)
        files = fetch_weights("audio", "org/big", progress=False)
        assert hub.downloads() == ["config.json", "model.safetensors.index.json", *shards]
    assert files.files == ("config.json", "model.safetensors.index.json", *shards)
    assert files.sha256 == sha256("".join(f"{name} {sha256(repo[name])}\n" for name in shards).encode())
    AutoModel.from_pretrained(files.folder)


def test_audio_local_folder(tmp_path, hf_home, monkeypatch):
    with BlackHoleServer() as server:  # anything that went to the network would hang
        use_hub(monkeypatch, server.url, hf_home)
        folder = tmp_path / "w2v"
        folder.mkdir()
        for name, data in tiny_speech_repo("wavlm").items():
            (folder / name).write_bytes(data)
        files = fetch_weights("audio", str(folder))
        assert (files.folder, files.files) == (folder, ("config.json", "model.safetensors"))
        (folder / "config.json").unlink()
        with pytest.raises(WeightsUnavailable, match="has no config.json"):
            find_weights("audio", str(folder))
        with pytest.raises(WeightsUnavailable, match="no such folder"):
            fetch_weights("audio", str(tmp_path / "missing"))
        with pytest.raises(
            WeightsUnavailable, match="not in the Hugging Face cache .* fetch --audio org/tiny"
        ):
            find_weights("audio", "org/tiny")
        assert server.connections == 0


@pytest.mark.parametrize(
    "source, repos, message",
    [
        ("org/nope", {}, "audio weights org/nope: no such model repo on http://127.0.0.1:"),
        (
            "org/tiny@v9",
            {"org/tiny": tiny_speech_repo("wav2vec2")},
            "audio weights org/tiny@v9: no such revision",
        ),
        (
            "org/cfg",
            {"org/cfg": {"config.json": b"{}"}},
            "audio weights org/cfg: the repo has none of model.safetensors",
        ),
        ("org/a/b", {}, "neither a folder nor a hub id"),
    ],
)
def test_audio_missing_repo_revision_or_weights(source, repos, message, hf_home, monkeypatch):
    with HubServer(repos) as hub:
        use_hub(monkeypatch, hub.url, hf_home)
        with pytest.raises(WeightsUnavailable) as error:
            fetch_weights("audio", source, progress=False)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert hub.downloads() == []


def test_audio_offline_does_not_download(hf_home, monkeypatch):
    with HubServer({"org/tiny": tiny_speech_repo("wav2vec2")}) as hub:
        use_hub(monkeypatch, hub.url, hf_home, offline=True)
        with pytest.raises(WeightsUnavailable, match="HF_HUB_OFFLINE is set"):
            fetch_weights("audio", "org/tiny", progress=False)
    assert hub.requests == []


def test_audio_closed_port_fails_fast(hf_home, monkeypatch):
    url = closed_port_url()
    use_hub(monkeypatch, url, hf_home)
    start = time.monotonic()
    with pytest.raises(WeightsUnavailable, match=f"cannot reach {url}: .*Connection refused"):
        fetch_weights("audio", "org/tiny", progress=False)
    print(f"closed port: failed after {time.monotonic() - start:.2f} s")
    assert time.monotonic() - start < 10


@pytest.mark.slow  # 30 s by design; the same stall rule is tested in seconds below
def test_audio_black_hole_fails_within_fetch_timeout(hf_home, monkeypatch):
    """The default bound, measured: about FETCH_TIMEOUT (30 s)."""
    with BlackHoleServer() as server:
        use_hub(monkeypatch, server.url, hf_home)
        start = time.monotonic()
        with pytest.raises(
            WeightsUnavailable, match=f"no answer from {server.url} within {FETCH_TIMEOUT:g} s"
        ):
            fetch_weights("audio", "org/tiny", progress=False)
        elapsed = time.monotonic() - start
    print(f"black hole (default timeout {FETCH_TIMEOUT:g} s): failed after {elapsed:.1f} s")
    assert elapsed < SLOW_BOUND


def test_audio_unanswered_download_fails_within_timeout(hf_home, monkeypatch):
    """The listing and HEADs are answered, the GET never is: huggingface_hub alone would retry for about a minute."""
    with HubServer({"org/tiny": tiny_speech_repo("wav2vec2")}, stall_downloads=True) as hub:
        use_hub(monkeypatch, hub.url, hf_home)
        start = time.monotonic()
        with pytest.raises(WeightsUnavailable, match="no answer from .* within 2 s"):
            fetch_weights("audio", "org/tiny", progress=False, timeout=2)
        elapsed = time.monotonic() - start
    print(f"unanswered GET (timeout 2 s): failed after {elapsed:.1f} s")
    assert elapsed < 10


def test_cached_weights_lists_both_branches(checkpoints, resnet_bytes, hf_home, monkeypatch):
    checkpoints.mkdir(parents=True)
    (checkpoints / IMAGENET_FILE).write_bytes(resnet_bytes)
    (checkpoints / "notes.txt").write_text("not a checkpoint")
    not_speech = {"config.json": b'{"model_type": "bert"}', "model.safetensors": b"{}"}
    with HubServer({"org/tiny": tiny_speech_repo("wav2vec2"), "org/text": not_speech}) as hub:
        use_hub(monkeypatch, hub.url, hf_home)
        audio = fetch_weights("audio", "org/tiny", progress=False)
        fetch_weights("audio", "org/text", progress=False)  # cached, but no speech encoder: not listed
    assert cached_weights() == [
        {
            "branch": "video",
            "source": "IMAGENET1K_V1",
            "path": str(checkpoints / IMAGENET_FILE),
            "size": len(resnet_bytes),
            "sha256": sha256(resnet_bytes),
        },
        {
            "branch": "audio",
            "source": "org/tiny",
            "path": str(audio.folder),
            "size": audio.size,
            "sha256": audio.sha256,
        },
    ]


# --- the command line ---


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "msa.weights", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def cli_env(tmp_path) -> dict[str, str]:
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch"), "HF_HOME": str(tmp_path / "hf")}
    env["HF_HUB_CACHE"] = str(tmp_path / "hf" / "hub")
    env.pop("HF_HUB_OFFLINE", None)
    return env


def test_cli_fetch_then_list(cli_env, resnet_bytes):
    video_name = f"resnet18-{sha256(resnet_bytes)[:8]}.pth"
    repo = tiny_speech_repo("wav2vec2")
    with FileServer({video_name: resnet_bytes}) as files, HubServer({"org/tiny": repo}) as hub:
        video_url = files.url_of(video_name)
        cli_env["HF_ENDPOINT"] = hub.url
        fetched = run_cli("fetch", "--video", video_url, "--audio", "org/tiny", "--no-progress", env=cli_env)
    assert fetched.returncode == 0, fetched.stderr
    video_line, audio_line = fetched.stdout.splitlines()
    assert video_line.split()[:3] == [
        "video",
        video_url,
        str(cli_env["TORCH_HOME"] + "/hub/checkpoints/" + video_name),
    ]
    assert video_line.split()[-1] == sha256(resnet_bytes)
    assert audio_line.split()[:2] == ["audio", "org/tiny"] and audio_line.split()[-1] == sha256(
        repo["model.safetensors"]
    )

    listed = run_cli("list", env=cli_env)
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["branch", "source", "path", "size", "sha256"]
    assert {row.split()[-1] for row in rows} == {sha256(resnet_bytes), sha256(repo["model.safetensors"])}

    as_json = json.loads(run_cli("list", "--json", env=cli_env).stdout)
    assert [(row["branch"], row["sha256"]) for row in as_json] == [
        ("video", sha256(resnet_bytes)),
        ("audio", sha256(repo["model.safetensors"])),
    ]


@pytest.mark.parametrize("branch", ["video", "audio"])
def test_cli_unreachable_source_exits_2_with_one_line(branch, cli_env):
    url = closed_port_url()
    cli_env["HF_ENDPOINT"] = url
    source = f"{url}/resnet18-abcdef12.pth" if branch == "video" else "org/tiny"
    result = run_cli("fetch", f"--{branch}", source, env=cli_env)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"error: {branch} weights ") and "Connection refused" in result.stderr

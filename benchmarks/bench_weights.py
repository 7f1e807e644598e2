"""What getting real-size weights to a trial costs: download (from loopback servers speaking the
torchvision-file and Hugging Face protocols), the driver's packing, a node writing the shipped
bytes into its cache, and loading them into the model.

    python benchmarks/bench_weights.py [--json OUT]

The weights are random but real-size: a ResNet-18 state dict (45 MB) and a wav2vec2-base
(`save_pretrained`, 380 MB). Nothing leaves the machine; the numbers bound msa's own overhead
(hashing, copying, renaming), not a real network.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # the loopback servers the tests use

import torch  # noqa: E402
import torchvision  # noqa: E402
from transformers import Wav2Vec2Config, Wav2Vec2Model  # noqa: E402
from weight_servers import FileServer, HubServer, use_hub  # noqa: E402

from msa.models import create_model, model_config  # noqa: E402
from msa.weights import WeightsBundle, fetch_weights  # noqa: E402

MB = 2**20


class Env:
    """monkeypatch's setenv/setattr for a script: what use_hub needs."""

    def setenv(self, name, value):
        os.environ[name] = value

    def setattr(self, target, name, value):
        setattr(target, name, value)


def timed(function):
    started = time.perf_counter()
    result = function()
    return result, time.perf_counter() - started


def files_of_model(model) -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        return {name: (Path(folder) / name).read_bytes() for name in ("config.json", "model.safetensors")}


def measure(branch: str, source: str, work: Path) -> dict:
    files, fetch_s = timed(lambda: fetch_weights(branch, source, progress=False))
    bundle, pack_s = timed(lambda: WeightsBundle.pack(files))
    # A copy made by pickling, as Ray's object store makes one per node.
    shipped, ship_s = timed(lambda: pickle.loads(pickle.dumps(bundle, protocol=5)))
    placed, materialize_s = timed(lambda: shipped.materialize(work / "node-cache"))
    _, again_s = timed(lambda: shipped.materialize(work / "node-cache"))
    name = "video_iter3" if branch == "video" else "audio_last2"
    config = model_config(
        name, num_classes=8, **({"video_weights": source} if branch == "video" else {"audio_weights": source})
    )
    (model, loaded), load_s = timed(lambda: create_model(config, 8, weights={branch: placed}))
    assert loaded[branch]["sha256"] == files.sha256
    return {
        f"{branch}_mb": files.size / MB,
        f"{branch}_fetch_s": fetch_s,
        f"{branch}_fetch_mb_per_s": files.size / MB / fetch_s,
        f"{branch}_pack_s": pack_s,
        f"{branch}_pickle_copy_s": ship_s,
        f"{branch}_materialize_s": materialize_s,
        f"{branch}_materialize_again_s": again_s,
        f"{branch}_build_and_load_s": load_s,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results = {"machine": {"cores": os.cpu_count()}}
    with tempfile.TemporaryDirectory(prefix="msa-bench-weights-") as tmp:
        work = Path(tmp)
        os.environ["TORCH_HOME"] = str(work / "torch")
        torch.manual_seed(0)
        resnet = torchvision.models.resnet18()
        with tempfile.TemporaryDirectory() as folder:
            torch.save(resnet.state_dict(), Path(folder) / "r.pth")
            data = (Path(folder) / "r.pth").read_bytes()
        name = f"resnet18-{hashlib.sha256(data).hexdigest()[:8]}.pth"
        repo = files_of_model(Wav2Vec2Model(Wav2Vec2Config()))
        with FileServer({name: data}) as video_server, HubServer({"bench/wav2vec2-base": repo}) as hub:
            use_hub(Env(), hub.url, work / "hf")
            results.update(measure("video", video_server.url_of(name), work))
            results.update(measure("audio", "bench/wav2vec2-base", work))
    width = max(map(len, results))
    for key, value in results.items():
        if key != "machine":
            print(f"{key:<{width}}  {value:10.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""cluster/: the launcher configs pass Ray's own schema, every node installs this repository,
and the KubeRay RayJob runs a tune_main.py command line that parses."""

import copy
import shlex
import subprocess

import pytest
import yaml
from conftest import REPO
from jsonschema import ValidationError
from ray.autoscaler._private.util import prepare_config, validate_config

from msa.tune.command_line import build_parser
from msa.tune.options import SearchOptions
from search_spaces import SPACES

LAUNCHER_CONFIGS = ("gcp.yaml", "aws.yaml")


def load(name: str) -> dict:
    return yaml.safe_load((REPO / "cluster" / name).read_text())


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_launcher_config_passes_rays_schema(name):
    validate_config(prepare_config(copy.deepcopy(load(name))))
    broken = load(name)
    del broken["available_node_types"]["head"]["resources"]
    with pytest.raises(ValidationError):
        validate_config(prepare_config(broken))


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_every_node_installs_this_repository(name):
    config = load(name)
    assert config["file_mounts"]["~/msa"] == ".", "the checkout `ray up` runs from becomes ~/msa"
    assert config["setup_commands"] == ["bash ~/msa/cluster/setup.sh"]
    setup = (REPO / "cluster" / "setup.sh").read_text()
    assert 'pip install -e "$HOME/msa"' in setup and "--python 3.11" in setup
    assert 'export RAY_AUTH_MODE=token\' >> "$HOME/.bashrc"' in setup, "the driver's shell uses the token too"
    assert "-m msa.weights fetch" in setup, "nodes may prefetch the default weights"
    assert subprocess.run(["bash", "-n", str(REPO / "cluster" / "setup.sh")]).returncode == 0


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_gpu_workers_token_auth_and_a_private_dashboard(name):
    config = load(name)
    types = config["available_node_types"]
    assert types[config["head_node_type"]]["resources"] == {"CPU": 0}
    workers = {key: node for key, node in types.items() if key != config["head_node_type"]}
    assert {"t4", "l4", "v100", "a100"} <= set(workers)
    assert all(node["resources"]["GPU"] >= 1 and node["min_workers"] == 0 for node in workers.values())
    starts = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    assert all("RAY_AUTH_MODE=token" in command for command in starts if " start " in command)
    assert "--dashboard-host=127.0.0.1" in config["head_start_ray_commands"][-1]
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"


def test_kuberay_rayjob_runs_a_valid_tune_main_command():
    job = load("kuberay-rayjob.yaml")
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    spec = job["spec"]
    assert spec["rayClusterSpec"]["authOptions"] == {"mode": "token"}
    command = shlex.split(spec["entrypoint"])
    assert command[:2] == ["python", "/app/msa/tune_main.py"]
    options = SearchOptions.from_namespace(build_parser().parse_args(command[2:]), SPACES)
    assert options.resources.address == "auto" and options.resources.gpus_per_trial == 0.5
    assert options.output.storage.startswith("gs://") and options.data.data == "/data/ravdess"
    workers = spec["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    assert workers["resources"]["limits"]["nvidia.com/gpu"] == "1"
    dockerfile = (REPO / "cluster" / "Dockerfile").read_text()
    assert (
        "COPY --chown=ray:users . /app/msa" in dockerfile
        and "pip install --no-cache-dir -e /app/msa" in dockerfile
    )
    assert "python -m msa.weights fetch" in dockerfile, "the image bakes the default weights in"

import os
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

# Under xdist (make test-quick: two workers on two cores) each worker, and each process it
# starts, computes on one thread: torch's default of a thread per core would put four busy
# threads on two cores, whose OpenMP barriers then wait on each other. Set before anything
# imports torch (filelock, below, comes with torch).
if os.environ.get("PYTEST_XDIST_WORKER"):
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))  # the tests' media helpers
sys.path.insert(0, str(REPO))  # tune_main.py and search_spaces/
REAL_CLIPS = REPO.parent / "shared" / "ravdess-real"
REAL_SPEECH = REPO.parent / "shared" / "ravdess-speech"


def tiny_trained_model(name: str, num_classes: int):
    """Registered model ``name`` made tiny (msa.models.tiny_overrides), seeded, with the
    BatchNorm running statistics a trained model has rather than 0 and 1."""
    import torch

    from msa.models import create_model, tiny_overrides

    torch.manual_seed(0)
    model, _ = create_model(name, num_classes, "off", **tiny_overrides(name))
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run quicker on one thread than on two that share the CPUs with other work
    (export tests: 45 s instead of 80 on a busy 2-core machine). Use it per module:
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "cache"


# A tiny embedded-sample variant shared by the tune tests: 4 actors (2 male, 2 female) x the
# seed's four emotions x 1 statement, 1 s clips. With --classes seed4 it splits 2 / 1 / 1.
TINY_SAMPLE_EMOTIONS = (3, 4, 5, 7)  # happy, sad, angry, disgust


@contextmanager
def run_wide_folder(tmp_path_factory, name: str):
    """A folder for a session fixture that every xdist worker of this run shares, held under a
    lock: the first worker builds in it, the others wait and then find it built, so the build
    must be idempotent (generate_sample and prepare are: a second call finds everything done).
    Without xdist, a folder of this process. The fixture's users must not change what it holds,
    as for any session fixture."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        yield tmp_path_factory.mktemp(name)
        return
    from filelock import FileLock

    folder = tmp_path_factory.getbasetemp().parent / name  # the run's folder, above each worker's
    with FileLock(f"{folder}.lock"):
        folder.mkdir(exist_ok=True)
        yield folder


@pytest.fixture(scope="session")
def tiny_sample(tmp_path_factory) -> Path:
    from msa.data.sample import SampleSpec, generate_sample

    spec = SampleSpec(actors=4, emotions=TINY_SAMPLE_EMOTIONS, statements=1, duration=1.0)
    with run_wide_folder(tmp_path_factory, "tiny-sample") as folder:
        return generate_sample(folder / "data", spec, workers=2, progress=False)


def smoke_search_flags(data: Path, work: Path, name: str) -> list[str]:
    """tune_main.py's flags for a smoke search of video_transformer on ``data`` (the tiny
    sample) from random weights, with its cache and results under ``work``."""
    return [
        "--space",
        "video_transformer",
        "--smoke-test",
        "--pretrained",
        "off",
        "--data",
        str(data),
        "--classes",
        "seed4",
        "--cache",
        str(work / "cache"),
        "--storage",
        str(work / "results"),
        "--name",
        name,
    ]


@pytest.fixture(scope="session")
def tiny_trial_data(tiny_sample, tmp_path_factory):
    """The tiny sample prepared at 4 frames of 32 px and split by actor, as tune_main does."""
    from msa.data.decode import PrepareParams
    from msa.data.experiment import prepare_experiment_data
    from msa.data.splits import SplitConfig

    with run_wide_folder(tmp_path_factory, "tiny-cache") as cache:
        data, _ = prepare_experiment_data(
            tiny_sample,
            cache,
            "seed4",
            SplitConfig(),
            PrepareParams(num_frames=4, image_size=32),
            progress=False,
        )
    return data


RESNET18_FILE = "resnet18-f37072fd.pth"  # where torchvision's cache keeps IMAGENET1K_V1


@pytest.fixture(scope="session")
def torch_home(tmp_path_factory) -> tuple[Path, str]:
    """A $TORCH_HOME whose cache holds ResNet-18 "IMAGENET1K_V1" weights (random but real-format:
    nothing is downloaded in tests) -> (the folder, the file's sha256)."""
    import hashlib

    import torch
    import torchvision

    home = tmp_path_factory.mktemp("torch-home")
    path = home / "hub" / "checkpoints" / RESNET18_FILE
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return home, hashlib.sha256(path.read_bytes()).hexdigest()

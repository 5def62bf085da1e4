"""Conversion of original `.pyth` checkpoints: every released layout, safety, atomicity and the CLI.

Checkpoints are written here with the original key names, random weights and tiny widths (hidden 16, 2 layers,
2 heads) but the frame count, patch grid, class count and attention type of each release; the converted repos are
compared with an independent re-implementation of the original forward pass (`original_timesformer.py`).
"""

import json
import logging
import os
import pickle
import re
import socket
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest
import torch
import yaml
from conftest import sample_video_path
from original_timesformer import original_forward
from safetensors.torch import load_file, save_file
from transformers import AutoModelForVideoClassification

import timesformer_hf
from timesformer_hf import conversion
from timesformer_hf.commands.convert import main as convert_main
from timesformer_hf.conversion import (
    CheckpointError,
    CheckpointNotFoundError,
    UnsafeCheckpointError,
    convert_checkpoint,
    convert_directory,
    load_original_checkpoint,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "convert" / "convert_original_checkpoint.py"
TINY_HEADS = 2


def original_state_dict(
    *,
    frames: int,
    crop: int,
    classes: int,
    attention: str = "divided_space_time",
    hidden: int = 16,
    depth: int = 2,
    patch: int = 16,
    mlp_ratio: int = 2,
    scale: float = 0.2,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Random weights (normal, std `scale`) under the original key names (no `model.` prefix)."""
    generator = torch.Generator().manual_seed(seed)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator) * scale

    grid = crop // patch
    weights = {
        "cls_token": randn(1, 1, hidden),
        "pos_embed": randn(1, 1 + grid * grid, hidden),
        "patch_embed.proj.weight": randn(hidden, 3, patch, patch),
        "patch_embed.proj.bias": randn(hidden),
        "norm.weight": 1 + randn(hidden),
        "norm.bias": randn(hidden),
        "head.weight": randn(classes, hidden),
        "head.bias": randn(classes),
    }
    if attention != "space_only":
        weights["time_embed"] = randn(1, frames, hidden)
    layers = {"norm1": None, "attn.qkv": 3 * hidden, "attn.proj": hidden, "norm2": None}
    layers |= {"mlp.fc1": (mlp_ratio * hidden, hidden), "mlp.fc2": (hidden, mlp_ratio * hidden)}
    if attention == "divided_space_time":
        layers |= {"temporal_norm1": None, "temporal_attn.qkv": 3 * hidden, "temporal_attn.proj": hidden}
        layers |= {"temporal_fc": hidden}
    for index in range(depth):
        for name, shape in layers.items():
            prefix = f"blocks.{index}.{name}"
            if shape is None:  # LayerNorm
                weights[f"{prefix}.weight"], weights[f"{prefix}.bias"] = 1 + randn(hidden), randn(hidden)
                continue
            out_features, in_features = shape if isinstance(shape, tuple) else (shape, hidden)
            weights[f"{prefix}.weight"], weights[f"{prefix}.bias"] = (
                randn(out_features, in_features),
                randn(out_features),
            )
    return weights


def original_cfg(
    *, frames: int, crop: int, classes: int, attention: str, dataset: str, sampling_rate: int = 8
) -> str:
    """The YAML `cfg` string the original stores (only the sections the conversion reads, plus noise)."""
    cfg = {
        "TRAIN": {"DATASET": dataset, "BATCH_SIZE": 8},
        "DATA": {
            "NUM_FRAMES": frames,
            "SAMPLING_RATE": sampling_rate,
            "TRAIN_CROP_SIZE": crop,
            "TEST_CROP_SIZE": crop,
            "MEAN": [0.45, 0.45, 0.45],
            "STD": [0.225, 0.225, 0.225],
            "TARGET_FPS": 30,
        },
        "TIMESFORMER": {"ATTENTION_TYPE": attention, "PRETRAINED_MODEL": ""},
        "MODEL": {"NUM_CLASSES": classes, "ARCH": "vit", "MODEL_NAME": "vit_base_patch16_224"},
    }
    return yaml.safe_dump(cfg)


def write_checkpoint(
    path: Path,
    weights: dict[str, torch.Tensor],
    *,
    cfg: str | None = None,
    layout: str = "model_state",
    prefix: str = "model.",
    **extra: object,
) -> Path:
    """Save as the original trainer does: `{epoch, model_state, optimizer_state, cfg}` with `model.` keys."""
    state = {f"{prefix}{key}": value for key, value in weights.items()}
    content = {"epoch": 15, "optimizer_state": {"state": {}, "param_groups": [{"lr": 0.005}]}, **extra}
    if cfg is not None:
        content["cfg"] = cfg
    content = state if layout == "top-level" else {**content, layout: state}
    torch.save(content, path)
    return path


@dataclass(frozen=True)
class Variant:
    name: str
    frames: int
    crop: int
    classes: int
    dataset: str  # the cfg's TRAIN.DATASET
    sampling_rate: int
    attention: str = "divided_space_time"
    layout: str = "model_state"  # where the state dict sits in the file
    prefix: str = "model."

    @property
    def depth(self) -> int:
        """2 blocks (to cover block indexing) where cheap, 1 for the long token sequences of HR and L."""
        return 2 if self.frames * (self.crop // 16) ** 2 <= 8 * 14 * 14 else 1


# HowTo100M heads have 1059 task classes (the paper's subset) and its cfg dataset name is assumed to be "howto100m".
VARIANTS = [
    Variant("TimeSformer_divST_8x32_224_K400", 8, 224, 400, "kinetics", 32),
    Variant(
        "TimeSformer_divST_16x16_448_K400",
        16,
        448,
        400,
        "kinetics",
        16,
        layout="state_dict",
        prefix="module.model.",
    ),
    Variant("TimeSformer_divST_96x4_224_K400", 96, 224, 400, "kinetics", 4, layout="model", prefix=""),
    Variant(
        "TimeSformer_divST_8x32_224_K600", 8, 224, 600, "kinetics", 32, layout="module", prefix="module."
    ),
    Variant("TimeSformer_divST_16x16_448_K600", 16, 448, 600, "kinetics", 16, layout="top-level"),
    Variant("TimeSformer_divST_96x4_224_K600", 96, 224, 600, "kinetics", 4),
    Variant("TimeSformer_divST_8_224_SSv2", 8, 224, 174, "ssv2", 8),
    Variant("TimeSformer_divST_16_448_SSv2", 16, 448, 174, "ssv2", 8),
    Variant("TimeSformer_divST_64_224_SSv2", 64, 224, 174, "ssv2", 8),
    Variant("TimeSformer_divST_8x32_224_HowTo100M", 8, 224, 1059, "howto100m", 32),
    Variant("TimeSformer_divST_32x32_224_HowTo100M", 32, 224, 1059, "howto100m", 32),
    Variant("TimeSformer_divST_64x32_224_HowTo100M", 64, 224, 1059, "howto100m", 32),
    Variant("TimeSformer_divST_96x32_224_HowTo100M", 96, 224, 1059, "howto100m", 32),
    Variant("TimeSformer_jointST_8x32_224_K400", 8, 224, 400, "kinetics", 32, attention="joint_space_time"),
    Variant("TimeSformer_spaceOnly_8x32_224_K400", 8, 224, 400, "kinetics", 32, attention="space_only"),
]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda variant: variant.name)
def test_released_variant_matches_original_forward(tmp_path, variant):
    name, frames, crop, classes, attention = (
        variant.name,
        variant.frames,
        variant.crop,
        variant.classes,
        variant.attention,
    )
    weights = original_state_dict(
        frames=frames, crop=crop, classes=classes, attention=attention, depth=variant.depth
    )
    cfg = original_cfg(
        frames=frames,
        crop=crop,
        classes=classes,
        attention=attention,
        dataset=variant.dataset,
        sampling_rate=variant.sampling_rate,
    )
    checkpoint = write_checkpoint(
        tmp_path / f"{name}.pyth", weights, cfg=cfg, layout=variant.layout, prefix=variant.prefix
    )

    result = convert_checkpoint(checkpoint, tmp_path / "repo", num_attention_heads=TINY_HEADS)
    assert result.max_abs_diff <= 1e-4

    model = AutoModelForVideoClassification.from_pretrained(tmp_path / "repo").eval()
    config = model.config
    assert (config.num_frames, config.image_size, config.num_labels) == (frames, crop, classes)
    assert (config.attention_type, config.hidden_size, config.num_hidden_layers) == (
        attention,
        16,
        variant.depth,
    )
    assert config.id2label[classes - 1] == f"LABEL_{classes - 1}"  # offline: placeholders

    video = torch.randn(1, frames, 3, crop, crop, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model(video).logits
    # The original SSv2 loader fed BGR frames: the converted model takes RGB and gives the same numbers.
    original_input = video.flip(2) if variant.dataset == "ssv2" else video
    expected = original_forward(weights, original_input.transpose(1, 2), TINY_HEADS, attention)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=0)

    video_config = json.loads((tmp_path / "repo" / "video_preprocessor_config.json").read_text())
    image_config = json.loads((tmp_path / "repo" / "preprocessor_config.json").read_text())
    for processor_config in (video_config, image_config):
        assert processor_config["crop_size"] == {"height": crop, "width": crop}
        assert processor_config["size"] == {"shortest_edge": crop}
        assert processor_config["image_mean"] == [0.45] * 3 and processor_config["image_std"] == [0.225] * 3
    assert video_config["num_frames"] == frames
    assert video_config["frame_sampling"] == ("ssv2" if variant.dataset == "ssv2" else "kinetics")
    assert video_config["sampling_rate"] == variant.sampling_rate

    card = (tmp_path / "repo" / "README.md").read_text()
    assert "license: cc-by-nc-4.0" in card  # the original weights' license
    assert f'from_pretrained("{tmp_path / "repo"}")' in card  # the folder written, not the model name
    released = conversion.RELEASED_CHECKPOINTS.get(name)
    assert ("model-index" in card) == (released is not None)
    if released is not None:
        assert f"value: {released.top1}" in card


def test_reference_matches_from_the_bare_layout_without_cfg(tmp_path):
    """No cfg, plain top-level state dict: the config comes from the shapes alone."""
    weights = original_state_dict(frames=4, crop=64, classes=7)
    checkpoint = write_checkpoint(tmp_path / "custom.pyth", weights, layout="top-level", prefix="")
    result = convert_checkpoint(checkpoint, tmp_path / "repo", num_attention_heads=TINY_HEADS)
    assert (result.config.num_frames, result.config.image_size, result.config.num_labels) == (4, 64, 7)


class _SideEffect:
    """Unpickling this creates a file: the proof that code from a checkpoint ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy-pickle"])
def test_checkpoint_with_pickled_code_is_refused(tmp_path, zip_format):
    marker = tmp_path / "pwned"
    weights = original_state_dict(frames=8, crop=32, classes=3)
    state = {"model_state": weights, "payload": _SideEffect(marker)}
    torch.save(state, tmp_path / "evil.pyth", _use_new_zipfile_serialization=zip_format)
    with pytest.raises(
        UnsafeCheckpointError, match=r"Refusing to load .*pickled Python object \(io\.open\)"
    ) as error:
        convert_checkpoint(tmp_path / "evil.pyth", tmp_path / "repo", num_attention_heads=TINY_HEADS)
    assert "weights_only" not in str(error.value) and "safe_globals" not in str(
        error.value
    )  # no unsafe advice
    assert not marker.exists()
    assert not (tmp_path / "repo").exists()


def _zip_without_data_pkl(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes/readme.txt", "not a checkpoint")


@pytest.mark.parametrize(
    "write, described",
    [
        (
            lambda path: path.write_text("epoch: 15\nlr: 0.005\n"),
            "not a zip or pickle file): it looks like a text",
        ),
        (lambda path: path.write_bytes(sample_video_path().read_bytes()), "it looks like an MP4/MOV video"),
        (lambda path: path.write_bytes(b""), "the file is empty"),
        (_zip_without_data_pkl, "a zip archive without the data.pkl"),
        pytest.param(
            lambda path: path.write_bytes(pickle.dumps({"epoch": 15}, protocol=4)),
            "Unsupported operand 149",
            marks=pytest.mark.filterwarnings("ignore:Detected pickle protocol 4"),
        ),
    ],
    ids=["text", "mp4", "empty", "zip", "plain-pickle"],
)
def test_file_that_is_no_checkpoint_is_named_so(tmp_path, write, described):
    path = tmp_path / "TimeSformer_divST_8x32_224_K400.pyth"
    write(path)
    with pytest.raises(CheckpointError, match="not a .*checkpoint") as error:
        convert_checkpoint(path, tmp_path / "repo")
    message = str(error.value)
    assert described in message and not isinstance(error.value, UnsafeCheckpointError)
    assert "weights_only=False" not in message and "arbitrary code" not in message
    assert not (tmp_path / "repo").exists()


def _transformers_timesformer(folder: Path, with_head: bool = True) -> Path:
    """A tiny `transformers` TimeSformer repo folder (its own class and key names)."""
    from transformers import TimesformerConfig, TimesformerForVideoClassification, TimesformerModel

    config = TimesformerConfig(
        image_size=32, num_frames=4, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, num_labels=3,
    )  # fmt: skip
    (TimesformerForVideoClassification if with_head else TimesformerModel)(config).save_pretrained(folder)
    return folder


def test_already_converted_weights_are_recognised(tmp_path, tiny_checkpoint):
    ours = convert_checkpoint(tiny_checkpoint, tmp_path / "ours", num_attention_heads=TINY_HEADS).output_dir
    theirs = _transformers_timesformer(tmp_path / "theirs")
    loose = tmp_path / "loose"
    loose.mkdir()
    (theirs / "model.safetensors").rename(loose / "model.safetensors")  # weights without their config.json
    # the base model's keys have no `timesformer.` prefix
    base = _transformers_timesformer(tmp_path / "base", with_head=False)
    torch.save(load_file(base / "model.safetensors"), base / "pytorch_model.bin")
    for source, folder in [
        (ours, ours),
        (ours / "model.safetensors", ours),
        (theirs, theirs),
        (base / "pytorch_model.bin", base),
    ]:
        with pytest.raises(CheckpointError, match="is already converted") as error:
            convert_checkpoint(source, tmp_path / "repo")
        assert f'from_pretrained("{folder}")' in str(error.value), source
    with pytest.raises(CheckpointError, match=re.escape(f"put its config.json beside it in {loose}")):
        convert_checkpoint(loose / "model.safetensors", tmp_path / "repo")
    assert not (tmp_path / "repo").exists()


def test_folder_and_safetensors_given_as_checkpoint(tmp_path):
    weights = original_state_dict(frames=4, crop=32, classes=3)
    save_file({f"model.{key}": value for key, value in weights.items()}, tmp_path / "original.safetensors")
    result = convert_checkpoint(
        tmp_path / "original.safetensors", tmp_path / "repo", num_attention_heads=TINY_HEADS
    )
    assert result.max_abs_diff <= 1e-4  # the original keys in a safetensors file convert like a .pyth file
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    write_checkpoint(folder / "a.pyth", weights)
    with pytest.raises(CheckpointError, match="pass it as `checkpoint_dir=`"):
        convert_checkpoint(folder, tmp_path / "out")


def test_missing_block_weights_are_named(tmp_path):
    weights = original_state_dict(frames=8, crop=32, classes=3, depth=3)
    weights = {key: value for key, value in weights.items() if not key.startswith("blocks.1.")}
    checkpoint = write_checkpoint(tmp_path / "broken.pyth", weights)
    with pytest.raises(CheckpointError, match=r"missing: \[.*'blocks\.1\.attn\.qkv\.weight'"):
        convert_checkpoint(checkpoint, tmp_path / "repo", num_attention_heads=TINY_HEADS)
    assert not (tmp_path / "repo").exists()


def test_unexpected_weights_are_named(tmp_path):
    weights = original_state_dict(frames=8, crop=32, classes=3)
    weights["blocks.0.adapter.weight"] = torch.zeros(2)
    checkpoint = write_checkpoint(tmp_path / "extra.pyth", weights)
    with pytest.raises(CheckpointError, match="blocks.0.adapter.weight"):
        convert_checkpoint(checkpoint, tmp_path / "repo", num_attention_heads=TINY_HEADS)


def test_cfg_disagreeing_with_weights_is_an_error(tmp_path):
    weights = original_state_dict(frames=8, crop=32, classes=3)
    cfg = original_cfg(frames=16, crop=32, classes=3, attention="divided_space_time", dataset="kinetics")
    checkpoint = write_checkpoint(tmp_path / "mixed.pyth", weights, cfg=cfg)
    with pytest.raises(CheckpointError, match=r"DATA\.NUM_FRAMES = 16 but its weights say 8"):
        convert_checkpoint(checkpoint, tmp_path / "repo", num_attention_heads=TINY_HEADS)


def test_head_count_must_be_given_for_unusual_widths(tmp_path):
    checkpoint = write_checkpoint(tmp_path / "tiny.pyth", original_state_dict(frames=8, crop=32, classes=3))
    with pytest.raises(CheckpointError, match="pass `num_attention_heads=`"):
        convert_checkpoint(checkpoint, tmp_path / "repo")


@pytest.fixture
def tiny_checkpoint(tmp_path) -> Path:
    return write_checkpoint(tmp_path / "tiny.pyth", original_state_dict(frames=4, crop=32, classes=3))


def test_interrupted_conversion_leaves_nothing(tmp_path, tiny_checkpoint):
    with mock.patch.object(
        timesformer_hf.TimeSformerForVideoClassification,
        "save_pretrained",
        side_effect=RuntimeError("disk full"),
    ):
        with pytest.raises(RuntimeError, match="disk full"):
            convert_checkpoint(tiny_checkpoint, tmp_path / "out" / "repo", num_attention_heads=TINY_HEADS)
    assert list((tmp_path / "out").iterdir()) == []


def test_existing_output_is_untouched_without_overwrite(tmp_path, tiny_checkpoint):
    output = tmp_path / "repo"
    convert_checkpoint(tiny_checkpoint, output, num_attention_heads=TINY_HEADS)
    before = {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in output.iterdir()}

    with pytest.raises(FileExistsError, match="pass `overwrite=True`"):
        convert_checkpoint(tiny_checkpoint, output, num_attention_heads=TINY_HEADS)
    assert {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in output.iterdir()} == before

    # a failed overwrite keeps the old repo too
    with mock.patch.object(conversion, "_check_reload", side_effect=CheckpointError("logits differ")):
        with pytest.raises(CheckpointError):
            convert_checkpoint(tiny_checkpoint, output, num_attention_heads=TINY_HEADS, overwrite=True)
    assert {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in output.iterdir()} == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["repo", "tiny.pyth"]

    convert_checkpoint(
        tiny_checkpoint, output, num_attention_heads=TINY_HEADS, overwrite=True, model_name="again"
    )
    assert "# again" in (output / "README.md").read_text()


def test_missing_checkpoints_are_one_line_errors(tmp_path):
    with pytest.raises(
        CheckpointNotFoundError, match=r"nope\.pyth does not exist: `checkpoint=` takes"
    ) as error:
        convert_checkpoint(tmp_path / "nope.pyth", tmp_path / "repo")
    assert isinstance(error.value, FileNotFoundError) and "\n" not in str(error.value)

    empty = tmp_path / "checkpoints"
    empty.mkdir()
    with pytest.raises(CheckpointNotFoundError, match=r"No \.pyth files in .*checkpoints \(it is empty\)"):
        convert_directory(empty, tmp_path / "out")
    (empty / "model.pth").write_bytes(b"")
    with pytest.raises(
        CheckpointNotFoundError, match=r"\(it holds model\.pth\).*give another file as `checkpoint=`"
    ):
        convert_directory(empty, tmp_path / "out")
    with pytest.raises(CheckpointNotFoundError, match="is not a folder: `checkpoint_dir=`"):
        convert_directory(tmp_path / "nowhere", tmp_path / "out")
    with pytest.raises(FileNotFoundError, match=r"Label file .*labels\.json does not exist \(`labels=`\)"):
        convert_checkpoint(
            write_checkpoint(tmp_path / "tiny.pyth", original_state_dict(frames=4, crop=32, classes=3)),
            tmp_path / "repo",
            labels=tmp_path / "labels.json",
            num_attention_heads=TINY_HEADS,
        )
    assert not (tmp_path / "out").exists() and not (tmp_path / "repo").exists()


def test_an_empty_output_folder_is_converted_into(tmp_path, tiny_checkpoint):
    output = tmp_path / "repo"
    output.mkdir()
    convert_checkpoint(tiny_checkpoint, output, num_attention_heads=TINY_HEADS)
    assert (output / "model.safetensors").is_file()
    with pytest.raises(FileExistsError, match="not empty: pass `overwrite=True`"):
        convert_checkpoint(tiny_checkpoint, output, num_attention_heads=TINY_HEADS)


def test_labels_from_file_and_download(tmp_path, tiny_checkpoint, monkeypatch, caplog):
    text_labels = tmp_path / "labels.txt"
    text_labels.write_text("walking\nrunning\n\njumping\n")
    result = convert_checkpoint(
        tiny_checkpoint, tmp_path / "a", labels=text_labels, num_attention_heads=TINY_HEADS
    )
    assert result.config.id2label == {0: "walking", 1: "running", 2: "jumping"}
    assert json.loads((tmp_path / "a" / "config.json").read_text())["label2id"]["jumping"] == 2

    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"0": "a", "1": "b"}))
    with pytest.raises(CheckpointError, match="2 labels for a head with 3 classes"):
        convert_checkpoint(tiny_checkpoint, tmp_path / "b", labels=wrong, num_attention_heads=TINY_HEADS)

    with caplog.at_level(logging.WARNING):
        result = convert_checkpoint(tiny_checkpoint, tmp_path / "c", num_attention_heads=TINY_HEADS)
    assert result.labels_are_placeholders and "LABEL_0..LABEL_2" in caplog.text

    # online, a dataset known from its class count downloads its label file
    weights = original_state_dict(frames=4, crop=32, classes=174)
    ssv2 = write_checkpoint(tmp_path / "ssv2_like.pyth", weights)
    downloaded = tmp_path / "ssv2-labels.json"
    downloaded.write_text(json.dumps({str(index): f"action {index}" for index in range(174)}))
    monkeypatch.setattr(conversion, "hub_unreachable", lambda: None)  # online
    with mock.patch.object(conversion, "hf_hub_download", return_value=str(downloaded)) as download:
        result = convert_checkpoint(ssv2, tmp_path / "d", num_attention_heads=TINY_HEADS)
    download.assert_called_once_with(
        "huggingface/label-files", "something-something-v2-id2label.json", repo_type="dataset"
    )
    assert result.config.id2label[173] == "action 173"


def test_push_to_hub_uploads_the_folder_in_one_commit(tmp_path, tiny_checkpoint):
    with (
        mock.patch("timesformer_hf.hub.HfApi") as api_class,
        mock.patch("timesformer_hf.hub.hub_unreachable", return_value=None),
    ):
        convert_checkpoint(
            tiny_checkpoint,
            tmp_path / "repo",
            num_attention_heads=TINY_HEADS,
            push_to_hub="me/timesformer-tiny",
            private=True,
            commit_message="Add tiny",
        )
    api = api_class.return_value
    api.create_repo.assert_called_once_with(
        "me/timesformer-tiny", repo_type="model", private=True, exist_ok=True
    )
    api.upload_folder.assert_called_once()
    upload = api.upload_folder.call_args.kwargs
    assert (upload["repo_id"], upload["commit_message"], Path(upload["folder_path"])) == (
        "me/timesformer-tiny",
        "Add tiny",
        tmp_path / "repo",
    )
    assert 'from_pretrained("me/timesformer-tiny")' in (tmp_path / "repo" / "README.md").read_text()


def test_directory_mode_converts_every_file_and_reports(tmp_path, capsys):
    source = tmp_path / "checkpoints"
    source.mkdir()
    write_checkpoint(source / "good.pyth", original_state_dict(frames=4, crop=32, classes=3))
    write_checkpoint(source / "bad.pyth", {"head.weight": torch.zeros(3, 16)})
    argv = [
        "--checkpoint-dir",
        str(source),
        "--output-dir",
        str(tmp_path / "out"),
        "--num-attention-heads",
        "2",
    ]
    assert convert_main(argv) == 1  # one checkpoint failed, the other was converted
    assert (tmp_path / "out" / "good" / "model.safetensors").is_file()
    assert not (tmp_path / "out" / "bad").exists()
    summary = capsys.readouterr().out
    assert "| good | 4 | 32 | 3 | divided_space_time |" in summary
    assert "| bad | - | - | - | - | - | CheckpointError: Missing weight 'cls_token'" in summary


def test_cli_end_to_end_without_remote_code(tmp_path, capsys):
    checkpoint = write_checkpoint(tmp_path / "tiny.pyth", original_state_dict(frames=4, crop=32, classes=3))
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"0": "a", "1": "b", "2": "c"}))
    output = tmp_path / "repo"
    command = [sys.executable, str(SCRIPT), "--checkpoint", str(checkpoint), "--output-dir", str(output)]
    command += ["--labels", str(labels), "--num-attention-heads", "2", "--no-remote-code"]
    # run from a checkout: the package is importable from the repo root
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert "| tiny | 4 | 32 | 3 | divided_space_time |" in completed.stdout
    files = sorted(path.name for path in output.iterdir())
    assert files == [
        "README.md",
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "video_preprocessor_config.json",
    ]
    for name in ("config.json", "preprocessor_config.json", "video_preprocessor_config.json"):
        assert "auto_map" not in json.loads((output / name).read_text())

    assert convert_main(command[2:]) == 1  # the same command again, in process: refused
    assert "already exists" in capsys.readouterr().err


def test_remote_code_repo_has_code_and_auto_map(tmp_path, tiny_checkpoint):
    convert_checkpoint(tiny_checkpoint, tmp_path / "repo", num_attention_heads=TINY_HEADS)
    assert {"modeling_timesformer.py", "configuration_timesformer.py"} <= {
        p.name for p in (tmp_path / "repo").iterdir()
    }
    auto_map = json.loads((tmp_path / "repo" / "config.json").read_text())["auto_map"]
    assert auto_map["AutoModelForVideoClassification"].endswith("TimeSformerForVideoClassification")
    processor = timesformer_hf.TimeSformerVideoProcessor.from_pretrained(tmp_path / "repo")
    assert processor.do_sample_frames and processor.num_frames == 4  # a path gives the model's frame count


def test_load_original_checkpoint_reads_the_cfg(tmp_path):
    cfg = original_cfg(frames=8, crop=32, classes=3, attention="divided_space_time", dataset="kinetics")
    path = write_checkpoint(tmp_path / "x.pyth", original_state_dict(frames=8, crop=32, classes=3), cfg=cfg)
    checkpoint = load_original_checkpoint(path)
    assert checkpoint.cfg["DATA"]["NUM_FRAMES"] == 8
    assert "blocks.0.temporal_fc.weight" in checkpoint.state_dict


@pytest.mark.slow
def test_full_size_base_checkpoint(tmp_path):
    weights = original_state_dict(
        frames=8, crop=224, classes=400, hidden=768, depth=12, mlp_ratio=4, scale=0.02, seed=3
    )
    cfg = original_cfg(
        frames=8, crop=224, classes=400, attention="divided_space_time", dataset="kinetics", sampling_rate=32
    )
    checkpoint = write_checkpoint(tmp_path / "TimeSformer_divST_8x32_224_K400.pyth", weights, cfg=cfg)
    result = convert_checkpoint(checkpoint, tmp_path / "repo")
    assert (result.config.num_attention_heads, result.config.intermediate_size) == (12, 3072)
    assert result.max_abs_diff <= 1e-4
    model = AutoModelForVideoClassification.from_pretrained(tmp_path / "repo").eval()
    video = torch.randn(1, 8, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model(video).logits
    torch.testing.assert_close(
        logits, original_forward(weights, video.transpose(1, 2), 12, "divided_space_time"), atol=1e-4, rtol=0
    )


def test_bgr_checkpoint_with_uneven_statistics_takes_rgb_frames(tmp_path):
    weights = original_state_dict(frames=2, crop=32, classes=3, depth=1)
    cfg = yaml.safe_load(
        original_cfg(frames=2, crop=32, classes=3, attention="divided_space_time", dataset="k400")
    )
    cfg["DATA"]["MEAN"], cfg["DATA"]["STD"] = [0.40, 0.45, 0.50], [0.20, 0.225, 0.25]
    checkpoint = write_checkpoint(tmp_path / "bgr.pyth", weights, cfg=yaml.safe_dump(cfg))
    convert_checkpoint(checkpoint, tmp_path / "repo", num_attention_heads=TINY_HEADS, channel_order="bgr")

    processor = timesformer_hf.TimeSformerImageProcessor.from_pretrained(tmp_path / "repo")
    assert list(processor.image_mean) == [0.50, 0.45, 0.40] and list(processor.image_std) == [
        0.25,
        0.225,
        0.20,
    ]
    model = AutoModelForVideoClassification.from_pretrained(tmp_path / "repo").eval()
    rgb = torch.rand(1, 2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    mean, std = (
        torch.tensor(cfg["DATA"]["MEAN"]).view(3, 1, 1),
        torch.tensor(cfg["DATA"]["STD"]).view(3, 1, 1),
    )
    ours = (rgb - torch.tensor(processor.image_mean).view(3, 1, 1)) / torch.tensor(processor.image_std).view(
        3, 1, 1
    )
    original = (rgb.flip(2) - mean) / std  # the original normalised BGR frames with the cfg's statistics
    with torch.no_grad():
        logits = model(ours).logits
    expected = original_forward(weights, original.transpose(1, 2), TINY_HEADS, "divided_space_time")
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=0)


def test_dataset_guessed_from_the_class_count_never_flips_channels(tmp_path, caplog):
    weights = original_state_dict(frames=2, crop=32, classes=174, depth=1)
    checkpoint = write_checkpoint(tmp_path / "my_own_174_classes.pyth", weights)  # no cfg, unknown name
    with caplog.at_level(logging.WARNING):
        convert_checkpoint(checkpoint, tmp_path / "repo", num_attention_heads=TINY_HEADS)
    assert "guessing the dataset" in caplog.text
    model = AutoModelForVideoClassification.from_pretrained(tmp_path / "repo").eval()
    video = torch.randn(1, 2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        logits = model(video).logits
    expected = original_forward(weights, video.transpose(1, 2), TINY_HEADS, "divided_space_time")
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=0)  # RGB kept: no channel flip


def test_timesformer_hf_convert_subcommand(tmp_path, tiny_checkpoint):
    from timesformer_hf.cli import main

    output = tmp_path / "out"
    argv = ["convert", "--checkpoint", str(tiny_checkpoint), "--output-dir", str(output)]
    assert main([*argv, "--num-attention-heads", str(TINY_HEADS)]) == 0
    assert (output / "model.safetensors").exists() and (output / "README.md").exists()


def test_label_download_says_at_once_that_the_hub_is_out_of_reach(tmp_path, monkeypatch, caplog):
    from huggingface_hub import constants

    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    ssv2 = write_checkpoint(tmp_path / "ssv2_like.pyth", original_state_dict(frames=4, crop=32, classes=174))
    start = time.monotonic()
    with caplog.at_level(logging.WARNING), mock.patch.object(conversion, "hf_hub_download") as download:
        result = convert_checkpoint(ssv2, tmp_path / "out", num_attention_heads=TINY_HEADS)
    download.assert_not_called()  # no retries against a Hub out of reach
    assert "Not downloading something-something-v2-id2label.json: 127.0.0.1 cannot be reached" in caplog.text
    assert result.labels_are_placeholders and time.monotonic() - start < 60

"""Conversion of the original TimeSformer checkpoints (`.pyth` files of facebookresearch/TimeSformer).

The architecture is read from the tensor shapes and checked against the training config (`cfg`, a YAML string)
stored in the checkpoint; the weights are renamed to the layout of [`TimeSformerForVideoClassification`] (the
`transformers` TimeSformer names), unchanged in value but for the input channels of BGR-trained checkpoints
(see [`convert_checkpoint`]). Checkpoints are read with `torch.load(weights_only=True)`,
so no code stored in them ever runs.

Example:

```python
>>> from timesformer_hf.conversion import convert_checkpoint
>>> result = convert_checkpoint("TimeSformer_divST_8x32_224_K400.pyth", "timesformer-base-k400")  # doctest: +SKIP
>>> result.max_abs_diff  # logits of the saved repo against the in-memory model  # doctest: +SKIP
0.0
```
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pickle
import re
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
import yaml
from huggingface_hub import hf_hub_download
from transformers import AutoModelForVideoClassification
from transformers.utils import logging

from .configuration_timesformer import TimeSformerConfig
from .errors import InputError
from .files import check_output_dir
from .hub import LICENSE, build_model_card, check_hub_access, hub_unreachable, push_repo, save_repo
from .image_processing_timesformer import TimeSformerImageProcessor
from .modeling_timesformer import TimeSformerForVideoClassification
from .video_processing_timesformer import TimeSformerVideoProcessor

logger = logging.get_logger(__name__)

__all__ = [
    "DATASETS",
    "RELEASED_CHECKPOINTS",
    "CheckpointError",
    "CheckpointNotFoundError",
    "ConversionResult",
    "DatasetInfo",
    "OriginalCheckpoint",
    "Preprocessing",
    "ReleasedCheckpoint",
    "UnsafeCheckpointError",
    "convert_checkpoint",
    "convert_directory",
    "convert_state_dict",
    "format_summary",
    "infer_config",
    "load_labels",
    "load_original_checkpoint",
]

LABEL_FILES_REPO = "huggingface/label-files"
MAX_ABS_DIFF = 1e-4
STATE_DICT_KEYS = ("model_state", "state_dict", "model", "module")
STRIPPED_PREFIXES = ("module.", "model.")
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = pickle.PROTO[0]  # a pickle of protocol 2 or above starts with it
HEAD_DIM = 64  # ViT-B/16 and ViT-L/16 use 64-wide heads; the head count is not stored in the weights


class CheckpointError(InputError):
    """A checkpoint that cannot be converted faithfully (wrong layout, missing or unexpected weights, ...)."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No checkpoint where one was given: a missing file, or a folder without `.pyth` files."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint that holds pickled objects other than tensors and plain containers."""


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset the original models were trained on."""

    name: str
    hub_id: str
    num_classes: int | None
    label_file: str | None = None  # in the `huggingface/label-files` dataset repo
    frame_sampling: str = "kinetics"  # see `TimeSformerVideoProcessor.frame_sampling`


DATASETS = {
    "kinetics400": DatasetInfo("Kinetics-400", "kinetics-400", 400, "kinetics400-id2label.json"),
    "kinetics600": DatasetInfo("Kinetics-600", "kinetics-600", 600, "kinetics600-id2label.json"),
    "ssv2": DatasetInfo(
        "Something-Something-v2",
        "something-something-v2",
        174,
        "something-something-v2-id2label.json",
        "ssv2",
    ),
    # 1059 long-term task classes (the paper's HowTo100M subset); no public label file exists.
    "howto100m": DatasetInfo("HowTo100M", "howto100m", 1059),
}


@dataclass(frozen=True)
class ReleasedCheckpoint:
    """Facts about one of the 13 released `.pyth` files."""

    dataset: str
    top1: float
    top5: float | None
    sampling_rate: int | None  # frames between sampled frames; None for SSv2's segment sampling


RELEASED_CHECKPOINTS = {
    "TimeSformer_divST_8x32_224_K400": ReleasedCheckpoint("kinetics400", 77.9, 93.2, 32),
    "TimeSformer_divST_16x16_448_K400": ReleasedCheckpoint("kinetics400", 79.6, 94.0, 16),
    "TimeSformer_divST_96x4_224_K400": ReleasedCheckpoint("kinetics400", 80.6, 94.7, 4),
    "TimeSformer_divST_8x32_224_K600": ReleasedCheckpoint("kinetics600", 79.1, 94.4, 32),
    "TimeSformer_divST_16x16_448_K600": ReleasedCheckpoint("kinetics600", 81.8, 95.8, 16),
    "TimeSformer_divST_96x4_224_K600": ReleasedCheckpoint("kinetics600", 82.2, 95.6, 4),
    "TimeSformer_divST_8_224_SSv2": ReleasedCheckpoint("ssv2", 59.1, 85.6, None),
    "TimeSformer_divST_16_448_SSv2": ReleasedCheckpoint("ssv2", 61.8, 86.9, None),
    "TimeSformer_divST_64_224_SSv2": ReleasedCheckpoint("ssv2", 62.0, 87.5, None),
    "TimeSformer_divST_8x32_224_HowTo100M": ReleasedCheckpoint("howto100m", 56.8, None, 32),
    "TimeSformer_divST_32x32_224_HowTo100M": ReleasedCheckpoint("howto100m", 61.2, None, 32),
    "TimeSformer_divST_64x32_224_HowTo100M": ReleasedCheckpoint("howto100m", 62.2, None, 32),
    "TimeSformer_divST_96x32_224_HowTo100M": ReleasedCheckpoint("howto100m", 62.6, None, 32),
}

# Original name -> our name; `*` is a block index. Names without a trailing dot are whole parameters.
_KEY_RENAMES = {
    "cls_token": "timesformer.embeddings.cls_token",
    "pos_embed": "timesformer.embeddings.position_embeddings",
    "time_embed": "timesformer.embeddings.time_embeddings",
    "patch_embed.proj.": "timesformer.embeddings.patch_embeddings.projection.",
    "blocks.*.norm1.": "timesformer.encoder.layer.*.layernorm_before.",
    "blocks.*.attn.qkv.": "timesformer.encoder.layer.*.attention.attention.qkv.",
    "blocks.*.attn.proj.": "timesformer.encoder.layer.*.attention.output.dense.",
    "blocks.*.temporal_norm1.": "timesformer.encoder.layer.*.temporal_layernorm.",
    "blocks.*.temporal_attn.qkv.": "timesformer.encoder.layer.*.temporal_attention.attention.qkv.",
    "blocks.*.temporal_attn.proj.": "timesformer.encoder.layer.*.temporal_attention.output.dense.",
    "blocks.*.temporal_fc.": "timesformer.encoder.layer.*.temporal_dense.",
    "blocks.*.norm2.": "timesformer.encoder.layer.*.layernorm_after.",
    "blocks.*.mlp.fc1.": "timesformer.encoder.layer.*.intermediate.dense.",
    "blocks.*.mlp.fc2.": "timesformer.encoder.layer.*.output.dense.",
    "norm.": "timesformer.layernorm.",
    "head.": "classifier.",
}


def _compile_renames(renames: Mapping[str, str]) -> list[tuple[re.Pattern[str], str]]:
    rules = []
    for source, target in renames.items():
        pattern = "^" + re.escape(source).replace(r"\*", r"(\d+)") + ("" if source.endswith(".") else "$")
        rules.append((re.compile(pattern), target.replace("*", r"\1")))
    return rules


_TO_OURS = _compile_renames(_KEY_RENAMES)
_TO_ORIGINAL = _compile_renames({ours: original for original, ours in _KEY_RENAMES.items()})


def _rename(key: str, rules: list[tuple[re.Pattern[str], str]]) -> str | None:
    for pattern, replacement in rules:
        if pattern.match(key):
            return pattern.sub(replacement, key, count=1)
    return None


@dataclass
class OriginalCheckpoint:
    """The parts of a `.pyth` file the conversion uses."""

    path: Path
    state_dict: dict[str, torch.Tensor]  # original names, prefixes (`model.`, `module.`) removed
    cfg: dict[str, Any] | None  # the training config, parsed from its YAML dump

    @property
    def name(self) -> str:
        return self.path.name.removesuffix(".pyth").removesuffix(".pth")


def _describe_content(head: bytes) -> str:
    """What the first bytes of a file that is no checkpoint look like, for error messages."""
    if not head:
        return "the file is empty"
    if head[4:8] == b"ftyp":
        return "it looks like an MP4/MOV video"
    if all(32 <= byte < 127 or byte in b"\t\n\r" for byte in head):
        return "it looks like a text file"
    return f"it starts with {head[:8]!r}"


def _is_safetensors(head: bytes, size: int) -> bool:
    """A safetensors file starts with the length of its JSON header (8 bytes, little-endian), then the header."""
    return len(head) > 8 and head[8:9] == b"{" and 8 + int.from_bytes(head[:8], "little") <= size


def _check_is_checkpoint(path: Path) -> None:
    """Raise a [`CheckpointError`] unless `path` is a PyTorch zip archive or a pickle file (`torch.save`'s formats)."""
    with open(path, "rb") as file:
        head = file.read(16)
    if head.startswith(_ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as archive:
                is_torch_archive = any(name.endswith("/data.pkl") for name in archive.namelist())
        except zipfile.BadZipFile as error:
            raise CheckpointError(
                f"{path} is a damaged zip archive, not a readable PyTorch checkpoint: {error}."
            ) from None
        if not is_torch_archive:
            raise CheckpointError(
                f"{path} is not a PyTorch checkpoint: a zip archive without the data.pkl of `torch.save`. Give an "
                "original TimeSformer .pyth file."
            )
    elif not (len(head) >= 2 and head[0] == _PICKLE_PROTO and 2 <= head[1] <= pickle.HIGHEST_PROTOCOL):
        raise CheckpointError(
            f"{path} is not a PyTorch checkpoint (not a zip or pickle file): {_describe_content(head)}. Give an "
            "original TimeSformer .pyth file."
        )


def _read_checkpoint(path: Path) -> Any:
    """`torch.load(path, weights_only=True)` (or a safetensors file), with errors that say whether `path` is a
    checkpoint at all."""
    with open(path, "rb") as file:
        if _is_safetensors(file.read(9), path.stat().st_size):
            return safetensors.torch.load_file(path)
    _check_is_checkpoint(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # torch's message suggests `weights_only=False`: name only what was refused
        unsafe = re.search(r"GLOBAL ([\w.]+)", str(error))
        if unsafe:
            raise UnsafeCheckpointError(
                f"Refusing to load {path}: besides tensors it holds a pickled Python object ({unsafe.group(1)}), "
                "and unpickling one can run arbitrary code. The original release holds only tensors, numbers, "
                "strings and containers; whoever made this file can save the state dict alone, e.g. "
                "`torch.save({'model_state': model.state_dict()}, path)`."
            ) from None
        detail = re.search(r"Unsupported operand \d+", str(error))
        raise CheckpointError(
            f"{path} is a pickle file that `torch.load(weights_only=True)` cannot read "
            f"({detail.group(0) if detail else 'unsupported content'}): not a checkpoint as `torch.save` writes it."
        ) from None
    except (RuntimeError, EOFError, KeyError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"{path} could not be read as a PyTorch checkpoint (damaged or truncated?): {first_line}"
        ) from None


def _is_converted_layout(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether most keys are those of a converted model: this package's or `transformers`' TimeSformer names (with
    or without the `timesformer.` prefix of the classification model)."""
    converted = sum(
        _rename(key, _TO_ORIGINAL) is not None or _rename(f"timesformer.{key}", _TO_ORIGINAL) is not None
        for key in state_dict
    )
    return converted > len(state_dict) / 2


def _already_converted(path: Path) -> CheckpointError:
    folder = path if path.is_dir() else path.parent
    if (folder / "config.json").is_file():
        how = f'load the folder directly: `TimeSformerForVideoClassification.from_pretrained("{folder}")`'
    else:
        how = f"put its config.json beside it in {folder} and load that folder with `from_pretrained`"
    return CheckpointError(
        f"{path} is already converted (a Hugging Face TimeSformer, with keys like "
        f"'timesformer.embeddings.cls_token'), so there is nothing to convert: {how}."
    )


def _folder_error(folder: Path) -> CheckpointError:
    """Why a folder given as a checkpoint cannot be converted, and what to do instead."""
    config = folder / "config.json"
    if config.is_file():
        model_type = json.loads(config.read_text()).get("model_type")
        if model_type in ("timesformer", TimeSformerConfig.model_type):
            return _already_converted(folder)
        return CheckpointError(
            f"{folder} is a Hugging Face repo of a {model_type!r} model, not an original TimeSformer checkpoint."
        )
    if any(folder.glob("*.pyth")):
        return CheckpointError(
            f"{folder} is a folder: pass it as `checkpoint_dir=` to convert each of its .pyth files, or give one "
            "file as `checkpoint=`."
        )
    return CheckpointError(
        f"{folder} is a folder with no config.json and no .pyth file: `checkpoint=` takes an original .pyth file."
    )


def load_original_checkpoint(path: str | os.PathLike) -> OriginalCheckpoint:
    """
    Read a `.pyth` checkpoint safely (`weights_only=True`) and find its state dict and training config.

    The state dict may sit under `model_state` (the release), `state_dict`, `model` or `module`, or be the file's
    top level; `module.` and `model.` prefixes are removed. A `.safetensors` file of the original keys is read too.
    A file that is no checkpoint, or a model already converted (a repo folder, or weights with the Hugging Face
    TimeSformer keys), raises a [`CheckpointError`] that says so.

    Example:

    ```python
    >>> checkpoint = load_original_checkpoint("TimeSformer_divST_8x32_224_K400.pyth")  # doctest: +SKIP
    >>> checkpoint.state_dict["pos_embed"].shape, checkpoint.cfg["DATA"]["NUM_FRAMES"]  # doctest: +SKIP
    (torch.Size([1, 197, 768]), 8)
    ```
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointNotFoundError(
            f"{path} does not exist: `checkpoint=` takes an original .pyth file (`checkpoint_dir=` a folder of them)."
        )
    if path.is_dir():
        raise _folder_error(path)
    content = _read_checkpoint(path)
    if not isinstance(content, dict):
        raise CheckpointError(f"{path} holds a {type(content).__name__}, not a dict with a state dict.")

    state_dict = next(
        (content[key] for key in STATE_DICT_KEYS if isinstance(content.get(key), dict)),
        content,
    )
    if not state_dict or not all(isinstance(value, torch.Tensor) for value in state_dict.values()):
        raise CheckpointError(
            f"No state dict found in {path}: expected a dict of tensors at the top level or under one of "
            f"{', '.join(STATE_DICT_KEYS)}; top-level keys are {sorted(map(str, content))}."
        )
    state_dict = dict(state_dict)
    stripped = True
    while stripped:
        stripped = False
        for prefix in STRIPPED_PREFIXES:
            if all(key.startswith(prefix) for key in state_dict):
                state_dict = {key.removeprefix(prefix): value for key, value in state_dict.items()}
                stripped = True
    if _is_converted_layout(state_dict):
        raise _already_converted(path)

    cfg = content.get("cfg") if state_dict is not content else None
    if isinstance(cfg, str):
        try:
            cfg = yaml.safe_load(cfg)
        except yaml.YAMLError as error:  # e.g. a `!!python/...` tag: refused, never loaded unsafely
            problem = " ".join(str(getattr(error, "problem", None) or error).split())
            raise UnsafeCheckpointError(
                f"The `cfg` entry of {path} is not plain YAML ({problem}); it is never loaded unsafely. Remove the "
                "tags from the checkpoint's cfg, or convert a checkpoint from the original release."
            ) from error
    if cfg is not None and not isinstance(cfg, dict):
        raise CheckpointError(f"The `cfg` entry of {path} is a {type(cfg).__name__}, not a YAML mapping.")
    return OriginalCheckpoint(path=path, state_dict=state_dict, cfg=cfg)


@dataclass(frozen=True)
class Preprocessing:
    """How the original fed clips to the model at test time."""

    crop_size: int
    mean: tuple[float, ...] = (0.45, 0.45, 0.45)
    std: tuple[float, ...] = (0.225, 0.225, 0.225)
    frame_sampling: str = "kinetics"
    sampling_rate: int = 32
    target_fps: float = 30.0
    channel_order: str = "rgb"  # order of the frames the model was trained on


def _cfg_value(cfg: Mapping[str, Any] | None, dotted: str) -> Any:
    value: Any = cfg
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _check_against_cfg(cfg: Mapping[str, Any] | None, dotted: str, from_weights: Any) -> None:
    stored = _cfg_value(cfg, dotted)
    if stored is not None and stored != from_weights:
        raise CheckpointError(
            f"The checkpoint's cfg says {dotted} = {stored!r} but its weights say {from_weights!r}: the cfg does "
            "not describe these weights. Check that the file is not corrupted or mixed up with another one."
        )


def _require(state_dict: Mapping[str, torch.Tensor], key: str) -> torch.Tensor:
    if key not in state_dict:
        raise CheckpointError(
            f"Missing weight {key!r}: this is not a TimeSformer state dict (keys: {sorted(state_dict)[:8]}...)."
        )
    return state_dict[key]


def infer_config(
    state_dict: Mapping[str, torch.Tensor],
    cfg: Mapping[str, Any] | None = None,
    *,
    num_attention_heads: int | None = None,
) -> TimeSformerConfig:
    """
    Build the [`TimeSformerConfig`] of an original state dict from its tensor shapes, checked against `cfg`.

    Width, depth, MLP width, patch size, channels, patch grid, frames, classes and the attention type come from
    the shapes; the head count is not stored and defaults to `hidden_size // 64`. Where `cfg` (the checkpoint's
    training config) gives a value too (frames, crop size, classes, attention type), the two must agree.

    Example:

    ```python
    >>> checkpoint = load_original_checkpoint("TimeSformer_divST_16x16_448_K400.pyth")  # doctest: +SKIP
    >>> config = infer_config(checkpoint.state_dict, checkpoint.cfg)  # doctest: +SKIP
    >>> config.num_frames, config.image_size, config.num_labels  # doctest: +SKIP
    (16, 448, 400)
    ```
    """
    hidden_size = _require(state_dict, "cls_token").shape[-1]
    patch_weight = _require(state_dict, "patch_embed.proj.weight")  # (hidden, channels, patch_h, patch_w)
    _, num_channels, patch_height, patch_width = patch_weight.shape
    num_positions = _require(state_dict, "pos_embed").shape[1] - 1
    grid = math.isqrt(num_positions)
    if grid * grid != num_positions:
        raise CheckpointError(f"pos_embed has {num_positions} patch positions, not a square grid.")
    if patch_height != patch_width:
        raise CheckpointError(f"Non-square patches {patch_height}x{patch_width} are not supported.")
    image_size = grid * patch_height
    block_indices = {
        int(match.group(1)) for key in state_dict if (match := re.match(r"blocks\.(\d+)\.", key))
    }
    if not block_indices:
        raise CheckpointError("The state dict has no `blocks.N.` weights.")
    num_layers = max(block_indices) + 1
    num_labels = _require(state_dict, "head.weight").shape[0]

    if "blocks.0.temporal_attn.qkv.weight" in state_dict:
        attention_type = "divided_space_time"
    elif "time_embed" in state_dict:
        attention_type = "joint_space_time"
    else:
        attention_type = "space_only"
    if "time_embed" in state_dict:
        num_frames = state_dict["time_embed"].shape[1]
    else:
        num_frames = _cfg_value(cfg, "DATA.NUM_FRAMES") or 8
        logger.info(
            f"Space-only weights store no frame count: using {num_frames} (from the cfg or the default)."
        )

    for dotted, value in (
        ("DATA.NUM_FRAMES", num_frames),
        ("DATA.TRAIN_CROP_SIZE", image_size),
        ("MODEL.NUM_CLASSES", num_labels),
        ("TIMESFORMER.ATTENTION_TYPE", attention_type),
    ):
        _check_against_cfg(cfg, dotted, value)

    if num_attention_heads is None:
        if hidden_size % HEAD_DIM:
            raise CheckpointError(
                f"hidden_size {hidden_size} is not a multiple of {HEAD_DIM}, so the head count cannot be assumed: "
                "pass `num_attention_heads=`."
            )
        num_attention_heads = hidden_size // HEAD_DIM
    return TimeSformerConfig(
        image_size=image_size,
        patch_size=patch_height,
        num_channels=num_channels,
        num_frames=num_frames,
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_attention_heads,
        intermediate_size=_require(state_dict, "blocks.0.mlp.fc1.weight").shape[0],
        qkv_bias="blocks.0.attn.qkv.bias" in state_dict,
        attention_type=attention_type,
        num_labels=num_labels,
    )


def convert_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """
    Rename original keys (`blocks.0.attn.qkv.weight`, ...) to ours (`timesformer.encoder.layer.0.attention...`).

    Raises a [`CheckpointError`] listing every key no rule knows.

    Example:

    ```python
    >>> sorted(convert_state_dict({"head.weight": torch.zeros(2, 4), "blocks.3.norm1.bias": torch.zeros(4)}))
    ['classifier.weight', 'timesformer.encoder.layer.3.layernorm_before.bias']
    ```
    """
    renamed, unknown = {}, []
    for key, value in state_dict.items():
        new_key = _rename(key, _TO_OURS)
        if new_key is None:
            unknown.append(key)
        else:
            renamed[new_key] = value
    if unknown:
        raise CheckpointError(f"Unexpected weights with no place in TimeSformer: {sorted(unknown)}.")
    return renamed


def _load_weights(model: TimeSformerForVideoClassification, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load renamed weights; every parameter must come from the checkpoint, with its exact shape."""
    expected = model.state_dict()
    converted = convert_state_dict(state_dict)
    missing = sorted(_rename(key, _TO_ORIGINAL) or key for key in expected.keys() - converted.keys())
    unexpected = sorted(_rename(key, _TO_ORIGINAL) or key for key in converted.keys() - expected.keys())
    mismatched = sorted(
        f"{_rename(key, _TO_ORIGINAL)}: {tuple(value.shape)} in the checkpoint, {tuple(expected[key].shape)} expected"
        for key, value in converted.items()
        if key in expected and value.shape != expected[key].shape
    )
    problems = [
        f"{what}: {keys}"
        for what, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched))
        if keys
    ]
    if problems:
        raise CheckpointError(
            "The checkpoint does not match the architecture inferred from it; nothing was converted. "
            + "; ".join(problems)
        )
    model.load_state_dict(converted, strict=True)


def load_labels(path: str | os.PathLike) -> dict[int, str]:
    """
    Read class names: a JSON object `{"0": "abseiling", ...}` or list, or a text file with one name a line.

    Example:

    ```python
    >>> load_labels("kinetics400-id2label.json")[0]  # doctest: +SKIP
    'abseiling'
    ```
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Label file {path} does not exist (`labels=`).")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        content = json.loads(text)
        items = enumerate(content) if isinstance(content, list) else content.items()
        return {int(index): str(label) for index, label in items}
    return dict(enumerate(line.strip() for line in text.splitlines() if line.strip()))


def _download_labels(dataset: DatasetInfo | None) -> dict[int, str] | None:
    """The dataset's class names from the `huggingface/label-files` repo, or None offline or on failure."""
    if dataset is None or dataset.label_file is None:
        return None
    unreachable = hub_unreachable()
    if unreachable is not None:
        logger.warning(f"Not downloading {dataset.label_file}: {unreachable}.")
        return None
    try:
        return load_labels(hf_hub_download(LABEL_FILES_REPO, dataset.label_file, repo_type="dataset"))
    except Exception as error:  # any download failure falls back to LABEL_i names, with a warning
        logger.warning(f"Could not download {LABEL_FILES_REPO}/{dataset.label_file}: {error}")
        return None


def _identify_dataset(
    name: str, cfg: Mapping[str, Any] | None, num_labels: int
) -> tuple[DatasetInfo | None, bool]:
    """
    The training dataset and whether it is known: from the released file name or the cfg (known), else guessed
    from the class count (used for labels and the model card only, never to change weights).
    """
    if name in RELEASED_CHECKPOINTS:
        return DATASETS[RELEASED_CHECKPOINTS[name].dataset], True
    if str(_cfg_value(cfg, "TRAIN.DATASET") or "").lower() == "ssv2":
        return DATASETS["ssv2"], True
    guess = next((dataset for dataset in DATASETS.values() if dataset.num_classes == num_labels), None)
    if guess is not None:
        logger.warning(
            f"{name}: guessing the dataset {guess.name} from its {num_labels} classes (not a released file name, "
            "no TRAIN.DATASET in its cfg); pass `labels=` and `channel_order=` if the guess is wrong."
        )
    return guess, False


def _preprocessing(
    config: TimeSformerConfig,
    cfg: Mapping[str, Any] | None,
    dataset: DatasetInfo | None,
    released: ReleasedCheckpoint | None,
    channel_order: str = "auto",
    dataset_is_known: bool = True,
) -> Preprocessing:
    """
    Test-time preprocessing: from the cfg, else the release's facts, else the original defaults.

    `channel_order="auto"` means BGR for a known Something-Something-v2 checkpoint: its original loader reads
    frames with OpenCV and, for TimeSformer, never reverses the channels. A dataset guessed from the class count
    keeps RGB.
    """
    if channel_order not in ("auto", "rgb", "bgr"):
        raise InputError(f"must be 'auto', 'rgb' or 'bgr', got {channel_order!r}.", argument="channel_order")
    if channel_order == "auto":
        is_ssv2 = dataset_is_known and dataset is not None and dataset.frame_sampling == "ssv2"
        channel_order = "bgr" if is_ssv2 else "rgb"
    crop_size = _cfg_value(cfg, "DATA.TEST_CROP_SIZE") or config.image_size
    if crop_size != config.image_size:
        logger.info(f"The cfg tests at {crop_size} pixels, the weights were trained at {config.image_size}.")
    defaults = Preprocessing(crop_size=crop_size)
    return Preprocessing(
        crop_size=crop_size,
        mean=tuple(_cfg_value(cfg, "DATA.MEAN") or defaults.mean),
        std=tuple(_cfg_value(cfg, "DATA.STD") or defaults.std),
        frame_sampling=dataset.frame_sampling if dataset else defaults.frame_sampling,
        sampling_rate=_cfg_value(cfg, "DATA.SAMPLING_RATE")
        or (released.sampling_rate if released else None)
        or defaults.sampling_rate,
        target_fps=float(_cfg_value(cfg, "DATA.TARGET_FPS") or defaults.target_fps),
        channel_order=channel_order,
    )


def _accept_rgb_input(
    model: TimeSformerForVideoClassification, preprocessing: Preprocessing
) -> Preprocessing:
    """
    Make a model trained on BGR frames take RGB ones, exactly: reverse the input channels of the patch projection
    and the order of the normalisation's mean and std. Returns the preprocessing for RGB input.
    """
    if preprocessing.channel_order == "rgb":
        return preprocessing
    projection = model.timesformer.embeddings.patch_embeddings.projection
    with torch.no_grad():
        projection.weight.copy_(projection.weight.flip(1))  # (D, C, p, p): C reversed
    return dataclasses.replace(
        preprocessing, mean=preprocessing.mean[::-1], std=preprocessing.std[::-1], channel_order="rgb"
    )


def _build_processors(
    config: TimeSformerConfig, preprocessing: Preprocessing
) -> tuple[TimeSformerImageProcessor, TimeSformerVideoProcessor]:
    """Processors reproducing the original test-time pipeline: short side to the crop size, centre crop."""
    common = dict(
        size={"shortest_edge": preprocessing.crop_size},
        crop_size={"height": preprocessing.crop_size, "width": preprocessing.crop_size},
        image_mean=list(preprocessing.mean),
        image_std=list(preprocessing.std),
    )
    video_processor = TimeSformerVideoProcessor(
        **common,
        num_frames=config.num_frames,
        frame_sampling=preprocessing.frame_sampling,
        sampling_rate=preprocessing.sampling_rate,
        target_fps=preprocessing.target_fps,
    )
    return TimeSformerImageProcessor(**common), video_processor


def _reference_input(config: TimeSformerConfig) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    size = config.image_size
    return torch.randn(1, config.num_frames, config.num_channels, size, size, generator=generator)


def _check_reload(
    model: TimeSformerForVideoClassification, folder: Path, tolerance: float = MAX_ABS_DIFF
) -> float:
    """Reload `folder` with `AutoModelForVideoClassification` and compare its logits with `model`'s."""
    reloaded = AutoModelForVideoClassification.from_pretrained(folder).eval()
    pixel_values = _reference_input(model.config)
    with torch.no_grad():
        expected, actual = model(pixel_values).logits, reloaded(pixel_values).logits
    max_abs_diff = (expected - actual).abs().max().item()
    if not max_abs_diff <= tolerance:
        raise CheckpointError(
            f"The saved repo does not reproduce the converted model: max abs logit difference {max_abs_diff:.3g} "
            f"> {tolerance:g}."
        )
    return max_abs_diff


@dataclass
class ConversionResult:
    """What [`convert_checkpoint`] made of one checkpoint."""

    name: str
    output_dir: Path | None = None
    config: TimeSformerConfig | None = None
    max_abs_diff: float | None = None
    error: str | None = None
    labels_are_placeholders: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


def convert_checkpoint(
    checkpoint: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    labels: str | os.PathLike | Mapping[int, str] | None = None,
    model_name: str | None = None,
    num_attention_heads: int | None = None,
    overwrite: bool = False,
    remote_code: bool = True,
    push_to_hub: str | None = None,
    private: bool = False,
    commit_message: str | None = None,
    channel_order: str = "auto",
) -> ConversionResult:
    """
    Convert one original `.pyth` checkpoint into a complete Hub repo folder, and optionally push it.

    The folder holds `config.json`, `model.safetensors`, `preprocessor_config.json`,
    `video_preprocessor_config.json`, `README.md` and, with `remote_code=True`, the modelling code and `auto_map`.
    It is written to a temporary folder, reloaded with `AutoModelForVideoClassification` and checked to reproduce
    the converted model's logits (max abs difference at most 1e-4), and only then moved to `output_dir`.

    Args:
        checkpoint: Path of the `.pyth` file.
        output_dir: Folder to create; an existing one that is not empty is only replaced with `overwrite=True`.
        labels: Class names (a mapping or a file for [`load_labels`]). Without them the dataset's names are
            downloaded from `huggingface/label-files` unless offline, else `LABEL_i` placeholders are written.
        model_name: Name for the model card; defaults to the checkpoint's file name.
        num_attention_heads: Head count (not stored in the weights); defaults to `hidden_size // 64`.
        overwrite: Replace an existing `output_dir` that is not empty.
        remote_code: Write the modelling code and `auto_map` into the repo.
        push_to_hub: Repo id to upload the folder to after the conversion.
        private: Create the Hub repo as private.
        commit_message: Message of the upload commit.
        channel_order: Channel order of the frames the checkpoint was trained on: `"rgb"`, `"bgr"` or `"auto"`
            (BGR for Something-Something-v2, whose original loader feeds OpenCV's BGR frames). A BGR model is
            converted to take RGB frames like every other repo, with the same numbers (see
            [`_accept_rgb_input`]).

    Example:

    ```python
    >>> convert_checkpoint("TimeSformer_divST_8_224_SSv2.pyth", "out/ssv2", push_to_hub="me/timesformer-ssv2")  # doctest: +SKIP
    ```
    """
    output_dir = Path(output_dir)
    check_output_dir(output_dir, overwrite=overwrite, written_by=("config.json",))
    if push_to_hub:
        check_hub_access(f"pushing to {push_to_hub}")
    original = load_original_checkpoint(checkpoint)
    config = infer_config(original.state_dict, original.cfg, num_attention_heads=num_attention_heads)
    dataset, dataset_is_known = _identify_dataset(original.name, original.cfg, config.num_labels)

    id2label = load_labels(labels) if isinstance(labels, (str, os.PathLike)) else labels
    id2label = id2label or _download_labels(dataset)
    placeholders = id2label is None
    if placeholders:
        logger.warning(
            f"No class names for {original.name}: writing LABEL_0..LABEL_{config.num_labels - 1}. "
            "Pass `labels=` (a file of class names) to name them."
        )
        id2label = {index: f"LABEL_{index}" for index in range(config.num_labels)}
    if len(id2label) != config.num_labels or set(id2label) != set(range(config.num_labels)):
        raise CheckpointError(
            f"Got {len(id2label)} labels for a head with {config.num_labels} classes: the label file must name "
            f"classes 0..{config.num_labels - 1}."
        )
    config.id2label = dict(sorted(id2label.items()))
    config.label2id = {label: index for index, label in config.id2label.items()}

    model = TimeSformerForVideoClassification(config).eval()
    _load_weights(model, original.state_dict)
    released = RELEASED_CHECKPOINTS.get(original.name)
    preprocessing = _preprocessing(config, original.cfg, dataset, released, channel_order, dataset_is_known)
    trained_on_bgr = preprocessing.channel_order == "bgr"
    processors = _build_processors(config, _accept_rgb_input(model, preprocessing))

    model_name = model_name or original.name
    eval_results = None
    if released is not None:
        eval_results = {"top1_accuracy": released.top1}
        if released.top5 is not None:
            eval_results["top5_accuracy"] = released.top5
    card = build_model_card(
        config,
        model_name=model_name,
        repo_id=push_to_hub,
        saved_to=output_dir,
        datasets=[dataset.hub_id] if dataset else (),
        dataset_name=dataset.name if dataset else None,
        eval_results=eval_results,
        converted_from=original.path.name,
        conversion_notes=_conversion_notes(released, trained_on_bgr, placeholders),
        remote_code=remote_code,
        license=LICENSE,
    )

    max_abs_diff: list[float] = []
    save_repo(
        model,
        processors,
        output_dir,
        overwrite=overwrite,
        remote_code=remote_code,
        model_card=card,
        check=lambda folder: max_abs_diff.append(_check_reload(model, folder)),
    )
    logger.info(
        f"Converted {original.name} to {output_dir} (max abs logit difference {max_abs_diff[0]:.2e})."
    )
    if push_to_hub:
        push_repo(
            output_dir,
            push_to_hub,
            private=private,
            commit_message=commit_message or f"Add {model_name} converted from {original.path.name}",
        )
    return ConversionResult(
        name=original.name,
        output_dir=output_dir,
        config=config,
        max_abs_diff=max_abs_diff[0],
        labels_are_placeholders=placeholders,
    )


def _conversion_notes(released: ReleasedCheckpoint | None, trained_on_bgr: bool, placeholders: bool) -> str:
    notes = [
        "The repo reloads with `AutoModelForVideoClassification` and reproduces the converted model's logits "
        f"(max abs difference at most {MAX_ABS_DIFF:g} in float32, checked at conversion).",
        "Preprocessing follows the original test-time pipeline: short side resized to the crop size, centre crop, "
        "RGB in [0, 1] normalised with the training mean and std.",
    ]
    if released is not None:
        notes.append(
            "Evaluation figures are those reported by the original release (3 spatial crops x 1 clip), not "
            "re-measured."
        )
    if trained_on_bgr:
        notes.append(
            "The original was trained on BGR frames (its Something-Something-v2 loader decodes with OpenCV and "
            "does not reorder channels for TimeSformer). The conversion reversed the input channels of the patch "
            "projection, and the order of the normalisation's mean and std, so this model takes RGB frames and "
            "gives the original's numbers."
        )
    if placeholders:
        notes.append("Class names were not available at conversion: labels are `LABEL_i` placeholders.")
    return "\n".join(f"- {note}" for note in notes)


def convert_directory(
    checkpoint_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    progress: Callable[[Iterable[Path]], Iterable[Path]] | None = None,
    **kwargs: Any,
) -> list[ConversionResult]:
    """
    Convert every `.pyth` file of `checkpoint_dir` into `output_dir/<file name>`; failures are recorded, not raised.

    Args:
        progress: Wraps the file list, e.g. `tqdm.tqdm`.
        kwargs: Passed to [`convert_checkpoint`] (a `push_to_hub` id gets `-<file name>` appended).

    Example:

    ```python
    >>> from tqdm import tqdm
    >>> results = convert_directory("checkpoints/", "converted/", progress=tqdm)  # doctest: +SKIP
    >>> print(format_summary(results))  # doctest: +SKIP
    ```
    """
    checkpoint_dir = Path(checkpoint_dir)
    if not checkpoint_dir.is_dir():
        raise CheckpointNotFoundError(
            f"{checkpoint_dir} is not a folder: `checkpoint_dir=` takes a folder of .pyth files."
        )
    paths = sorted(checkpoint_dir.glob("*.pyth"))
    if not paths:
        others = sorted(path.name for path in checkpoint_dir.iterdir())
        contents = (
            f"it holds {', '.join(others[:5])}{', ...' if len(others) > 5 else ''}"
            if others
            else "it is empty"
        )
        raise CheckpointNotFoundError(
            f"No .pyth files in {checkpoint_dir} ({contents}): `checkpoint_dir=` converts the original .pyth "
            "checkpoints of a folder; give another file as `checkpoint=`."
        )
    push_prefix = kwargs.pop("push_to_hub", None)
    results = []
    for path in progress(paths) if progress else paths:
        name = path.name.removesuffix(".pyth")
        push_to_hub = f"{push_prefix}-{name}" if push_prefix else None
        try:
            results.append(
                convert_checkpoint(path, Path(output_dir) / name, push_to_hub=push_to_hub, **kwargs)
            )
        except (CheckpointError, OSError, ValueError) as error:
            logger.error(f"{path.name}: {error}")
            results.append(ConversionResult(name=name, error=f"{type(error).__name__}: {error}"))
    return results


def format_summary(results: Iterable[ConversionResult]) -> str:
    """A Markdown table: name, frames, size, classes, attention, max abs diff, status."""
    rows = [
        "| name | frames | size | classes | attention | max abs diff | status |",
        "|---|---|---|---|---|---|---|",
    ]
    for result in results:
        config = result.config
        facts = (
            [str(config.num_frames), str(config.image_size), str(config.num_labels), config.attention_type]
            if config
            else ["-"] * 4
        )
        diff = f"{result.max_abs_diff:.1e}" if result.max_abs_diff is not None else "-"
        status = "ok" if result.ok else result.error.splitlines()[0][:120]
        rows.append("| " + " | ".join([result.name, *facts, diff, status]) + " |")
    return "\n".join(rows)

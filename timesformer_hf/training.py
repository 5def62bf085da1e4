"""Fine-tuning TimeSformer with `transformers.Trainer`: arguments, model set-up, metrics and the training run.

[`run_training`] is what `timesformer-hf train` runs. It works unchanged on one CPU, one GPU, and several GPUs or
nodes under `accelerate launch` or `torchrun` (DDP, FSDP): `Trainer` reads the distributed set-up from the
environment, and only the main process writes the final repo. Several CPU processes (DDP over gloo) need a launcher
that starts them: `accelerate launch --multi_gpu --num_processes 2 -m timesformer_hf.cli train ...` or `torchrun
--nproc_per_node 2 -m timesformer_hf.cli train ...` (`accelerate launch --cpu` starts a single process unless it is
given an MPI host file); `timesformer-hf train` then selects the CPU by itself.

Example:

```python
>>> from transformers import TrainingArguments
>>> from timesformer_hf.training import DataTrainingArguments, ModelArguments, run_training
>>> metrics = run_training(
...     ModelArguments(from_scratch=True, config_overrides="hidden_size=64,num_hidden_layers=2,num_attention_heads=4"),
...     DataTrainingArguments(train_dir="data/train", validation_dir="data/validation", num_frames=8),
...     TrainingArguments(output_dir="runs/tiny", num_train_epochs=3),
... )  # doctest: +SKIP
>>> metrics["eval_top1_accuracy"]  # doctest: +SKIP
```

A list whose rows hold several labels per video trains a multi-label model (`problem_type=
"multi_label_classification"`, a BCE loss, mAP and F1 metrics); `ModelArguments(model_name_or_path=..., lora_r=8)` fine-tunes LoRA adapters
and the classifier instead of every weight, and saves the merged model.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import json
import logging
import os
import shutil
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import evaluate
import numpy as np
import torch
import transformers
from datasets import Dataset, IterableDataset
from transformers import EvalPrediction, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints
from transformers.utils import logging as hf_logging

from .configuration_timesformer import TimeSformerConfig, to_pair
from .data import (
    MissingSplitError,
    VideoClipTransform,
    VideoSource,
    class_label,
    collate_videos,
    flip_swapped_labels,
    is_multi_label,
    is_regression,
    probe_videos,
    split_train_validation,
)
from .errors import InputError
from .evaluation import regression_metrics
from .extras import require
from .files import check_output_dir
from .hub import build_model_card, card_license, check_hub_access, push_repo, save_repo
from .image_processing_timesformer import TimeSformerImageProcessor, logits_to_scores
from .loading import check_model_repo, hub_errors
from .metrics import MULTI_LABEL, TOP_K_ACCURACY
from .modeling_timesformer import TimeSformerForVideoClassification
from .video import FRAME_SAMPLINGS, FrameSampler
from .video_processing_timesformer import TimeSformerVideoProcessor

logger = hf_logging.get_logger(__name__)

__all__ = [
    "LORA_TARGET_MODULES",
    "NO_WEIGHT_DECAY_PATTERNS",
    "DataTrainingArguments",
    "ModelArguments",
    "TimeSformerTrainer",
    "apply_lora",
    "build_compute_metrics",
    "checkpoint_problem",
    "last_complete_checkpoint",
    "load_model_and_processor",
    "resolve_horizontal_flip",
    "resolve_license",
    "run_training",
]

# Processing fields an image processor (for `transformers`' VideoMAE-style loaders) copies from the video processor.
_SHARED_FIELDS = (
    "do_resize",
    "size",
    "resample",
    "do_center_crop",
    "crop_size",
    "do_rescale",
    "rescale_factor",
    "do_normalize",
    "image_mean",
    "image_std",
)

# The shortest useful `timesformer-hf train` command, shown when the training videos are missing.
TRAIN_EXAMPLE = (
    "timesformer-hf train --train-dir data/train --validation-dir data/val --output-dir runs/mine "
    "--model-name-or-path facebook/timesformer-base-finetuned-k400 --num-train-epochs 5"
)

# Where a checkpoint is written before it is renamed to `checkpoint-N` (hidden from `get_last_checkpoint`).
CHECKPOINT_STAGING = ".checkpoint-being-saved"
MAX_FRAMES = 1024  # frames per clip: the time embeddings and attention grow with it
PROBLEM_TYPES = ("single_label_classification", "multi_label_classification", "regression")

# Parameters that get no weight decay besides biases and norms: the learned tokens and embeddings.
NO_WEIGHT_DECAY_PATTERNS = ("cls_token", "position_embeddings", "time_embeddings")

# LoRA's default targets (module name endings): the attention and MLP projections of every layer, spatial and
# temporal: `qkv`, the attention outputs and the MLP (`attention.output.dense`, `temporal_attention.output.dense`,
# `intermediate.dense`, `output.dense`) and the temporal projection `temporal_dense`.
LORA_TARGET_MODULES = ("qkv", "dense", "temporal_dense")


@dataclass
class ModelArguments:
    """Which model to start from: a TimeSformer repo (`model_name_or_path`), an image ViT to inflate
    (`init_from_image`), or random weights (`from_scratch=True`, the size from `config_overrides`)."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "A repo (folder or Hub id) of this package or a `transformers` TimeSformer repo."},
    )
    init_from_image: str | None = field(
        default=None,
        metadata={
            "help": "A `transformers` ViT repo to inflate into a divided space-time TimeSformer (from_vit)."
        },
    )
    from_scratch: bool = field(
        default=False,
        metadata={
            "help": "Start from random weights (a full-size model unless --config-overrides makes it smaller), "
            "without --model-name-or-path or --init-from-image."
        },
    )
    embedding_init_std: float | None = field(
        default=None,
        metadata={
            "help": "With --from-scratch: the standard deviation of the random position and time embeddings "
            "(default: the config's initializer_range, 0.02). 1.0 trains much faster on videos whose classes "
            "differ only in where things are, as in `make demo`."
        },
    )
    config_overrides: str | None = field(
        default=None,
        metadata={
            "help": "Config values to override, e.g. 'hidden_size=64,num_hidden_layers=2,attention_type=space_only'."
        },
    )
    revision: str = field(default="main", metadata={"help": "Branch, tag or commit of a Hub repo."})
    token: str | None = field(default=None, metadata={"help": "Hub token (default: the saved login)."})
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow code from the model repo to run."}
    )
    repo_dir: str | None = field(
        default=None,
        metadata={
            "help": "Where to write the final hub-ready repo (default: <output_dir>/model). An existing folder is "
            "replaced only when it is the default or holds a model repo (a config.json)."
        },
    )
    license: str | None = field(
        default=None,
        metadata={
            "help": "License id of the fine-tuned weights for the model card, e.g. apache-2.0 (default: the base "
            "model's, when its model card names one; none for a model trained from scratch)."
        },
    )
    lora_r: int | None = field(
        default=None,
        metadata={
            "help": "Fine-tune LoRA adapters of this rank (and the classifier) instead of every weight; needs peft "
            "(pip install 'timesformer-hf[peft]'). The final repo holds the merged model."
        },
    )
    lora_alpha: float = field(
        default=16, metadata={"help": "LoRA scaling numerator (the update is alpha/r)."}
    )
    lora_dropout: float = field(default=0.0, metadata={"help": "Dropout on the LoRA inputs."})
    lora_target_modules: list[str] | None = field(
        default=None,
        metadata={
            "help": f"Module name endings that get adapters (default: {' '.join(LORA_TARGET_MODULES)}: the "
            "attention and MLP projections, spatial and temporal)."
        },
    )
    save_adapter: bool = field(
        default=False,
        metadata={
            "help": "With --lora-r, also save the adapter alone (and the classifier) in <output_dir>/adapter."
        },
    )

    def __post_init__(self) -> None:
        starts = [name for name in ("model_name_or_path", "init_from_image") if getattr(self, name)]
        if self.from_scratch:
            starts.append("from_scratch")
        if not starts:
            raise InputError(
                "Training needs a model to start from: `model_name_or_path=` (a TimeSformer repo, e.g. a converted "
                "checkpoint) or `init_from_image=` (an image ViT to inflate); or `from_scratch=True` with "
                "`config_overrides=` for random weights."
            )
        if len(starts) > 1:
            raise InputError(
                f"Give one model to start from, not {' and '.join(f'`{name}=`' for name in starts)}."
            )
        if self.embedding_init_std is not None and not (self.from_scratch and self.embedding_init_std > 0):
            raise InputError(
                f"is the positive scale of random embeddings, with `from_scratch=True`; got {self.embedding_init_std}"
                f"{'' if self.from_scratch else ' without it'}.",
                argument="embedding_init_std",
            )
        if self.lora_r is not None and self.lora_r < 1:
            raise InputError(
                f"is the rank of the LoRA adapters, at least 1; got {self.lora_r}.", argument="lora_r"
            )
        if self.save_adapter and self.lora_r is None:
            raise InputError(
                "keeps the LoRA adapter: give `lora_r=` too (e.g. `lora_r=8`).", argument="save_adapter"
            )


@dataclass
class DataTrainingArguments:
    """Where the videos are and how clips are sampled and augmented."""

    train_dir: str | None = field(
        default=None, metadata={"help": "Training videos, one sub-folder per class."}
    )
    validation_dir: str | None = field(default=None, metadata={"help": "Validation videos, same layout."})
    train_file: str | None = field(
        default=None, metadata={"help": "CSV/JSON(L) list of training videos and labels."}
    )
    validation_file: str | None = field(
        default=None, metadata={"help": "CSV/JSON(L) list of validation videos."}
    )
    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "A `datasets` data set instead of folders or lists: a Hub id, or a local path `load_dataset` "
            "reads (videofolder, Parquet, WebDataset, Arrow files) or a `save_to_disk` folder."
        },
    )
    dataset_config_name: str | None = field(
        default=None, metadata={"help": "Configuration of the `datasets` data set."}
    )
    train_split_name: str = field(default="train", metadata={"help": "Training split of --dataset-name."})
    eval_split_name: str | None = field(
        default=None,
        metadata={
            "help": "Validation split of --dataset-name (default: 'validation' if it has one, else a held-out "
            "part of the training split, see --train-val-split)."
        },
    )
    video_column_name: str = field(
        default="video",
        metadata={
            "help": "Column of the videos (paths, a Video feature, or bytes) in a list file or data set.",
            "aliases": ["--video_column", "--video-column"],
        },
    )
    label_column_name: str = field(
        default="label",
        metadata={
            "help": "Column of the labels (a ClassLabel, names, ids, or lists of them) in a list file or data set.",
            "aliases": ["--label_column", "--label-column"],
        },
    )
    class_names: list[str] | None = field(
        default=None,
        metadata={
            "help": "Class names in id order, for labels given as ids or names without a ClassLabel (required "
            "with --streaming, whose labels are not read up front). (TrainingArguments' --label-names is another "
            "thing: the names of the label inputs.)"
        },
    )
    streaming: bool = field(
        default=False,
        metadata={
            "help": "Read --dataset-name as it trains (shards in turn, shuffled with a buffer), for data sets "
            "larger than the disk; give the training length with --max-steps."
        },
    )
    shuffle_buffer_size: int = field(
        default=1000,
        metadata={"help": "Videos held (undecoded, in memory) to shuffle a streamed training set."},
    )
    train_val_split: float = field(
        default=0.15,
        metadata={
            "help": "Fraction of every class held out for validation when no validation set is given (at least one "
            "video per class)."
        },
    )
    num_frames: int | None = field(default=None, metadata={"help": "Frames per clip (default: the model's)."})
    frame_sampling: str | None = field(
        default=None, metadata={"help": f"One of {FRAME_SAMPLINGS} (default: the processor's, 'kinetics')."}
    )
    sampling_rate: int | None = field(
        default=None, metadata={"help": "Frame spacing of Kinetics-style clips."}
    )
    horizontal_flip: bool | None = field(
        default=None,
        metadata={
            "help": "Flip half of the training clips (default: yes, as the original does for Kinetics, except with "
            "frame_sampling 'ssv2' and for classes that a flip swaps, 'left' and 'right' in their names); turn off "
            "for any data where direction matters."
        },
    )
    short_side_range: list[int] | None = field(
        default=None,
        metadata={
            "help": "Random short side range in training, e.g. 256 320 (default: that range scaled to the crop)."
        },
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Keep only this many training videos."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Keep only this many validation videos."}
    )
    probe_num_proc: int | None = field(default=None, metadata={"help": "Processes for probing the videos."})
    problem_type: str | None = field(
        default=None,
        metadata={
            "help": f"One of {PROBLEM_TYPES} (default: from the labels: several per video is multi-label, numbers "
            "with fractions are regression, anything else single-label). 'regression' reads integer labels as "
            "targets too."
        },
    )

    def __post_init__(self) -> None:
        sources = [name for name in ("train_dir", "train_file", "dataset_name") if getattr(self, name)]
        if not sources:
            raise InputError(
                "Training needs videos: `train_dir=` (a folder with one sub-folder of videos per class), "
                "`train_file=` (a CSV/JSON list of video,label rows) or `dataset_name=` (a `datasets` data set), "
                f"and `output_dir=` for the run, e.g. `{TRAIN_EXAMPLE}`."
            )
        if len(sources) > 1:
            raise InputError(f"Give one training set, not {' and '.join(f'`{name}=`' for name in sources)}.")
        if self.dataset_name and (self.validation_dir or self.validation_file):
            raise InputError(
                "With `dataset_name=` the validation set is a split of it (`eval_split_name=`), not "
                "`validation_dir=` or `validation_file=`."
            )
        if self.streaming and not self.dataset_name:
            raise InputError(
                "reads a `datasets` data set: give it with `dataset_name=`.", argument="streaming"
            )
        if self.frame_sampling is not None and self.frame_sampling not in FRAME_SAMPLINGS:
            raise InputError(
                f"must be one of {FRAME_SAMPLINGS}, got {self.frame_sampling!r}.", argument="frame_sampling"
            )
        for name in (
            "num_frames",
            "sampling_rate",
            "max_train_samples",
            "max_eval_samples",
            "probe_num_proc",
        ):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise InputError(f"must be at least 1, got {value}.", argument=name)
        if self.num_frames is not None and self.num_frames > MAX_FRAMES:
            raise InputError(
                f"{self.num_frames} is more than {MAX_FRAMES} frames per clip (the original's longest model takes "
                "96): choose fewer.",
                argument="num_frames",
            )
        if self.problem_type is not None and self.problem_type not in PROBLEM_TYPES:
            raise InputError(
                f"must be one of {PROBLEM_TYPES}, got {self.problem_type!r}.", argument="problem_type"
            )
        if self.short_side_range is not None and len(self.short_side_range) != 2:
            raise InputError(
                f"takes two sizes (low high), got {self.short_side_range}.", argument="short_side_range"
            )


class TimeSformerTrainer(Trainer):
    """`Trainer` without weight decay on biases, norms, the CLS token and the position and time embeddings, whose
    checkpoints are complete or absent (see `_save_checkpoint`)."""

    def _save_checkpoint(self, model: torch.nn.Module, trial: Any) -> None:
        """`Trainer`'s save, into a hidden staging folder renamed to `checkpoint-N` once every process wrote its
        part: a kill during a save leaves no `checkpoint-N` that looks complete (the next save clears the staging
        folder). Checkpoint rotation (`save_total_limit`) then runs on the real folders."""
        if trial is not None:  # hyperparameter search runs keep Trainer's own layout
            return super()._save_checkpoint(model, trial)
        run_dir = Path(self._get_output_dir(trial))
        staging = run_dir / CHECKPOINT_STAGING
        final = run_dir / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        if self.args.should_save:
            shutil.rmtree(staging, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        output_dir, self.args.output_dir = self.args.output_dir, str(staging)
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self.args.output_dir = output_dir
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            if final.exists():  # this step saved again (a run resumed from before it)
                shutil.rmtree(final)
            os.replace(staging / final.name, final)
            shutil.rmtree(staging, ignore_errors=True)
            best = self.state.best_model_checkpoint
            if best is not None and best.startswith(str(staging)):
                self.state.best_model_checkpoint = str(run_dir / Path(best).name)
                self.state.save_to_json(str(final / TRAINER_STATE_NAME))
            rotate_checkpoints(
                output_dir=str(run_dir),
                save_total_limit=self.args.save_total_limit,
                best_model_checkpoint=self.state.best_model_checkpoint,
                use_mtime=True,
            )
        self.accelerator.wait_for_everyone()

    def get_decay_parameter_names(self, model: torch.nn.Module) -> list[str]:
        return [
            name
            for name in super().get_decay_parameter_names(model)
            if not any(pattern in name for pattern in NO_WEIGHT_DECAY_PATTERNS)
        ]


def build_compute_metrics(
    k: tuple[int, ...] = (1, 5),
    num_labels: int | None = None,
    *,
    multi_label: bool = False,
    regression: bool = False,
    threshold: float = 0.5,
) -> Any:
    """`compute_metrics` for `Trainer`, with the metric modules shipped in the package (offline).

    Single-label: `top{k}_accuracy`; with `num_labels`, only the `k` below it are reported (top-5 of 5 classes is
    always 100%), and top-1 always. Multi-label: mAP (`map_macro`, `map_micro`) and, predicting the labels whose
    sigmoid probability is at least `threshold`, `f1_macro`, `f1_micro`, `precision_micro` and `recall_micro` (see
    `timesformer_hf.evaluation.multi_label_metrics`). Regression: `mse`, `mae` and `pearson_r` of the predicted values
    (see `timesformer_hf.evaluation.regression_metrics`).

    Example:

    ```python
    >>> compute_metrics = build_compute_metrics(num_labels=4)  # top-1 only
    >>> compute_metrics = build_compute_metrics(multi_label=True, threshold=0.5)  # mAP and F1
    ```
    """
    if regression:

        def compute_regression(prediction: EvalPrediction) -> dict[str, float]:
            return regression_metrics(_logits(prediction), prediction.label_ids)

        return compute_regression
    if multi_label:
        metric = evaluate.load(MULTI_LABEL)

        def compute_multi_label(prediction: EvalPrediction) -> dict[str, float]:
            logits = torch.from_numpy(np.asarray(_logits(prediction), dtype=np.float32))
            probabilities = logits_to_scores(logits, "multi_label_classification")
            return metric.compute(
                predictions=probabilities.numpy(), references=prediction.label_ids, threshold=threshold
            )

        return compute_multi_label
    k = tuple(value for value in k if value == 1 or num_labels is None or value < num_labels)
    metric = evaluate.load(TOP_K_ACCURACY)

    def compute_metrics(prediction: EvalPrediction) -> dict[str, float]:
        return metric.compute(predictions=_logits(prediction), references=prediction.label_ids, k=list(k))

    return compute_metrics


def _logits(prediction: EvalPrediction) -> np.ndarray:
    return prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions


def parse_config_overrides(overrides: str | None) -> dict[str, Any]:
    """`"hidden_size=64,attention_type=space_only"` -> `{"hidden_size": 64, "attention_type": "space_only"}`."""
    parsed = {}
    for item in filter(None, (overrides or "").split(",")):
        name, separator, value = item.partition("=")
        if not separator:
            raise InputError(f"Config override {item!r} is not of the form name=value.")
        try:
            parsed[name.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            parsed[name.strip()] = value.strip()
    return parsed


def _processor_for(config: TimeSformerConfig, **fields: Any) -> TimeSformerVideoProcessor:
    height, width = to_pair(config.image_size)
    return TimeSformerVideoProcessor(
        size={"shortest_edge": min(height, width)}, crop_size={"height": height, "width": width}, **fields
    )


def _vit_normalisation(path: str) -> dict[str, Any]:
    """The image mean and std of a ViT repo folder's image processor (e.g. 0.5/0.5), if it has one."""
    config_file = Path(path, "preprocessor_config.json")
    if not config_file.is_file():
        return {}
    config = json.loads(config_file.read_text())
    return {name: config[name] for name in ("image_mean", "image_std") if name in config}


def load_model_and_processor(
    model_args: ModelArguments,
    label_names: list[str],
    num_frames: int | None = None,
    *,
    multi_label: bool = False,
    regression: bool = False,
) -> tuple[TimeSformerForVideoClassification, TimeSformerVideoProcessor]:
    """The model to fine-tune, with a new head for `label_names`, and its video processor.

    `multi_label` sets `problem_type="multi_label_classification"` (a BCE loss on multi-hot targets, sigmoid
    probabilities at inference); `regression` a one-output head (`"regression"`: a mean-squared-error loss, the
    values as predictions; `label_names` then names that output, e.g. `["value"]`); otherwise
    `"single_label_classification"`, whatever the base model was.
    """
    problem_type = "single_label_classification"
    if multi_label or regression:
        problem_type = "regression" if regression else "multi_label_classification"
    labels = {  # num_labels follows from id2label
        "id2label": dict(enumerate(label_names)),
        "label2id": {name: i for i, name in enumerate(label_names)},
        "problem_type": problem_type,
    }
    overrides = parse_config_overrides(model_args.config_overrides)
    if num_frames is not None:
        overrides["num_frames"] = num_frames
    if model_args.init_from_image:
        model = TimeSformerForVideoClassification.from_vit(model_args.init_from_image, **overrides, **labels)
        return model, _processor_for(model.config, **_vit_normalisation(model_args.init_from_image))
    if model_args.from_scratch:
        config = TimeSformerConfig(**overrides, **labels)
        model = TimeSformerForVideoClassification(config)
        if model_args.embedding_init_std is not None:
            embeddings = model.timesformer.embeddings
            for name in ("position_embeddings", "time_embeddings"):  # no time embeddings when space-only
                if hasattr(embeddings, name):
                    torch.nn.init.normal_(getattr(embeddings, name), std=model_args.embedding_init_std)
        return model, _processor_for(config)
    hub_kwargs = {
        "revision": model_args.revision,
        "token": model_args.token,
        "trust_remote_code": model_args.trust_remote_code,
    }
    # Load at the pretrained shapes (only the head may change: a new label set), then resize the time and position
    # embeddings: loading with other shapes would re-initialise them.
    num_frames, image_size = overrides.pop("num_frames", None), overrides.pop("image_size", None)
    check_model_repo(
        model_args.model_name_or_path, None if model_args.revision == "main" else model_args.revision
    )
    with hub_errors(model_args.model_name_or_path):
        model, loading_info = TimeSformerForVideoClassification.from_pretrained(
            model_args.model_name_or_path,
            ignore_mismatched_sizes=True,
            output_loading_info=True,
            **hub_kwargs,
            **overrides,
            **labels,
        )
    mismatched = sorted(
        key for key, *_ in loading_info["mismatched_keys"] if not key.startswith("classifier.")
    )
    if mismatched:
        raise InputError(
            f"The weights {mismatched} of {model_args.model_name_or_path} do not fit the model's shapes: only the "
            "classifier may change when fine-tuning (check `config_overrides=`)."
        )
    resize_image = image_size is not None and to_pair(image_size) != to_pair(model.config.image_size)
    resize_frames = num_frames is not None and num_frames != model.config.num_frames
    if resize_image or resize_frames:
        model.resize_embeddings(
            num_frames=num_frames if resize_frames else None, image_size=image_size if resize_image else None
        )
    try:
        processor = TimeSformerVideoProcessor.from_pretrained(model_args.model_name_or_path, **hub_kwargs)
    except OSError:
        logger.warning(
            f"{model_args.model_name_or_path} has no processor: using the defaults for its config."
        )
        processor = _processor_for(model.config)
    if resize_image:
        height, width = to_pair(model.config.image_size)
        processor.size = {"shortest_edge": min(height, width)}
        processor.crop_size = {"height": height, "width": width}
    return model, processor


def apply_lora(model: TimeSformerForVideoClassification, model_args: ModelArguments) -> Any:
    """`model` wrapped with `peft` LoRA adapters (`model_args.lora_*`) on its attention and MLP projections, every
    other weight frozen except the classifier, which is trained in full. Logs the trainable parameter count.

    Example:

    ```python
    >>> peft_model = apply_lora(model, ModelArguments(model_name_or_path="runs/base", lora_r=8))  # doctest: +SKIP
    >>> merged = peft_model.merge_and_unload()  # a plain TimeSformerForVideoClassification again  # doctest: +SKIP
    ```
    """
    peft = require("peft", "LoRA fine-tuning (--lora-r)")
    config = peft.LoraConfig(
        r=model_args.lora_r,
        lora_alpha=model_args.lora_alpha,
        lora_dropout=model_args.lora_dropout,
        target_modules=list(model_args.lora_target_modules or LORA_TARGET_MODULES),
        modules_to_save=["classifier"],
    )
    model = peft.get_peft_model(model, config)
    trainable, total = model.get_nb_trainable_parameters()
    logger.info(
        f"LoRA r={model_args.lora_r}: {trainable:,} trainable parameters of {total:,} ({trainable / total:.2%}), "
        "the adapters and the classifier"
    )
    return model


def resolve_horizontal_flip(
    horizontal_flip: bool | None, sampler: FrameSampler, label_names: Sequence[str] = ()
) -> bool:
    """Whether training flips half of its clips: `horizontal_flip`, by default what the frame sampler allows (the
    original flips Kinetics but never Something-Something, whose classes depend on direction), and never for
    labels that a flip swaps ("left" and "right" in their names): off by default, refused when asked for."""
    swapped = flip_swapped_labels(label_names)
    if swapped and horizontal_flip:
        raise InputError(
            f"A horizontal flip turns the class {swapped[0][0]!r} into {swapped[0][1]!r}, so flipped clips would "
            "carry the wrong label: drop `horizontal_flip=True`.",
            argument="horizontal_flip",
        )
    if swapped and horizontal_flip is None:
        logger.warning(
            f"Not flipping training clips: a flip turns {swapped[0][0]!r} into {swapped[0][1]!r} "
            f"({len(swapped)} such pair(s) of classes)."
        )
        return False
    return sampler.allows_horizontal_flip if horizontal_flip is None else horizontal_flip


def resolve_license(model_args: ModelArguments) -> str | None:
    """`--license`, else the `license` of the base model's card (`README.md` of a folder or a Hub repo), else None.

    Example:

    ```python
    >>> resolve_license(ModelArguments(model_name_or_path="converted/timesformer-base-k400"))  # doctest: +SKIP
    'cc-by-nc-4.0'
    ```
    """
    base = model_args.model_name_or_path or model_args.init_from_image
    if model_args.license or base is None:
        return model_args.license
    try:
        return card_license(base, model_args.revision, model_args.token)
    except (OSError, ValueError) as error:
        logger.warning(
            f"Could not read the license of {base} from its model card ({error}): pass `license=`."
        )
        return None


def data_source(data_args: DataTrainingArguments, token: str | None = None) -> VideoSource:
    """The training videos' [`VideoSource`]: `--dataset-name`, `--train-dir` or `--train-file`."""
    columns = {
        "video_column_name": data_args.video_column_name,
        "label_column_name": data_args.label_column_name,
    }
    if data_args.dataset_name:
        return VideoSource.from_datasets(
            data_args.dataset_name,
            config_name=data_args.dataset_config_name,
            streaming=data_args.streaming,
            token=token,
            **columns,
        )
    return VideoSource.from_path(data_args.train_dir or data_args.train_file, **columns)


def _limit(dataset: Dataset | IterableDataset, count: int | None, seed: int) -> Dataset | IterableDataset:
    if count is None:
        return dataset
    if isinstance(dataset, IterableDataset):
        return dataset.take(count)
    return dataset.shuffle(seed=seed).select(range(min(count, len(dataset))))


def _label_settings(label_feature: Any) -> dict[str, Any]:
    """How to read other splits so that their labels match the training set's: its label names, or targets."""
    if is_regression(label_feature):
        return {"regression": True}
    return {"label_names": class_label(label_feature).names, "multi_label": is_multi_label(label_feature)}


def _validation(source: VideoSource, data_args: DataTrainingArguments, label_feature: Any) -> Any:
    """The validation set: a list or folder, or the eval split of a data set; `None` to hold one out."""
    settings = _label_settings(label_feature)
    if not is_regression(label_feature) and settings["multi_label"] and data_args.validation_dir:
        raise InputError(
            f"The training videos of {source.location} have several labels each (multi-label), which a folder of "
            "class sub-folders cannot hold: give the validation videos as a list, `validation_file=`."
        )
    validation_path = data_args.validation_dir or data_args.validation_file
    if validation_path:
        columns = {
            "video_column_name": source.video_column_name,
            "label_column_name": source.label_column_name,
        }
        return VideoSource.from_path(validation_path, **columns).load(**settings)
    if source.kind != "datasets":
        return None
    try:
        return source.load(data_args.eval_split_name or "validation", **settings)
    except MissingSplitError as error:
        if data_args.eval_split_name:
            raise MissingSplitError(error.message, argument="eval_split_name") from error
        if source.streaming:
            raise InputError(
                f"{error.message} A streamed data set is not split into training and validation: name its "
                "validation split with `eval_split_name=`."
            ) from error
        return None


def _load_splits(
    data_args: DataTrainingArguments, seed: int, token: str | None = None
) -> tuple[Dataset | IterableDataset, Dataset | IterableDataset]:
    source = data_source(data_args, token)
    problem_type = data_args.problem_type
    try:
        train = source.load(
            data_args.train_split_name,
            label_names=data_args.class_names,
            multi_label=True if problem_type == "multi_label_classification" else None,
            regression=None if problem_type is None else problem_type == "regression",
        )
    except MissingSplitError as error:
        raise MissingSplitError(error.message, argument="train_split_name") from error
    validation = _validation(source, data_args, train.features["label"])
    if validation is None:
        train, validation = split_train_validation(train, data_args.train_val_split, seed)
    train = _limit(train, data_args.max_train_samples, seed)
    validation = _limit(validation, data_args.max_eval_samples, seed)
    if source.streaming:  # decode errors are skipped (and counted) as the videos are read
        return train, validation
    return probe_videos(train, data_args.probe_num_proc), probe_videos(validation, data_args.probe_num_proc)


def _apply_transform(
    dataset: Dataset | IterableDataset, transform: VideoClipTransform
) -> Dataset | IterableDataset:
    """Decode and transform clips as rows are read: `set_transform`, or a lazy `map` for a streamed set."""
    if isinstance(dataset, IterableDataset):
        return dataset.map(transform, batched=True, batch_size=1, remove_columns=list(dataset.features))
    dataset.set_transform(transform)
    return dataset


def _trainer_arguments(
    data_args: DataTrainingArguments, training_args: TrainingArguments
) -> TrainingArguments:
    """A copy of `training_args` with what this package's data and saving need; the caller's stays as it was.

    The raw columns (video path, frame count) feed the transform, so `Trainer` must not drop them; every parameter
    takes part in the loss (no unused-parameter search in DDP); pinning needs an accelerator; the final repo is
    pushed by `run_training`, not by `Trainer` at every save. A streamed set has no length: the run's length is
    `--max-steps`, and each process reads its own shards.
    """
    trains = training_args.do_train or not training_args.do_eval or training_args.eval_strategy != "no"
    if trains and training_args.max_steps <= 0 and training_args.num_train_epochs <= 0:
        raise InputError(
            f"`num_train_epochs={training_args.num_train_epochs:g}` without `max_steps=` trains nothing: give a "
            "number of epochs (or of steps) above 0, or `do_eval=True` alone to only evaluate."
        )
    if data_args.streaming and training_args.max_steps <= 0:
        raise InputError(
            "`streaming=True` reads the data set as training goes, without knowing its length: give the training "
            "length in steps with `max_steps=` (instead of `num_train_epochs=`)."
        )
    arguments = copy.copy(training_args)
    arguments.remove_unused_columns = False
    if arguments.ddp_find_unused_parameters is None:
        arguments.ddp_find_unused_parameters = False
    arguments.dataloader_pin_memory = training_args.dataloader_pin_memory and torch.cuda.is_available()
    arguments.push_to_hub = False
    if data_args.streaming:
        # accelerate then gives each process its own shards of a `datasets.IterableDataset` (when there are at
        # least as many shards as processes; else each reads all and keeps its share), instead of the main process
        # reading every batch and sending it to the others
        arguments.accelerator_config = dataclasses.replace(
            training_args.accelerator_config, dispatch_batches=False
        )
    return arguments


def _setup_logging(training_args: TrainingArguments) -> None:
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    level = training_args.get_process_log_level()
    logger.setLevel(level)
    logging.getLogger("timesformer_hf").setLevel(level)
    datasets.utils.logging.set_verbosity(level)
    transformers.utils.logging.set_verbosity(level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()


def checkpoint_problem(folder: str | os.PathLike) -> str | None:
    """Why a `Trainer` checkpoint folder cannot be resumed from, or `None` when it is complete.

    A save cut short by a kill leaves the folder without `trainer_state.json` (written last), or with a truncated
    weight or optimizer file: the safetensors headers and the `torch.save` archives are checked (cheaply: their
    index, not every byte).
    """
    from safetensors import safe_open

    folder = Path(folder)
    try:
        json.loads((folder / TRAINER_STATE_NAME).read_text())
    except FileNotFoundError:
        return f"it has no {TRAINER_STATE_NAME} (its save was interrupted)"
    except ValueError:
        return f"its {TRAINER_STATE_NAME} is cut short"
    weights = sorted(folder.glob("*.safetensors"))
    if not weights and not any(folder.glob("*.bin")):
        return "it has no model weights"
    for path in weights:
        try:
            with safe_open(path, "pt"):
                pass
        except Exception as error:  # safetensors raises its own error type for damaged files
            return f"{path.name} is damaged ({error})"
    for path in sorted([*folder.glob("*.pt"), *folder.glob("*.pth"), *folder.glob("*.bin")]):
        if not zipfile.is_zipfile(path):
            return f"{path.name} is cut short"
    return None


def last_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest checkpoint of `output_dir` that is complete ([`checkpoint_problem`]); newer ones that are not are
    skipped with a warning that says why."""
    folder = Path(output_dir)
    steps = {}
    for path in folder.iterdir() if folder.is_dir() else ():
        name, _, step = path.name.rpartition("-")
        if path.is_dir() and name == PREFIX_CHECKPOINT_DIR and step.isdigit():
            steps[path] = int(step)
    for checkpoint in sorted(steps, key=steps.get, reverse=True):
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            return str(checkpoint)
        logger.warning(f"Skipping the checkpoint {checkpoint}: {problem}.")
    return None


def _resume_checkpoint(training_args: TrainingArguments) -> str | None:
    """The checkpoint to resume from: `--resume-from-checkpoint`, else the newest complete one in `output_dir`."""
    if training_args.resume_from_checkpoint is not None:
        return training_args.resume_from_checkpoint
    checkpoint = last_complete_checkpoint(training_args.output_dir)
    if checkpoint is not None:
        logger.warning(f"Resuming from {checkpoint}; use a new `output_dir=` to start over.")
    return checkpoint


def _model_card(
    model: TimeSformerForVideoClassification,
    model_args: ModelArguments,
    source: VideoSource,
    repo_name: str,
    eval_metrics: dict[str, float],
    *,
    repo_id: str | None,
    repo_dir: Path,
) -> Any:
    dataset_name = source.name
    base_model = model_args.model_name_or_path or model_args.init_from_image
    problem_type = model.config.problem_type
    if problem_type == "regression":
        results = {name: round(eval_metrics[f"eval_{name}"], 4) for name in ("mse", "mae", "pearson_r")}
        metrics_note = "Mean squared and absolute errors and Pearson's r of the predicted values."
    else:
        results = {
            name.removeprefix("eval_"): round(100 * value, 2)
            for name, value in eval_metrics.items()
            if name.endswith("accuracy") or name.startswith("eval_map_")
        }
        multi_label = problem_type == "multi_label_classification"
        metrics_note = "Mean average precision in percent." if multi_label else "Accuracies in percent."
    return build_model_card(
        model.config,
        model_name=repo_name,
        repo_id=repo_id,
        saved_to=repo_dir,
        base_model=base_model if base_model and not os.path.isdir(base_model) else None,
        datasets=[source.hub_id] if source.hub_id else (),
        dataset_name=dataset_name,
        eval_results=results or None,
        description=f"TimeSformer fine-tuned on {dataset_name} with `timesformer-hf train`. {metrics_note}",
        license=resolve_license(model_args),
    )


def _configured_processor(
    processor: TimeSformerVideoProcessor, config: TimeSformerConfig, data_args: DataTrainingArguments
) -> TimeSformerVideoProcessor:
    """A copy of `processor` sampling the model's frame count with the sampling options of `data_args`."""
    processor = copy.deepcopy(processor)
    processor.num_frames = config.num_frames
    if data_args.frame_sampling is not None:
        processor.frame_sampling = data_args.frame_sampling
    if data_args.sampling_rate is not None:
        processor.sampling_rate = data_args.sampling_rate
    return processor


def _clip_datasets(
    train_set: Dataset | IterableDataset,
    eval_set: Dataset | IterableDataset,
    processor: TimeSformerVideoProcessor,
    data_args: DataTrainingArguments,
    training_args: TrainingArguments,
    num_labels: int | None,
    horizontal_flip: bool,
) -> tuple[Dataset | IterableDataset, Dataset | IterableDataset]:
    """The two sets decoded and transformed into clips as they are read (augmented for training); `num_labels`
    turns multi-label targets into multi-hot vectors."""
    if data_args.streaming:
        world_size = training_args.world_size
        # the source's shards (datasets 5.0's buffer shuffle reports one, and processes then take every N-th video)
        logger.info(
            f"Streaming {data_args.dataset_name}: {train_set.n_shards} training shards for {world_size} process(es)"
        )
        train_set = train_set.shuffle(seed=training_args.seed, buffer_size=data_args.shuffle_buffer_size)
    short_side_range = tuple(data_args.short_side_range) if data_args.short_side_range else None
    train_transform = VideoClipTransform(
        processor,
        training=True,
        horizontal_flip=horizontal_flip,
        short_side_range=short_side_range,
        num_labels=num_labels,
    )
    eval_transform = VideoClipTransform(processor, training=False, num_labels=num_labels)
    return _apply_transform(train_set, train_transform), _apply_transform(eval_set, eval_transform)


def _train_and_evaluate(
    trainer: Trainer, training_args: TrainingArguments, checkpoint: str | None, lora: bool
) -> dict[str, Any]:
    """Train (resuming from `checkpoint`) unless only evaluation is asked for, then evaluate; log and save both."""
    # `--do-eval` alone only evaluates; an eval strategy (which sets do_eval too) evaluates while training
    if training_args.do_train or not training_args.do_eval or training_args.eval_strategy != "no":
        result = trainer.train(resume_from_checkpoint=checkpoint)
        if lora:
            trainable, total = trainer.model.get_nb_trainable_parameters()
            result.metrics.update(trainable_parameters=trainable, total_parameters=total)
        trainer.log_metrics("train", result.metrics)
        trainer.save_metrics("train", result.metrics)
        trainer.save_state()
    eval_metrics = trainer.evaluate()
    trainer.log_metrics("eval", eval_metrics)
    trainer.save_metrics("eval", eval_metrics)
    return eval_metrics


def _repo_name(training_args: TrainingArguments, repo_dir: Path) -> str:
    """The final repo's name: `hub_model_id` (its Hub id too), else its folder's (the run's for `<run>/model`)."""
    name = training_args.hub_model_id or repo_dir.resolve().name
    return Path(training_args.output_dir).resolve().name if name == "model" else name


def _save_final_repo(
    trainer: Trainer,
    processor: TimeSformerVideoProcessor,
    model_args: ModelArguments,
    data_args: DataTrainingArguments,
    training_args: TrainingArguments,
    repo_dir: Path,
    eval_metrics: dict[str, Any],
) -> None:
    """The hub-ready repo (the merged model for LoRA, both processors, a model card) in `repo_dir`, pushed with
    `--push-to-hub`; the LoRA adapter alone in `<output_dir>/adapter` with `--save-adapter`."""
    repo_name = _repo_name(training_args, repo_dir)
    model = trainer.accelerator.unwrap_model(trainer.model)
    if model_args.lora_r is not None:
        if model_args.save_adapter:
            model.save_pretrained(Path(training_args.output_dir, "adapter"))
            logger.info(f"Saved the LoRA adapter to {Path(training_args.output_dir, 'adapter')}")
        model = model.merge_and_unload()  # the plain model: classify, export, remote code as usual
    image_processor = TimeSformerImageProcessor(**{name: getattr(processor, name) for name in _SHARED_FIELDS})
    repo_id = repo_name if training_args.push_to_hub else None
    card = _model_card(
        model, model_args, data_source(data_args), repo_name, eval_metrics, repo_id=repo_id, repo_dir=repo_dir
    )
    save_repo(model, [image_processor, processor], repo_dir, overwrite=True, model_card=card)
    logger.info(f"Saved the fine-tuned repo to {repo_dir}")
    if repo_id is not None:
        push_repo(repo_dir, repo_id, token=training_args.hub_token)


def run_training(
    model_args: ModelArguments,
    data_args: DataTrainingArguments,
    training_args: TrainingArguments,
    callbacks: list[TrainerCallback] | None = None,
) -> dict[str, float]:
    """Fine-tune, evaluate, and save (and push) a hub-ready repo; return the final evaluation metrics.

    A run whose `output_dir` holds checkpoints resumes from the last one. `callbacks` are passed to `Trainer`. The
    arguments are not changed (the `Trainer` runs with a copy of `training_args`).
    """
    # 1. logging, the final repo's folder, the checkpoint to resume from
    _setup_logging(training_args)
    repo_dir = Path(model_args.repo_dir or Path(training_args.output_dir, "model"))
    # replaced at the end only if it is a model repo (an earlier run's): refused now, before any training
    check_output_dir(repo_dir, overwrite=True, written_by=("config.json",))
    if training_args.push_to_hub and training_args.process_index == 0:  # the upload after training must work
        check_hub_access(f"pushing to {_repo_name(training_args, repo_dir)}", training_args.hub_token)
    logger.info(
        f"Process rank: {training_args.process_index}, world size: {training_args.world_size}, "
        f"device: {training_args.device}, distributed training: {training_args.parallel_mode.value != 'not_parallel'}"
    )
    logger.info(f"Training arguments {training_args}")
    checkpoint = _resume_checkpoint(training_args)
    transformers.set_seed(training_args.seed)
    trainer_args = _trainer_arguments(data_args, training_args)

    # 2. the data: labels (or targets) of the training set decide the model's task
    train_set, eval_set = _load_splits(data_args, training_args.seed, model_args.token)
    label_feature = train_set.features["label"]
    regression, multi_label = is_regression(label_feature), is_multi_label(label_feature)
    label_names = [data_args.label_column_name] if regression else class_label(label_feature).names

    # 3. the model, its processor, and clips made as that processor says
    model, processor = load_model_and_processor(
        model_args, label_names, data_args.num_frames, multi_label=multi_label, regression=regression
    )
    processor = _configured_processor(processor, model.config, data_args)
    num_labels = len(label_names) if multi_label else None  # multi-hot targets
    flip = resolve_horizontal_flip(
        data_args.horizontal_flip, processor.frame_sampler, [] if regression else label_names
    )
    train_set, eval_set = _clip_datasets(
        train_set, eval_set, processor, data_args, training_args, num_labels, flip
    )
    if model_args.lora_r is not None:
        model = apply_lora(model, model_args)

    # 4. train and evaluate
    with trainer_args.main_process_first(desc="loading the metric"):
        compute_metrics = build_compute_metrics(
            num_labels=len(label_names), multi_label=multi_label, regression=regression
        )
    trainer = TimeSformerTrainer(
        model=model,
        args=trainer_args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        data_collator=collate_videos,
        compute_metrics=compute_metrics,
        processing_class=processor,
        callbacks=callbacks,
    )
    eval_metrics = _train_and_evaluate(trainer, trainer_args, checkpoint, lora=model_args.lora_r is not None)

    # 5. the hub-ready repo, written (and pushed) by the main process
    if trainer.is_world_process_zero():
        _save_final_repo(trainer, processor, model_args, data_args, training_args, repo_dir, eval_metrics)
    trainer.accelerator.wait_for_everyone()
    return {name: float(value) for name, value in eval_metrics.items() if np.isscalar(value)}

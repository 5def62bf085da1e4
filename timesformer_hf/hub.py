"""Hugging Face Hub helpers: model cards, atomic repo folders and uploads.

A repo folder holds the model (`config.json`, `model.safetensors`), its processors, a `README.md` model card and,
unless turned off, the modelling code with an `auto_map` so that `trust_remote_code=True` loads it without this
package.

Example:

```python
>>> from timesformer_hf.hub import build_model_card, push_repo, save_repo
>>> card = build_model_card(
...     model.config,
...     model_name="timesformer-base-k400",
...     datasets=["kinetics-400"],
...     dataset_name="Kinetics-400",
...     eval_results={"top1_accuracy": 77.9, "top5_accuracy": 93.2},
... )  # doctest: +SKIP
>>> folder = save_repo(model, [video_processor], "out/timesformer-base-k400", model_card=card)  # doctest: +SKIP
>>> push_repo(folder, "me/timesformer-base-k400", private=True)  # doctest: +SKIP
```
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from huggingface_hub import CommitInfo, HfApi, ModelCard, ModelCardData, hf_hub_download
from huggingface_hub import constants as hub_constants
from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError
from huggingface_hub.repocard_data import EvalResult
from transformers.utils import logging

from .configuration_timesformer import TimeSformerConfig, is_multi_label_model, to_pair
from .errors import InputError
from .files import WriteLock, apply_umask, check_output_dir, make_staging_dir, remove_leftovers, replace_dir

logger = logging.get_logger(__name__)

__all__ = [
    "LIBRARY_NAME",
    "LICENSE",
    "TIMESFORMER_CITATION",
    "build_model_card",
    "card_license",
    "check_hub_access",
    "hub_unreachable",
    "push_repo",
    "save_repo",
    "without_remote_code",
]

LICENSE = "cc-by-nc-4.0"  # the original release's weights, and so every repo converted from them
LIBRARY_NAME = "transformers"
PIPELINE_TAG = "video-classification"
PAPER_URL = "https://arxiv.org/abs/2102.05095"
ORIGINAL_REPO_URL = "https://github.com/facebookresearch/TimeSformer"

TIMESFORMER_CITATION = """\
@inproceedings{bertasius2021space,
  title     = {Is Space-Time Attention All You Need for Video Understanding?},
  author    = {Bertasius, Gedas and Wang, Heng and Torresani, Lorenzo},
  booktitle = {Proceedings of the International Conference on Machine Learning (ICML)},
  month     = {July},
  year      = {2021}
}"""

# Readable names for the usual metric keys; other keys are shown as given.
_METRIC_NAMES = {
    "accuracy": "Accuracy",
    "top1_accuracy": "Top-1 accuracy",
    "top5_accuracy": "Top-5 accuracy",
    "map_macro": "mAP (macro)",
    "map_micro": "mAP (micro)",
    "loss": "Loss",
    "mse": "Mean squared error",
    "mae": "Mean absolute error",
    "pearson_r": "Pearson's r",
}

_UNSET = object()

_ATTENTION_NAMES = {
    "divided_space_time": "divided space-time",
    "joint_space_time": "joint space-time",
    "space_only": "space-only",
}


_PREDICTIONS = {
    "multi_label_classification": (
        "# multi-label: every label whose sigmoid probability is at least 0.5\n"
        "print([model.config.id2label[i] for i in (logits[0].sigmoid() >= 0.5).nonzero().flatten().tolist()])\n"
    ),
    "regression": "# regression: the predicted value\nprint(logits[0, 0].item())\n",
}


def _usage_snippet(
    repo_id: str, remote_code: bool, is_local: bool = False, problem_type: str | None = None
) -> str:
    prediction = _PREDICTIONS.get(problem_type, "print(model.config.id2label[logits.argmax(-1).item()])\n")
    snippet = (
        "```python\n"
        "import torch\n"
        "from transformers import AutoModelForVideoClassification\n\n"
        "import timesformer_hf  # registers TimeSformer with the transformers Auto classes\n"
        "from timesformer_hf import TimeSformerVideoProcessor\n\n"
        f'processor = TimeSformerVideoProcessor.from_pretrained("{repo_id}")\n'
        f'model = AutoModelForVideoClassification.from_pretrained("{repo_id}")\n\n'
        "# decodes the video and samples frames as the original did at test time\n"
        'inputs = processor("video.mp4", do_sample_frames=True, return_tensors="pt")\n'
        "with torch.no_grad():\n"
        "    logits = model(**inputs).logits\n" + prediction + "```"
    )
    if remote_code:
        snippet += (
            "\n\nThe repo also carries its modelling and processing code, so where `timesformer_hf` is not "
            "installed the `transformers` Auto classes load it with `trust_remote_code=True`, e.g. "
            f'`AutoModelForVideoClassification.from_pretrained("{repo_id}", trust_remote_code=True)`.'
        )
    if is_local:
        snippet += (
            f"\n\n`{repo_id}` is the local folder this repo was written to (relative to where the command that "
            "wrote it ran); once the repo is on the Hub, load it by its id (`user/name`) instead."
        )
    return snippet


def _web_demo(location: str, is_local: bool) -> str:
    """How to try the model in a browser and share it as a Space."""
    include = " --include-model" if is_local else ""
    return (
        "## Web demo\n\n"
        "```bash\n"
        "pip install 'timesformer-hf[app]'\n"
        f"timesformer-hf app {location}                      # a page: classify, explain, search (with --index)\n"
        f"timesformer-hf space {location} my-space{include} --push user/my-space   # the same as a Hugging Face Space\n"
        "```"
    )


def _eval_results(
    eval_results: Mapping[str, float], *, dataset_name: str, dataset_type: str, split: str | None
) -> list[EvalResult]:
    return [
        EvalResult(
            task_type=PIPELINE_TAG,
            task_name="Video Classification",
            dataset_type=dataset_type,
            dataset_name=dataset_name,
            dataset_split=split,
            metric_type=metric,
            metric_name=_METRIC_NAMES.get(metric, metric),
            metric_value=value,
        )
        for metric, value in eval_results.items()
    ]


def _results_table(eval_results: Mapping[str, float], dataset_name: str) -> str:
    rows = [
        f"| {dataset_name} | {_METRIC_NAMES.get(metric, metric)} | {value} |"
        for metric, value in eval_results.items()
    ]
    return "\n".join(["| dataset | metric | value |", "|---|---|---|", *rows])


def build_model_card(
    config: TimeSformerConfig,
    *,
    model_name: str,
    repo_id: str | None = None,
    saved_to: str | os.PathLike | None = None,
    base_model: str | None = None,
    datasets: Sequence[str] = (),
    dataset_name: str | None = None,
    eval_results: Mapping[str, float] | None = None,
    eval_split: str | None = "validation",
    description: str | None = None,
    converted_from: str | None = None,
    conversion_notes: str | None = None,
    tags: Sequence[str] = (),
    remote_code: bool = True,
    license: str | None = None,
    library_name: str = LIBRARY_NAME,
    pipeline_tag: str = PIPELINE_TAG,
    usage: str | None = None,
    sections: Sequence[str] = (),
) -> ModelCard:
    """
    Build a `README.md` model card with Hub metadata for a TimeSformer repo.

    Args:
        config: The model's config; architecture facts (frames, size, attention, classes) are read from it.
        model_name: Name of the model, used as the card title and the `model-index` name.
        repo_id: Hub id used in the usage snippet, for a repo that is (or will be) pushed.
        saved_to: Without `repo_id`: the local folder the repo is saved to, used in the usage snippet with a note
            that it is a local path. Without either the snippet names `model_name`.
        base_model: Hub id of the model this one was fine-tuned from, if any.
        datasets: Hub dataset ids (or names) the model was trained on, for the `datasets` metadata.
        dataset_name: Readable name of the evaluation dataset; defaults to the first of `datasets`.
        eval_results: Metric key to value, e.g. `{"top1_accuracy": 77.9, "top5_accuracy": 93.2}`; written to the
            `model-index` and to a results table. Keys outside `accuracy`, `top1_accuracy`, `top5_accuracy`, `loss`
            are used as given.
        eval_split: Split the results were measured on.
        description: Free text placed under the title.
        converted_from: Name of the original checkpoint the weights come from, for a "Conversion" section.
        conversion_notes: Extra Markdown for the "Conversion" section (e.g. the measured logit difference).
        tags: Extra tags; `video-classification`, `timesformer` and `vision` are always present.
        remote_code: Whether the repo carries its modelling code (changes the usage snippet).
        license: License id of the weights, e.g. `LICENSE` (CC BY-NC 4.0) for weights converted from the original
            release; `None` leaves it unset.
        library_name, pipeline_tag: The Hub's library and task of the repo (an ONNX export's differ).
        usage: Markdown of the "How to use" section (default: loading the repo with `transformers`).
        sections: More Markdown sections (each with its `## ` title), placed before the citation.

    Returns:
        A `huggingface_hub.ModelCard`; `card.save("README.md")` writes it.

    Example:

    ```python
    >>> from timesformer_hf import TimeSformerConfig
    >>> from timesformer_hf.hub import build_model_card
    >>> card = build_model_card(
    ...     TimeSformerConfig(num_labels=400),
    ...     model_name="timesformer-base-k400",
    ...     datasets=["kinetics-400"],
    ...     eval_results={"top1_accuracy": 77.9},
    ...     license="cc-by-nc-4.0",
    ... )
    >>> card.data.license, card.data.pipeline_tag
    ('cc-by-nc-4.0', 'video-classification')
    ```
    """
    if eval_results and not (dataset_name or datasets):
        raise InputError("eval_results need a dataset: pass dataset_name= or datasets=.")
    dataset_name = dataset_name or (datasets[0] if datasets else None)
    all_tags = list(dict.fromkeys(["video-classification", "timesformer", "vision", *tags]))
    card_data = ModelCardData(
        license=license,
        library_name=library_name,
        pipeline_tag=pipeline_tag,
        tags=all_tags,
        datasets=list(datasets) or None,
        base_model=base_model,
        model_name=model_name if eval_results else None,
        eval_results=(
            _eval_results(
                eval_results,
                dataset_name=dataset_name,
                dataset_type=datasets[0] if datasets else dataset_name,
                split=eval_split,
            )
            if eval_results
            else None
        ),
    )

    location = repo_id or (os.fspath(saved_to) if saved_to is not None else model_name)
    height, width = to_pair(config.image_size)
    num_labels = len(config.id2label) if config.id2label else config.num_labels
    problem_type = getattr(config, "problem_type", None)
    task = f"- Classes: {num_labels}" + (
        " (multi-label: sigmoid scores)" if is_multi_label_model(config) else ""
    )
    if problem_type == "regression":
        task = f"- Task: regression, {num_labels} predicted value(s) per video (mean squared error loss)"
    body = [
        f"# {model_name}",
        description
        or (
            f"TimeSformer ([Bertasius et al., 2021]({PAPER_URL})), a video transformer with "
            f"{_ATTENTION_NAMES[config.attention_type]} attention."
        ),
        "## Model details\n\n"
        f"- Architecture: TimeSformer, {_ATTENTION_NAMES[config.attention_type]} attention, "
        f"{config.num_hidden_layers} layers, hidden size {config.hidden_size}, {config.num_attention_heads} heads, "
        f"patch size {config.patch_size}\n"
        f"- Input: {config.num_frames} frames of {height}x{width}\n"
        + task
        + (f"\n- License: {license}" if license else ""),
        "## How to use\n\n"
        + (
            usage
            or _usage_snippet(
                location,
                remote_code,
                is_local=repo_id is None and saved_to is not None,
                problem_type=problem_type,
            )
        ),
    ]
    if usage is None:
        body.append(_web_demo(location, is_local=repo_id is None and saved_to is not None))
    if eval_results:
        body.append("## Evaluation results\n\n" + _results_table(eval_results, dataset_name))
    if converted_from:
        conversion = (
            f"Converted from the original checkpoint `{converted_from}` ({ORIGINAL_REPO_URL}) with "
            "`timesformer-hf convert` (`convert/convert_original_checkpoint.py`): the weights are renamed to the "
            "`transformers` TimeSformer layout, their values unchanged unless a note below says otherwise."
        )
        body.append(
            "## Conversion\n\n" + conversion + (f"\n\n{conversion_notes}" if conversion_notes else "")
        )
    body.extend(sections)
    body.append(f"## Citation\n\n```bibtex\n{TIMESFORMER_CITATION}\n```")
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n" + "\n\n".join(body) + "\n")


@contextlib.contextmanager
def without_remote_code(*objects: Any) -> Iterator[None]:
    """
    Within the block, save the given models, configs and processors without code files or `auto_map`.

    Classes registered with `register_for_auto_class()` copy their code into every folder they are saved to, and
    `transformers` asks the class (`is_remote_code()`), not the instance. This clears the registration on the classes
    of these objects (and of a model's config) and drops the `auto_map` of the instances, then restores both. The
    classes are shared, so do not save other instances of them from another thread inside the block.

    Example:

    ```python
    >>> with without_remote_code(model, processor):  # doctest: +SKIP
    ...     model.save_pretrained("out")
    ...     processor.save_pretrained("out")
    ```
    """
    instances = list(objects) + [obj.config for obj in objects if hasattr(obj, "config")]
    classes = list(dict.fromkeys(type(instance) for instance in instances))
    saved_classes = [(cls, cls.__dict__.get("_auto_class", _UNSET)) for cls in classes]
    saved_maps = [(instance, instance.__dict__.pop("auto_map", _UNSET)) for instance in instances]
    for cls in classes:
        cls._auto_class = None
    try:
        yield
    finally:
        for cls, value in saved_classes:
            if value is _UNSET:
                del cls._auto_class
            else:
                cls._auto_class = value
        for instance, value in saved_maps:
            if value is not _UNSET:
                instance.__dict__["auto_map"] = value


def save_repo(
    model: Any,
    processors: Iterable[Any],
    output_dir: str | os.PathLike,
    *,
    overwrite: bool = False,
    remote_code: bool = True,
    model_card: ModelCard | None = None,
    check: Callable[[Path], Any] | None = None,
) -> Path:
    """
    Write a complete repo folder atomically: into a temporary folder beside `output_dir`, then renamed into place.

    Nothing is left behind when a step fails, and an existing folder is only replaced with `overwrite=True` (an empty
    one is always).

    Args:
        model: A `PreTrainedModel` (its config is saved with it).
        processors: Objects with `save_pretrained` (image processor, video processor), saved into the same folder.
        output_dir: Target folder.
        overwrite: Replace `output_dir` when it exists and is not empty.
        remote_code: Keep the code files and `auto_map` of classes registered for the Auto classes; `False` writes
            a repo that loads only where `timesformer_hf` is imported.
        model_card: Written as `README.md` when given.
        check: Called with the finished temporary folder before it is moved into place (e.g. to reload it and
            compare outputs); an exception aborts the save and leaves nothing behind.

    Returns:
        The path of the finished folder.

    Example:

    ```python
    >>> save_repo(model, [image_processor, video_processor], "out/repo", remote_code=False)  # doctest: +SKIP
    PosixPath('out/repo')
    ```
    """
    output_dir = Path(output_dir)
    check_output_dir(output_dir, overwrite=overwrite, written_by=("config.json",))
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    processors = list(processors)
    with WriteLock(output_dir):
        remove_leftovers(output_dir)  # an interrupted save's staging folder
        staging = make_staging_dir(output_dir)
        try:
            with contextlib.nullcontext() if remote_code else without_remote_code(model, *processors):
                model.save_pretrained(staging)
                for processor in processors:
                    processor.save_pretrained(staging)
            if model_card is not None:
                model_card.save(staging / "README.md")
            apply_umask(staging)  # safetensors writes its files 0600
            if check is not None:
                check(staging)
            replace_dir(staging, output_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    logger.info(f"Saved {output_dir}")
    return output_dir


def card_license(
    repo: str | os.PathLike, revision: str | None = None, token: str | None = None
) -> str | None:
    """The `license` of a repo's model card (`README.md` of a folder or a Hub repo); None without a card or one.
    Raises `OSError` or `ValueError` when the card cannot be read."""
    if os.path.isdir(repo):
        card = Path(repo, "README.md")
        if not card.is_file():
            return None
    else:
        card = hf_hub_download(os.fspath(repo), "README.md", revision=revision, token=token)
    return ModelCard.load(card, ignore_metadata_errors=True).data.license


def hub_unreachable(timeout: float = 5.0) -> str | None:
    """Why the Hub cannot be reached from here, at once (`HF_HUB_OFFLINE`, no network), or None when it can."""
    if hub_constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    endpoint = urlsplit(hub_constants.ENDPOINT)
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((endpoint.hostname, port), timeout=timeout).close()
    except OSError as error:
        return f"{endpoint.hostname} cannot be reached ({error.strerror or error})"
    return None


def check_hub_access(action: str, token: str | None = None) -> None:
    """Refuse at once, before any long work, an `action` that ends by writing to the Hub (`"pushing to
    me/model"`) where it cannot: the Hub out of reach, or no login."""
    reason = hub_unreachable()
    if reason is not None:
        raise InputError(
            f"{action.capitalize()} needs the Hub, but {reason}: connect, or drop `push_to_hub=`."
        )
    try:
        HfApi(token=token).whoami()
    except (LocalTokenNotFoundError, HfHubHTTPError) as error:
        raise InputError(
            f"{action.capitalize()} needs a Hub login ({' '.join(str(error).split())[:120]}): run `hf auth "
            "login`, or pass a token."
        ) from error


def push_repo(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    commit_message: str = "Upload TimeSformer",
    token: str | None = None,
    revision: str | None = None,
    repo_type: str = "model",
) -> CommitInfo:
    """
    Create the model repo `repo_id` (or, with `repo_type="space"`, a Gradio Space) if needed and upload `folder` to
    it in a single commit.

    Example:

    ```python
    >>> push_repo("out/timesformer-base-k400", "me/timesformer-base-k400", private=True)  # doctest: +SKIP
    ```
    """
    folder = Path(folder)
    expected = {"model": ("config.json", "save_repo"), "space": ("app.py", "write_space")}[repo_type]
    if not (folder / expected[0]).is_file():
        raise FileNotFoundError(
            f"{folder} is not a saved {repo_type} (no {expected[0]}): run {expected[1]} first."
        )
    api = HfApi(token=token)
    space = {"space_sdk": "gradio"} if repo_type == "space" else {}
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True, **space)
    commit = api.upload_folder(
        folder_path=folder,
        repo_id=repo_id,
        repo_type=repo_type,
        commit_message=commit_message,
        revision=revision,
    )
    logger.info(f"Pushed {folder} to {repo_id}: {commit.commit_url}")
    return commit

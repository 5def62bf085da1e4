"""Finding and checking a model repo before it loads: a local folder or a Hub id, its config and its weights.

Every command and `load_model` go through [`check_model_repo`] first, so that a bad repo is one sentence that names
the problem and the fix, at once: a path that does not exist (not minutes of Hub retries), a revision given with a
local folder, a config of another architecture or with impossible sizes, damaged weights, a classifier whose size
differs from `id2label`. [`hub_errors`] turns what `transformers` and `huggingface_hub` raise when a Hub repo cannot
be had into the same kind of sentence, "not found" apart from "offline". [`model_fingerprint`] identifies the weights
a resumed job was started with.

Example:

```python
>>> check_model_repo("./runs/mdoel")  # doctest: +SKIP
FileNotFoundError: [Errno 2] No such folder: './runs/mdoel'
```
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Iterator
from pathlib import Path

from .configuration_timesformer import COMPATIBLE_MODEL_TYPES, TimeSformerConfig
from .errors import InputError
from .files import files_digest

__all__ = [
    "MODEL_FILES",
    "check_model_repo",
    "hub_errors",
    "load_config",
    "looks_like_path",
    "model_fingerprint",
]

# What a model folder's results depend on: weights (PyTorch, ONNX), config and processor settings.
MODEL_FILES = ("*.safetensors", "*.bin", "*.onnx", "*.onnx.data", "*.json")


def looks_like_path(name: str) -> bool:
    """Whether a model argument is meant as a local path rather than a Hub id (`namespace/name`): it starts with
    `./`, `../`, `/` or `~`, has more than one `/`, or its first part is a local folder.

    Example:

    ```python
    >>> looks_like_path("./runs/model"), looks_like_path("facebook/timesformer-base-finetuned-k400")
    (True, False)

    ```
    """
    if name.startswith(("./", "../", "/", "~")) or name in (".", "..") or name.count("/") > 1:
        return True
    first, separator, _ = name.partition("/")
    return bool(separator) and Path(first).is_dir()


def check_model_repo(repo: str | os.PathLike, revision: str | None = None) -> None:
    """Check what can be checked before `from_pretrained`, and raise one clear error otherwise.

    A local folder must hold a TimeSformer `config.json` (this package's or `transformers`'), valid sizes, and
    weights that are whole and fit `id2label`. A name that looks like a path ([`looks_like_path`]) must exist. A Hub
    id is left to [`hub_errors`].

    Raises:
        FileNotFoundError: For a path that does not exist.
        InputError: For anything else that is wrong, with the fix.
    """
    name = os.fspath(repo)
    if not name.strip():
        raise InputError("is empty: give a model folder or a Hub id.", argument="model")
    folder = Path(name).expanduser()
    if folder.is_dir():
        if revision is not None:
            raise InputError(
                f"{name} is a local folder, and a revision names a branch, tag or commit of a Hub repo: drop it.",
                argument="revision",
            )
        _check_folder(folder)
    elif folder.exists():
        raise InputError(f"{name} is a file: give the folder of a model repo, or a Hub id.", argument="model")
    elif looks_like_path(name):
        raise FileNotFoundError(errno.ENOENT, "No such folder", name)


def _check_folder(folder: Path) -> None:
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise InputError(f"{folder} is not a model repo (it has no config.json).", argument="model")
    try:
        config = json.loads(config_file.read_text())
    except ValueError as error:
        raise InputError(f"{config_file} is not valid JSON ({error}): save the model again.") from error
    model_type = config.get("model_type")
    if model_type not in (TimeSformerConfig.model_type, *COMPATIBLE_MODEL_TYPES):
        raise InputError(
            f"{folder} holds a {model_type!r} model, not a TimeSformer: give a TimeSformer repo (this package's, or "
            "a transformers TimeSformer).",
            argument="model",
        )
    try:
        config = TimeSformerConfig.from_pretrained(folder)
    except (ValueError, TypeError) as error:
        raise InputError(f"{config_file} is not a valid TimeSformer config: {error}") from error
    for weights in sorted(folder.glob("*.safetensors")):
        _check_weights(weights, config)


def _check_weights(path: Path, config: TimeSformerConfig) -> None:
    """Whole (its header covers the file) and, for a classifier, as many outputs as `id2label` has labels."""
    from safetensors import safe_open

    try:
        with safe_open(path, "pt") as weights:
            shape = (
                weights.get_slice("classifier.weight").get_shape()
                if "classifier.weight" in weights.keys()
                else None
            )
    except Exception as error:  # safetensors raises its own error type for a damaged file
        raise InputError(
            f"{path} is damaged ({error}): it was cut short or overwritten; save, convert or download the model "
            "again."
        ) from error
    if shape is not None and config.id2label and shape[0] != len(config.id2label):
        raise InputError(
            f"{path.parent}: the classifier has {shape[0]} outputs but config.json's id2label names "
            f"{len(config.id2label)} labels: give id2label one name per output (or the weights that go with it)."
        )


@contextlib.contextmanager
def hub_errors(repo: str | os.PathLike) -> Iterator[None]:
    """Turn the errors of a Hub repo that cannot be had into one sentence: not found (a wrong name, or private
    without a token), not reachable (offline, no network, and not in the local cache), or not a safe checkpoint."""
    import pickle

    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    name = os.fspath(repo)
    try:
        yield
    except (RepositoryNotFoundError, GatedRepoError) as error:
        raise InputError(
            f"{name} was not found on the Hub (a typo, or a private or gated repo: log in with `hf auth login`).",
            argument="model",
        ) from error
    except RevisionNotFoundError as error:
        raise InputError(f"{name} has no revision of that name ({error}).", argument="revision") from error
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, ConnectionError) as error:
        raise InputError(
            f"{name} is not in the local cache and the Hub cannot be reached (offline, or HF_HUB_OFFLINE=1): "
            "download it first, or give a local folder.",
            argument="model",
        ) from error
    except pickle.UnpicklingError as error:
        raise InputError(
            f"The weights of {name} are not a safe checkpoint (they hold Python objects, which are never loaded): "
            "save them as safetensors where they were made."
        ) from error
    except OSError as error:
        if isinstance(error, FileNotFoundError | PermissionError) and error.filename is not None:
            raise
        text = str(error)
        offline = "couldn't connect" in text or "offline" in text.lower() or "cached files" in text
        if offline:
            raise InputError(
                f"{name} is not in the local cache and the Hub cannot be reached (offline, or HF_HUB_OFFLINE=1): "
                "download it first, or give a local folder.",
                argument="model",
            ) from error
        if "not a valid model identifier" in text or "Repository Not Found" in text:
            raise InputError(
                f"{name} was not found on the Hub (a typo, or a private repo?).", argument="model"
            ) from error
        raise InputError(f"{name} could not be loaded: {' '.join(text.split())}", argument="model") from error


def load_config(repo: str | os.PathLike, revision: str | None = None) -> TimeSformerConfig:
    """The config of a model repo, checked ([`check_model_repo`]) and loaded with [`hub_errors`]."""
    check_model_repo(repo, revision)
    with hub_errors(repo):
        return TimeSformerConfig.from_pretrained(repo, revision=revision)


def model_fingerprint(repo: str | os.PathLike, revision: str | None = None) -> str:
    """What identifies the model loaded from `repo`, for resumed jobs: for a folder, a SHA-256 of its weight,
    config and processor files (`MODEL_FILES`; reports left out); for a Hub id, the commit that `revision` resolves
    to.

    Example:

    ```python
    >>> model_fingerprint("runs/mine/model")  # doctest: +SKIP
    'sha256:9f86d081884c7d65...'
    ```
    """
    folder = Path(repo)
    if folder.is_dir():
        files = sorted({file for pattern in MODEL_FILES for file in folder.glob(pattern) if file.is_file()})
        return "sha256:" + files_digest([file for file in files if not file.name.endswith(".report.json")])
    from huggingface_hub import hf_hub_download

    with hub_errors(repo):
        config = hf_hub_download(os.fspath(repo), "config.json", revision=revision)
    return "commit:" + Path(config).parent.name  # the snapshot folder is named after the commit

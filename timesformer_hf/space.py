"""A Hugging Face Space for a TimeSformer model: a folder that serves the package's web app on the Hub.

[`write_space`] writes `README.md` (the Space's front matter: `sdk: gradio`, the pinned `sdk_version`, `app_file`,
the model's `license`, `models:` for a Hub id), `app.py` (a call to [`~timesformer_hf.web_app.launch_app`]),
`requirements.txt` (this package with its `[app]` extra, pinned) and, when given, `examples/` and the model itself
(`model/`, for a local repo). `timesformer-hf space` writes it and, with `--push`, uploads it.

Example:

```python
>>> from timesformer_hf.space import write_space
>>> write_space("me/timesformer-motion", "motion-space", examples="clips/")  # doctest: +SKIP
>>> # python motion-space/app.py serves it locally; timesformer-hf space ... --push me/motion-demo uploads it
```
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import yaml

from .errors import InputError
from .extras import require
from .files import check_output_dir, make_staging_dir, replace_dir

__all__ = ["SPACE_FILES", "write_space"]

logger = logging.getLogger(__name__)

SPACE_FILES = ("README.md", "app.py", "requirements.txt")
MODEL_DIR, EXAMPLES_DIR = "model", "examples"
LICENSE_UNKNOWN = "other"

APP = '''"""The web app of {model}: `timesformer-hf space` wrote this Space; `python app.py` serves it locally too."""

from pathlib import Path

from timesformer_hf.web_app import launch_app

here = Path(__file__).parent
launch_app({target}{examples})
'''

CARD = """---
{front_matter}---

# {title}

A web demo of the TimeSformer video classifier [{model}]({link}): upload a video (or pick an example) to see its top
labels, where and when the model looks (relevance maps), and, for long videos, the labels over time.

It runs the [timesformer-hf](https://pypi.org/project/timesformer-hf/) web app (`timesformer-hf app`) on the Space's
hardware; scripts can call it with `gradio_client` (endpoints `/classify` and `/explain`).
"""


def _license(model: str) -> str:
    """The model card's license, else `other` (with a warning: the Space's README says so, to be edited)."""
    from .hub import card_license

    try:
        found = card_license(model)
    except (OSError, ValueError) as error:
        found, reason = None, f"its model card could not be read ({' '.join(str(error).split())[:120]})"
    else:
        reason = "its model card names none"
    if found is None:
        logger.warning(
            f"The license of {model} is unknown ({reason}): the Space says `license: other`; edit it."
        )
    return found or LICENSE_UNKNOWN


def write_space(
    model: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    examples: str | os.PathLike | None = None,
    include_model: bool = False,
    requirement: str | None = None,
    title: str | None = None,
    overwrite: bool = False,
) -> Path:
    """
    Write a Gradio Space that serves `model` with the package's web app, atomically.

    Args:
        model: A Hub id (the Space loads it by id) or a local repo folder (copied into the Space as `model/`,
            only with `include_model`).
        output_dir: The Space folder.
        examples: A folder of videos offered as examples (copied into `examples/`).
        include_model: Copy a local repo into the Space.
        requirement: The pip requirement of this package (default: `timesformer-hf[app]==` this version), e.g. a
            `git+https://...` URL.
        title: The Space's title (default: the model's name).
        overwrite: Replace an existing Space folder (never a folder of anything else).
    """
    from . import __version__
    from .data.local import VIDEO_EXTENSIONS
    from .loading import looks_like_path

    gradio = require("gradio", "A Space")
    model = os.fspath(model)
    local = Path(model).is_dir() or looks_like_path(model)
    if local and not Path(model).is_dir():
        raise InputError(f"No such folder: {model}.", argument="model")
    if local and not include_model:
        raise InputError(
            f"{model} is a local folder, which a Space cannot read: pass `include_model=True` to copy it into the "
            "Space, or give the model's Hub id."
        )
    if include_model and not local:
        raise InputError(f"{model} is a Hub id: the Space loads it by id; drop it.", argument="include_model")
    videos = []
    if examples is not None:
        if not Path(examples).is_dir():
            raise InputError(f"No such folder: {examples}.", argument="examples")
        videos = sorted(path for path in Path(examples).iterdir() if path.suffix.lower() in VIDEO_EXTENSIONS)
        if not videos:
            raise InputError(
                f"{examples} holds no video ({', '.join(VIDEO_EXTENSIONS)}).", argument="examples"
            )
    output_dir = Path(output_dir)
    check_output_dir(output_dir, overwrite=overwrite, written_by=("app.py",))
    name = Path(model).name if local else model
    front_matter = {
        "title": (title or f"TimeSformer {name}")[:60],
        "emoji": "🎬",
        "colorFrom": "indigo",
        "colorTo": "blue",
        "sdk": "gradio",
        "sdk_version": gradio.__version__,
        "app_file": "app.py",
        "license": _license(model),
        "pinned": False,
        **({} if local else {"models": [model]}),
        "tags": ["video-classification", "timesformer"],
    }
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = make_staging_dir(output_dir, "space")
    try:
        (staging / "README.md").write_text(
            CARD.format(
                front_matter=yaml.safe_dump(front_matter, sort_keys=False, allow_unicode=True),
                title=front_matter["title"],
                model=name,
                link=f"https://huggingface.co/{model}" if not local else MODEL_DIR,
            )
        )
        target = f"here / {MODEL_DIR!r}" if local else repr(model)
        examples_dir = f", examples=here / {EXAMPLES_DIR!r}" if videos else ""
        (staging / "app.py").write_text(APP.format(model=name, target=target, examples=examples_dir))
        (staging / "requirements.txt").write_text(f"{requirement or f'timesformer-hf[app]=={__version__}'}\n")
        if local:
            shutil.copytree(model, staging / MODEL_DIR, ignore=shutil.ignore_patterns(".*", "__pycache__"))
        for video in videos:
            (staging / EXAMPLES_DIR).mkdir(exist_ok=True)
            shutil.copy2(video, staging / EXAMPLES_DIR / video.name)
        replace_dir(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return output_dir

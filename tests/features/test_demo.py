"""`python -m timesformer_hf.demo` end to end in a tiny setting (the full run is `make demo`)."""

import re
import shlex

import pytest
import torch

from timesformer_hf.demo import DEMO_ATTENTION_TYPES, main
from timesformer_hf.synthetic import motion_labels


@pytest.fixture
def thread_count():
    """Restore torch's thread count after the test: the demo sets it for its process (a core left to decoding), and
    the session's `demo_model` fixture, trained later in the same process, must not inherit it."""
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


def test_demo_writes_everything_under_its_output_dir(tmp_path, capsys, monkeypatch, thread_count):
    monkeypatch.chdir(tmp_path)
    output_dir = tmp_path / "demo-output"
    main(["--output-dir", str(output_dir), "--epochs", "1", "--videos-per-class", "2"])
    printed = capsys.readouterr().out
    # the accuracy table has one row per model, with an accuracy in [0, 100] %
    rows = re.findall(r"^\| tiny TimeSformer \| (\w+) \| ([\d.]+)% \| \d+ s \|$", printed, flags=re.MULTILINE)
    assert [attention for attention, _ in rows] == list(DEMO_ATTENTION_TYPES)
    assert all(0 <= float(accuracy) <= 100 for _, accuracy in rows)
    # the pipeline prints its top 3 predictions: valid labels, in decreasing order of probability
    predictions = re.findall(r"^ +([\d.]+)%  (\S+)$", printed, flags=re.MULTILINE)
    assert len(predictions) == 3
    assert {label for _, label in predictions} <= set(motion_labels())
    scores = [float(score) for score, _ in predictions]
    assert scores == sorted(scores, reverse=True) and sum(scores) <= 100 + 1e-3
    assert sorted(path.name for path in tmp_path.iterdir()) == ["demo-output"]
    repo = {path.name for path in (output_dir / "model").iterdir()}
    assert {"config.json", "model.safetensors", "video_preprocessor_config.json", "README.md"} <= repo

    # a second run in the same folder replaces the data set instead of adding to the old one
    main(["--output-dir", str(output_dir), "--epochs", "1", "--videos-per-class", "1"])
    assert len(list((output_dir / "data" / "train").rglob("*.mp4"))) == 4


def test_the_printed_train_command_reproduces_the_demo_model(tmp_path, capsys, monkeypatch, thread_count):
    """The demo prints each model's `timesformer-hf train` command; run by hand, it trains the same weights."""
    from safetensors.torch import load_file

    from timesformer_hf.commands.app import main as command_line

    monkeypatch.chdir(tmp_path)
    main(["--output-dir", "demo", "--epochs", "2", "--videos-per-class", "4"])
    printed = capsys.readouterr().out
    commands = re.findall(r"^ +(timesformer-hf train .*)$", printed, flags=re.MULTILINE)
    assert len(commands) == len(DEMO_ATTENTION_TYPES)
    argv = shlex.split(commands[0])[1:]  # the divided model's, written to demo/model
    assert "--embedding-init-std" in argv and "--from-scratch" in argv
    argv[argv.index("--output-dir") + 1], argv[argv.index("--repo-dir") + 1] = "again/run", "again/model"
    assert command_line(argv) == 0
    demo, again = load_file("demo/model/model.safetensors"), load_file("again/model/model.safetensors")
    assert demo.keys() == again.keys()
    for name in demo:
        torch.testing.assert_close(again[name], demo[name], rtol=0, atol=0, msg=name)

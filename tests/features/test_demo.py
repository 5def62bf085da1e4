"""`python -m timesformer_hf.demo` end to end in a tiny setting (the full run is `make demo`)."""

import re

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

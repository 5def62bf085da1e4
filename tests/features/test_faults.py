"""Faults injected on purpose: the right result or one clear sentence, and nothing lost.

A model or a video changed under a resumed job, a SIGTERM, a worker that dies, `--overwrite` on a folder the command
did not write, two writers of one output, a checkpoint half-written by a kill.
"""

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import randomize_

from timesformer_hf import TimeSformerForVideoClassification
from timesformer_hf.commands.app import main
from timesformer_hf.inference import InferenceEngine
from timesformer_hf.synthetic import motion_labels, motion_video, write_video


@pytest.fixture
def videos(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    for i in range(6):
        write_video(
            folder / f"v{i}.mp4", motion_video(motion_labels(4)[i % 4], num_frames=8, size=32, rng=i), fps=8
        )
    return folder


@pytest.fixture
def model_folder(repo, tmp_path):
    """A copy of the tiny classifier repo that a test may change in place."""
    return shutil.copytree(repo, tmp_path / "model")


def interrupt_after(monkeypatch, count):
    """Pass `count + 1` of the engine raises KeyboardInterrupt (a Ctrl-C mid-run); returns the passes made."""
    original, calls = InferenceEngine.forward, []

    def forward(self, pixel_values):
        if count is not None and len(calls) == count:
            raise KeyboardInterrupt
        calls.append(len(pixel_values))
        return original(self, pixel_values)

    monkeypatch.setattr(InferenceEngine, "forward", forward)
    return calls


def features(model, videos, output, *extra):
    argv = [
        "features",
        str(model),
        str(videos),
        "--output",
        str(output),
        "--batch-size",
        "1",
        "--num-workers",
        "0",
    ]
    return main([*argv, "--save-every", "1", *map(str, extra)])


def rows(path):
    return {row["video"]: np.asarray(row["feature"]) for row in pq.read_table(path).to_pylist()}


def retrain_in_place(folder, seed):
    """The same repo folder, saved again with other weights (re-converted or re-trained into it)."""
    model = randomize_(TimeSformerForVideoClassification.from_pretrained(folder), seed=seed)
    model.save_pretrained(folder)


def test_a_job_resumed_after_its_model_changed_is_refused_and_overwrite_starts_over(
    model_folder, videos, tmp_path, monkeypatch, capsys
):
    output = tmp_path / "features.parquet"
    interrupt_after(monkeypatch, 3)
    assert features(model_folder, videos, output) == 130
    assert len(list((tmp_path / ".features.parquet.parts").glob("part-*"))) == 3
    retrain_in_place(model_folder, seed=7)
    monkeypatch.undo()
    capsys.readouterr()
    assert features(model_folder, videos, output) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "changed since this job started" in error and "--overwrite" in error
    assert features(model_folder, videos, output, "--overwrite") == 0
    expected = tmp_path / "expected.parquet"
    assert features(model_folder, videos, expected) == 0
    got, want = rows(output), rows(expected)
    assert got.keys() == want.keys()
    for video in want:  # every row from the new weights: none is stale
        np.testing.assert_allclose(got[video], want[video], atol=1e-6)


def test_a_finished_output_of_other_weights_is_not_taken_as_done(model_folder, videos, tmp_path, capsys):
    output = tmp_path / "features.parquet"
    assert features(model_folder, videos, output) == 0
    retrain_in_place(model_folder, seed=8)
    capsys.readouterr()
    assert features(model_folder, videos, output) == 1
    assert "written by other weights of the model" in capsys.readouterr().err


def test_a_video_changed_under_a_resumed_job_is_computed_again(model_folder, videos, tmp_path, monkeypatch):
    output = tmp_path / "features.parquet"
    interrupt_after(monkeypatch, 3)
    assert features(model_folder, videos, output) == 130
    parts = tmp_path / ".features.parquet.parts"
    done = {row["video"] for part in parts.glob("part-*") for row in pq.read_table(part).to_pylist()}
    changed = videos / "v0.mp4"
    assert str(changed) in done
    write_video(
        changed, motion_video(motion_labels(4)[3], num_frames=8, size=32, rng=99), fps=8
    )  # new content
    monkeypatch.undo()
    calls = interrupt_after(monkeypatch, None)
    assert features(model_folder, videos, output) == 0
    assert len(calls) == 6 - 3 + 1  # the three videos left, and the changed one again
    expected = tmp_path / "expected.parquet"
    assert features(model_folder, videos, expected) == 0
    np.testing.assert_allclose(rows(output)[str(changed)], rows(expected)[str(changed)], atol=1e-6)
    report = json.loads((tmp_path / "features.parquet.report.json").read_text())
    assert report["settings"]["model_fingerprint"].startswith("sha256:") and len(report["fingerprints"]) == 6

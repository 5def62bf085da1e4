"""Faults injected on purpose: the right result or one clear sentence, and nothing lost.

A model or a video changed under a resumed job, a SIGTERM, a worker that dies, `--overwrite` on a folder the command
did not write, two writers of one output, a checkpoint half-written by a kill.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import count_forwards, randomize_, tiny_config

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
    count_forwards(monkeypatch, 3)
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
    count_forwards(monkeypatch, 3)
    assert features(model_folder, videos, output) == 130
    parts = tmp_path / ".features.parquet.parts"
    done = {row["video"] for part in parts.glob("part-*") for row in pq.read_table(part).to_pylist()}
    changed = videos / "v0.mp4"
    assert str(changed) in done
    write_video(
        changed, motion_video(motion_labels(4)[3], num_frames=8, size=32, rng=99), fps=8
    )  # new content
    monkeypatch.undo()
    calls = count_forwards(monkeypatch, None)
    assert features(model_folder, videos, output) == 0
    assert len(calls) == 6 - 3 + 1  # the three videos left, and the changed one again
    expected = tmp_path / "expected.parquet"
    assert features(model_folder, videos, expected) == 0
    np.testing.assert_allclose(rows(output)[str(changed)], rows(expected)[str(changed)], atol=1e-6)
    report = json.loads((tmp_path / "features.parquet.report.json").read_text())
    assert report["settings"]["model_fingerprint"].startswith("sha256:") and len(report["fingerprints"]) == 6


# ---- SIGTERM, two writers, leftovers --------------------------------------------------------------------------


def long_videos(folder, count=24):
    folder.mkdir()
    for i in range(count):
        frames = np.concatenate([motion_video(motion_labels(4)[i % 4], num_frames=8, size=32, rng=i)] * 8)
        write_video(folder / f"v{i:02d}.mp4", frames, fps=8)
    return folder


def test_sigterm_keeps_the_finished_videos_and_the_same_command_resumes(repo, tmp_path):
    videos = long_videos(tmp_path / "videos")
    output, parts = tmp_path / "features.parquet", tmp_path / ".features.parquet.parts"
    command = [
        sys.executable, "-m", "timesformer_hf.cli", "features", str(repo), str(videos), "--output", str(output),
        "--window", "0.1", "--batch-size", "1", "--num-workers", "0", "--save-every", "1000",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = bytearray()

    def read() -> None:  # chunk by chunk, as the progress bar is drawn
        for chunk in iter(lambda: os.read(process.stderr.fileno(), 1 << 16), b""):
            stderr.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline, started = time.monotonic() + 240, None
    while time.monotonic() < deadline and process.poll() is None:
        done = re.findall(rb"\| *(\d+)/24 ", bytes(stderr))
        if done and int(done[-1]) >= 3:  # some videos done, none saved yet (a part every 1000 videos)
            break
        if started is None and (parts / "settings.json").exists():
            started = time.monotonic()
        if started is not None and time.monotonic() - started > 4:  # no progress bar seen: by the clock
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=120)
    reader.join(timeout=10)
    stderr = stderr.decode()
    assert process.returncode == 143, stderr[-2000:]
    assert "terminated" in stderr and "run the same command again to resume" in stderr
    kept = [row for part in parts.glob("part-*.parquet") for row in pq.read_table(part).to_pylist()]
    assert 0 < len(kept) < 24  # flushed on the way out, as after Ctrl-C
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert len({row["video"] for row in pq.read_table(output).to_pylist()}) == 24 and not parts.exists()


def test_a_second_writer_of_the_same_output_is_refused_and_a_dead_ones_lock_taken_over(
    model_folder, videos, tmp_path, capsys
):
    from timesformer_hf.files import WriteLock

    output = tmp_path / "features.parquet"
    with WriteLock(output):  # another run writing it
        assert features(model_folder, videos, output) == 1
        error = capsys.readouterr().err
        assert "is being written by another run (process" in error and error.count("\n") == 1
    lock = tmp_path / ".features.parquet.lock"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    lock.write_text(f"{dead.stdout.strip()}@{socket.gethostname()}")  # left by a process that is gone
    assert features(model_folder, videos, output) == 0
    assert not lock.exists() and output.exists()


def test_leftovers_of_an_interrupted_run_are_cleared(model_folder, videos, tmp_path):
    output = tmp_path / "features.parquet"
    (tmp_path / ".features.parquet.a1b2c3.parquet").write_bytes(
        b"half a merge"
    )  # write_atomically's temporary
    (tmp_path / ".features.parquet.report.json.x9.json").write_text("{")
    parts = tmp_path / ".features.parquet.parts"
    parts.mkdir()
    (parts / ".part-00000-1.parquet.q7.parquet").write_bytes(b"half a part")
    assert features(model_folder, videos, output) == 0
    assert sorted(path.name for path in tmp_path.iterdir() if path.name.startswith(".")) == []


def test_export_and_convert_replace_only_what_they_write(repo, tmp_path, capsys):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "thesis.tex").write_text("precious")
    assert main(["export", str(repo), "--output", str(notes), "--overwrite"]) == 1
    assert (
        main(["convert", "--checkpoint", str(tmp_path / "x.pyth"), "--output-dir", str(notes), "--overwrite"])
        == 1
    )
    assert (notes / "thesis.tex").read_text() == "precious"
    exported = tmp_path / "onnx"
    assert main(["export", str(repo), "--output", str(exported)]) == 0
    (tmp_path / ".onnx.onnx-leftover").mkdir()  # the staging folder of an export killed mid-way
    assert (
        main(["export", str(repo), "--output", str(exported), "--overwrite"]) == 0
    )  # its own export: replaced
    assert not (tmp_path / ".onnx.onnx-leftover").exists()


# ---- training checkpoints -------------------------------------------------------------------------------------


def test_resume_skips_a_checkpoint_cut_short_by_a_kill(tmp_path, caplog):
    from timesformer_hf.training import checkpoint_problem, last_complete_checkpoint

    for step in (2, 4):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        randomize_(TimeSformerForVideoClassification(tiny_config())).save_pretrained(folder)
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    weights = tmp_path / "checkpoint-4" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # SIGKILL mid-save
    (tmp_path / "checkpoint-6").mkdir()  # killed before trainer_state.json
    (tmp_path / "checkpoint-6" / "model.safetensors").write_bytes(b"")
    assert "is damaged" in checkpoint_problem(tmp_path / "checkpoint-4")
    assert "no trainer_state.json" in checkpoint_problem(tmp_path / "checkpoint-6")
    assert checkpoint_problem(tmp_path / "checkpoint-2") is None
    with caplog.at_level("WARNING"):
        assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-2")
    skipped = [
        record.getMessage() for record in caplog.records if "Skipping the checkpoint" in record.getMessage()
    ]
    assert len(skipped) == 2 and "checkpoint-6" in skipped[0] and "checkpoint-4" in skipped[1]


# ---- a decoding worker that dies -------------------------------------------------------------------------------


class KillsItsWorker(list):
    """Video paths; reading `fatal` in a DataLoader worker kills that worker (a decoder crash, the OOM killer). With
    `fails_everywhere`, reading it in the main process raises too."""

    def __init__(self, paths, fatal, fails_everywhere=False):
        super().__init__(paths)
        self.fatal, self.fails_everywhere = fatal, fails_everywhere

    def __getitem__(self, index):
        from torch.utils.data import get_worker_info

        if index == self.fatal and get_worker_info() is not None:
            os.kill(os.getpid(), signal.SIGKILL)
        if index == self.fatal and self.fails_everywhere:
            raise MemoryError("decoding this video needs more memory than there is")
        return super().__getitem__(index)


@pytest.mark.parametrize("fails_everywhere", [False, True], ids=["retried", "recorded"])
def test_a_worker_that_dies_is_replaced_and_its_video_retried_once(repo, videos, fails_everywhere, caplog):
    from timesformer_hf import TimeSformerVideoProcessor

    model = TimeSformerForVideoClassification.from_pretrained(repo).eval()
    engine = InferenceEngine(
        model, TimeSformerVideoProcessor.from_pretrained(repo), batch_size=2, num_workers=2
    )
    paths = sorted(str(path) for path in videos.glob("*.mp4"))
    reference = {result.index: result.value for result in InferenceEngine(model, engine.processor).run(paths)}
    with caplog.at_level("WARNING"):
        results = list(engine.run(KillsItsWorker(paths, fatal=2, fails_everywhere=fails_everywhere)))
    assert sorted(result.index for result in results) == list(range(6))  # every video, once
    for result in results:
        if result.index == 2 and fails_everywhere:
            assert "stopped a decoding worker" in result.error and "MemoryError" in result.error
            continue
        assert result.error is None
        # workers deliver in any order, so videos share batches differently: the GEMMs round differently
        np.testing.assert_allclose(result.value, reference[result.index], atol=1e-5)
    assert any("retrying" in record.getMessage() for record in caplog.records)


def test_a_worker_that_dies_while_the_model_runs_loses_no_video(repo, videos, monkeypatch):
    # PyTorch's SIGCHLD handler raised the worker's death wherever the main thread was: in the middle of a batch,
    # whose videos were then lost (sent to the model, never finished). A slow model makes that the likely moment.
    from timesformer_hf import TimeSformerVideoProcessor

    model = TimeSformerForVideoClassification.from_pretrained(repo).eval()
    engine = InferenceEngine(
        model, TimeSformerVideoProcessor.from_pretrained(repo), batch_size=2, num_workers=2
    )
    forward = engine.forward

    def slow_forward(pixel_values):
        time.sleep(1.0)
        return forward(pixel_values)

    monkeypatch.setattr(engine, "forward", slow_forward)
    paths = sorted(str(path) for path in videos.glob("*.mp4"))
    results = list(engine.run(KillsItsWorker(paths, fatal=2)))
    assert sorted(result.index for result in results) == list(range(6))  # every video, once
    assert all(result.error is None for result in results)


def test_a_checkpoint_is_complete_or_absent_and_rotation_still_applies(motion_dir, tmp_path):
    from unittest import mock

    from test_training import TINY_OVERRIDES, data_args, training_args
    from transformers import Trainer

    from timesformer_hf.training import ModelArguments, checkpoint_problem, run_training

    arguments = dict(max_steps=3, save_strategy="steps", save_steps=1, save_total_limit=2)
    run_training(
        ModelArguments(from_scratch=True, config_overrides=TINY_OVERRIDES),
        data_args(motion_dir),
        training_args(tmp_path / "a", **arguments),
    )
    saved = sorted(
        path.name for path in (tmp_path / "a").iterdir() if path.name.startswith(("checkpoint", "."))
    )
    assert saved == [
        "checkpoint-2",
        "checkpoint-3",
    ]  # save_total_limit kept the newest two, nothing staged left
    assert checkpoint_problem(tmp_path / "a" / "checkpoint-3") is None

    def killed(
        self, output_dir
    ):  # the process dies once the weights are written, before the optimizer's state
        raise KeyboardInterrupt

    with (
        mock.patch.object(Trainer, "_save_optimizer_and_scheduler", killed),
        pytest.raises(KeyboardInterrupt),
    ):
        run_training(
            ModelArguments(from_scratch=True, config_overrides=TINY_OVERRIDES),
            data_args(motion_dir),
            training_args(tmp_path / "b", **arguments),
        )
    assert not any(
        path.name.startswith("checkpoint-") for path in (tmp_path / "b").iterdir()
    )  # absent, not half
    run_training(
        ModelArguments(from_scratch=True, config_overrides=TINY_OVERRIDES),
        data_args(motion_dir),
        training_args(tmp_path / "b", **arguments),
    )
    assert sorted(
        path.name for path in (tmp_path / "b").iterdir() if path.name.startswith(("checkpoint", "."))
    ) == [
        "checkpoint-2",
        "checkpoint-3",
    ]

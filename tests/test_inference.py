"""The inference engine and the `classify`, `features` and `evaluate` commands on a tiny model and real mp4 files."""

import csv
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import count_forwards, sample_video_path, tiny_processor

from timesformer_hf import TimeSformerForVideoClassification, TimeSformerModel, TimeSformerVideoProcessor
from timesformer_hf.commands.app import main
from timesformer_hf.inference import InferenceEngine, resolve_device, resolve_dtype
from timesformer_hf.synthetic import motion_labels, motion_video, write_video

REAL_VIDEOS = ("bikes.mp4", "carphone_pristine.mp4", "bigbuckbunny.mp4")


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Three real mp4 files (4-10 s) and a generated 3-minute one."""
    folder = tmp_path_factory.mktemp("videos")
    for name in REAL_VIDEOS:
        (folder / name).symlink_to(sample_video_path(name))
    frames = np.concatenate([motion_video("right_1", num_frames=8, size=32, rng=i) for i in range(225)])
    write_video(folder / "three_minutes.mp4", frames, fps=10)  # 1800 frames
    return folder


def run_cli(*argv):
    return main([str(arg) for arg in argv])


def test_flags_take_dashes_and_underscores(repo, videos, capsys):
    assert (
        run_cli("classify", repo, videos / "bikes.mp4", "--top_k", "2", "--num-workers", "0", "--json") == 0
    )
    underscored = capsys.readouterr().out
    assert (
        run_cli("classify", repo, videos / "bikes.mp4", "--top-k", "2", "--num_workers", "0", "--json") == 0
    )
    assert capsys.readouterr().out == underscored


def test_help_in_a_fresh_process():
    # `import timesformer_hf` registers the Auto classes (torch included) for every caller, the console script too
    code = "from timesformer_hf.commands.app import main\nmain(['classify', '--help'])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "--batch-size" in result.stdout and "underscores" in result.stdout


def test_classify_json_schema(repo, videos, capsys):
    assert (
        run_cli(
            "classify", repo, videos / "bikes.mp4", videos / "carphone_pristine.mp4", "--top-k", "3", "--json"
        )
        == 0
    )
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(record["video"] for record in records) == sorted(
        str(videos / name) for name in ("bikes.mp4", "carphone_pristine.mp4")
    )
    for record in records:
        assert set(record) == {"video", "predictions"}
        scores = [p["score"] for p in record["predictions"]]
        assert len(scores) == 3 and scores == sorted(scores, reverse=True) and sum(scores) <= 1 + 1e-6
        assert all(p["label"] in motion_labels(4) for p in record["predictions"])


def test_windows_cover_the_whole_video_in_order(repo, videos, capsys, tmp_path):
    video = videos / "three_minutes.mp4"
    assert run_cli("classify", repo, video, "--window", "2", "--stride", "2", "--json", "--top-k", "1") == 0
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    windows = record["windows"]
    assert len(windows) == 90
    assert windows[0]["start"] == 0 and windows[-1]["end"] == pytest.approx(180, abs=0.11)
    for previous, window in itertools.pairwise(windows):
        assert window["start"] == pytest.approx(previous["end"])  # no gap, no overlap, in order
    assert run_cli("classify", repo, video, "--window", "2", "--output", tmp_path / "w.parquet") == 0
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "w.parquet").to_pylist()[0]["windows"][5]["start"] == 10
    # the whole-video scores are the mean of the windows' scores
    model = TimeSformerForVideoClassification.from_pretrained(repo).eval()
    engine = InferenceEngine(model, TimeSformerVideoProcessor.from_pretrained(repo), window=30, stride=30)
    (result,) = engine.run([str(video)])
    assert len(result.windows) == 6
    np.testing.assert_allclose(result.value, np.mean([w.value for w in result.windows], axis=0), atol=1e-7)


def test_features_equal_pooler_output(repo, videos):
    model = TimeSformerModel.from_pretrained(repo).eval()
    processor = TimeSformerVideoProcessor.from_pretrained(repo)
    paths = [str(videos / name) for name in REAL_VIDEOS]
    for pool in ("cls", "mean"):
        engine = InferenceEngine(model, processor, output=pool, batch_size=2, num_workers=0)
        results = sorted(engine.run(paths), key=lambda result: result.index)
        for path, result in zip(paths, results, strict=True):
            pixel_values = processor(path, do_sample_frames=True, return_tensors="pt")["pixel_values"]
            with torch.no_grad():
                output = model(pixel_values)
            expected = output.pooler_output if pool == "cls" else output.last_hidden_state[:, 1:].mean(1)
            np.testing.assert_allclose(result.value, expected[0].numpy(), atol=1e-5)


def test_views_of_several_videos_share_forwards(repo, videos):
    model = TimeSformerForVideoClassification.from_pretrained(repo).eval()
    paths = [str(videos / name) for name in REAL_VIDEOS] * 2
    one_by_one = InferenceEngine(model, tiny_processor(), batch_size=1, num_workers=0)
    batched = InferenceEngine(model, tiny_processor(), batch_size=4, num_workers=2)
    expected = {r.index: r.value for r in one_by_one.run(paths)}
    got = {r.index: r.value for r in batched.run(paths)}
    assert (one_by_one.num_forwards, batched.num_forwards) == (6, 2)  # one view per video here
    for index in expected:
        np.testing.assert_allclose(got[index], expected[index], atol=1e-5)


def test_compiled_model_runs_the_last_batch_padded(repo, videos, monkeypatch):
    model = TimeSformerForVideoClassification.from_pretrained(repo).eval()
    paths = [str(videos / name) for name in REAL_VIDEOS]  # one view each: batches of 2 and 1
    expected = {r.index: r.value for r in InferenceEngine(model, tiny_processor(), batch_size=2).run(paths)}
    batch_sizes = []
    forward = model.forward
    monkeypatch.setattr(
        model, "forward", lambda **kw: batch_sizes.append(len(kw["pixel_values"])) or forward(**kw)
    )
    engine = InferenceEngine(torch.compile(model, backend="eager"), tiny_processor(), batch_size=2)
    got = {r.index: r.value for r in engine.run(paths)}
    assert engine.compiled and batch_sizes == [2, 2]  # one shape: no second compile for the last view
    for index in expected:
        np.testing.assert_allclose(got[index], expected[index], atol=1e-5)


def test_device_and_dtype_errors(repo, videos, capsys):
    with pytest.raises(ValueError, match="fp16 is not supported on the CPU"):
        resolve_dtype("fp16", torch.device("cpu"))
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda:1")
        assert run_cli("classify", repo, videos / "bikes.mp4", "--device", "cuda") == 1
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and "CUDA is not available" in error and "Traceback" not in error
    assert run_cli("classify", repo, videos / "bikes.mp4", "--dtype", "fp16", "--device", "cpu") == 1
    assert "use bf16 or fp32" in capsys.readouterr().err
    assert run_cli("classify", repo, videos / "bikes.mp4", "--num-clips", "3") == 1
    assert "--frame-sampling kinetics" in capsys.readouterr().err


def test_bf16_on_cpu_runs(repo, videos, capsys):
    assert (
        run_cli("classify", repo, videos / "bikes.mp4", "--dtype", "bf16", "--json", "--num-workers", "0")
        == 0
    )
    assert len(json.loads(capsys.readouterr().out)["predictions"]) == 4


def test_features_parquet_readable_by_datasets_and_broken_files_reported(repo, videos, tmp_path, capsys):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    output = tmp_path / "out" / "features.parquet"
    assert run_cli("features", repo, videos, broken, "--output", output) == 3  # some inputs failed
    captured = capsys.readouterr()
    assert "Skipped 1 of 5 videos" in captured.err and str(broken) in captured.err
    assert "1 of 5 videos could not be read" in captured.err
    from datasets import load_dataset

    table = load_dataset("parquet", data_files=str(output), split="train")
    assert table.column_names == ["video", "start", "end", "feature"]
    assert len(table) == 4 and len(table[0]["feature"]) == 32
    report = json.loads((output.parent / (output.name + ".report.json")).read_text())
    assert report["completed"] == 4 and report["failed"][0]["video"] == str(broken)
    assert "not a video" in report["failed"][0]["error"] or "Cannot" in report["failed"][0]["error"]
    assert sorted(p.name for p in output.parent.iterdir()) == [
        "features.parquet",
        "features.parquet.report.json",
    ]


def test_windowed_features_one_row_per_window(repo, videos, tmp_path):
    output = tmp_path / "f.npy"
    assert run_cli("features", repo, videos / "bikes.mp4", "--window", "5", "--output", output) == 0
    rows = json.loads(output.with_suffix(".json").read_text())
    assert [(row["start"], row["end"]) for row in rows] == [(0, 5), (5, 10)]
    assert np.load(output).shape == (2, 32)


def test_finished_rerun_does_no_model_work(repo, videos, tmp_path, monkeypatch, capsys):
    output = tmp_path / "features.safetensors"
    calls = count_forwards(monkeypatch)
    assert run_cli("features", repo, videos, "--output", output) == 0
    assert len(calls) > 0
    written = output.read_bytes()
    calls.clear()
    assert run_cli("features", repo, videos, "--output", output) == 0
    assert calls == [] and "nothing to do" in capsys.readouterr().out
    assert output.read_bytes() == written
    assert run_cli("features", repo, videos, "--output", output, "--pool", "mean") == 1  # other settings
    assert "--overwrite" in capsys.readouterr().err


def read_rows(path):
    import pyarrow.parquet as pq

    return sorted(pq.read_table(path).to_pylist(), key=lambda row: (row["video"], row["start"]))


def assert_same_rows(first, second):
    assert [(r["video"], r["start"], r["end"]) for r in first] == [
        (r["video"], r["start"], r["end"]) for r in second
    ]
    for a, b in zip(first, second, strict=True):
        np.testing.assert_allclose(a["feature"], b["feature"], atol=1e-5)


@pytest.fixture(scope="module")
def many_videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("many")
    for i in range(16):
        frames = np.concatenate([motion_video(motion_labels(4)[i % 4], num_frames=8, size=32, rng=i)] * 3)
        write_video(folder / f"v{i:02d}.mp4", frames, fps=8)
    return folder


def features_command(repo, folder, output, *extra):
    return [
        sys.executable, "-m", "timesformer_hf.cli", "features", str(repo), str(folder), "--output", str(output),
        "--window", "0.5", "--batch-size", "1", "--num-workers", "0", *extra,
    ]  # fmt: skip


def test_resume_after_sigkill(repo, many_videos, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    reference = tmp_path / "reference.parquet"
    subprocess.run(
        features_command(repo, many_videos, reference), check=True, env=env, capture_output=True, timeout=300
    )
    output = tmp_path / "killed.parquet"
    parts = tmp_path / ".killed.parquet.parts"
    process = subprocess.Popen(
        features_command(repo, many_videos, output, "--save-every", "1"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    while (
        len(list(parts.glob("part-*.parquet"))) < 2 and process.poll() is None and time.monotonic() < deadline
    ):
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not output.exists()  # no partial output
    done_before = len(list(parts.glob("part-*.parquet")))
    assert 2 <= done_before < 16
    result = subprocess.run(
        features_command(repo, many_videos, output), env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_rows(read_rows(output), read_rows(reference))
    assert not parts.exists()


def test_two_processes_equal_one(repo, many_videos, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    single = tmp_path / "single.parquet"
    subprocess.run(
        features_command(repo, many_videos, single), check=True, env=env, capture_output=True, timeout=300
    )
    launch = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
    ]  # fmt: skip
    double = tmp_path / "double.parquet"
    result = subprocess.run(
        launch + features_command(repo, many_videos, double)[1:],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    assert_same_rows(read_rows(double), read_rows(single))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("differ", ["dtype", "videos"])
def test_processes_that_would_compute_differently_are_refused(repo, many_videos, tmp_path, differ):
    """Two processes of one job (as two machines would start them), one in fp32 and one in bf16 (what `--dtype auto`
    picks on machines with and without native bf16), or seeing other videos: both refuse in one line, nothing is
    written."""
    fewer = tmp_path / "fewer"
    shutil.copytree(many_videos, fewer)
    next(fewer.rglob("*.mp4")).unlink()
    output = tmp_path / "features.parquet"
    env = {
        **os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "1",
        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(29500 + os.getpid() % 1000),
    }  # fmt: skip
    if differ == "dtype":
        commands = [
            features_command(repo, many_videos, output, "--dtype", dtype) for dtype in ("fp32", "bf16")
        ]
        expected = "dtype: fp32 (process 0), bf16 (process 1)"
    else:
        commands = [
            features_command(repo, folder, output, "--dtype", "fp32") for folder in (many_videos, fewer)
        ]
        count = sum(1 for _ in many_videos.rglob("*.mp4"))
        expected = f"videos: {count} listed"
    runs = [
        subprocess.Popen(
            command, env={**env, "RANK": str(rank), "LOCAL_RANK": "0"}, stderr=subprocess.PIPE, text=True
        )
        for rank, command in enumerate(commands)
    ]
    for run in runs:
        stderr = run.communicate(timeout=300)[1]
        assert run.returncode == 1, stderr[-3000:]
        (line,) = stderr.strip().splitlines()
        assert "would not compute alike (" + expected in line, line
    assert sorted(path.name for path in tmp_path.iterdir()) == ["fewer"]


def test_evaluate_matches_a_hand_computation(repo, tmp_path, capsys):
    labels = motion_labels(4)
    data = tmp_path / "data"
    for i in range(8):
        folder = data / labels[i % 4]
        folder.mkdir(parents=True, exist_ok=True)
        write_video(folder / f"{i}.mp4", motion_video(labels[i % 4], num_frames=8, size=32, rng=i), fps=8)
    output_dir = tmp_path / "evaluation"
    predictions = tmp_path / "predictions.jsonl"
    assert (
        run_cli(
            "evaluate",
            repo,
            data,
            "--output-dir",
            output_dir,
            "--predictions",
            predictions,
            "--num-crops",
            "3",
        )
        == 0
    )
    report = json.loads((output_dir / "evaluation.json").read_text())

    model = TimeSformerForVideoClassification.from_pretrained(repo).eval()
    processor = TimeSformerVideoProcessor.from_pretrained(repo)
    paths = sorted(str(p) for p in data.rglob("*.mp4"))
    truth = np.array([labels.index(os.path.basename(os.path.dirname(p))) for p in paths])
    probabilities = []
    for path in paths:
        views = processor(path, do_sample_frames=True, num_spatial_crops=3, return_tensors="pt")[
            "pixel_values"
        ]
        with torch.no_grad():
            probabilities.append(model(views).logits.softmax(-1).mean(0).numpy())
    ranking = np.argsort(-np.stack(probabilities), axis=1)
    assert report["num_videos"] == 8
    assert report["top1_accuracy"] == pytest.approx((ranking[:, 0] == truth).mean())
    assert "top5_accuracy" not in report  # 4 classes: top-5 says nothing
    for c, name in enumerate(labels):
        assert report["per_class_accuracy"][name] == pytest.approx((ranking[truth == c, 0] == c).mean())
    matrix = np.zeros((4, 4), int)
    np.add.at(matrix, (truth, ranking[:, 0]), 1)
    assert report["confusion_matrix"] == matrix.tolist()
    assert (output_dir / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert [row["label"] for row in rows] == [labels[t] for t in truth]
    assert "top1_accuracy" in capsys.readouterr().out


def test_evaluate_names_unknown_labels(repo, tmp_path, capsys):
    (tmp_path / "data" / "juggling").mkdir(parents=True)
    write_video(
        tmp_path / "data" / "juggling" / "0.mp4", motion_video("left_1", num_frames=8, size=32), fps=8
    )
    assert run_cli("evaluate", repo, tmp_path / "data", "--output-dir", tmp_path / "e") == 1
    error = capsys.readouterr().err
    assert "juggling" in error and error.count("\n") == 1


def test_classify_writes_jsonl_and_csv(repo, videos, tmp_path, capsys):
    for suffix in (".jsonl", ".csv"):
        output = tmp_path / f"predictions{suffix}"
        argv = ("classify", repo, videos / "bikes.mp4", "--window", "5", "--top-k", "2", "--output", output)
        assert run_cli(*argv) == 0
    (record,) = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert set(record) == {"video", "predictions", "windows"}
    assert [(w["start"], w["end"]) for w in record["windows"]] == [(0, 5), (5, 10)]
    import csv

    rows = list(csv.DictReader((tmp_path / "predictions.csv").open()))
    assert [(row["scope"], row["start"], row["rank"]) for row in rows] == [
        ("video", "", "1"), ("video", "", "2"), ("window", "0.0", "1"), ("window", "0.0", "2"),
        ("window", "5.0", "1"), ("window", "5.0", "2"),
    ]  # fmt: skip
    assert rows[0]["label"] == record["predictions"][0]["label"]
    assert run_cli("classify", repo, videos / "bikes.mp4", "--output", tmp_path / "p.txt") == 1
    assert ".jsonl, .csv, .parquet" in capsys.readouterr().err


def test_interrupted_run_keeps_its_parts(repo, many_videos, tmp_path, monkeypatch):
    count_forwards(monkeypatch, interrupt_after=5)
    output = tmp_path / "f.parquet"
    argv = ("features", repo, many_videos, "--output", output, "--batch-size", "1", "--num-workers", "0")
    assert run_cli(*argv) == 130
    parts = list((tmp_path / ".f.parquet.parts").glob("part-*.parquet"))
    assert len(parts) == 1 and not output.exists()  # the 5 finished videos were saved on the way out
    import pyarrow.parquet as pq

    assert pq.read_table(parts[0]).num_rows == 5


@pytest.mark.slow
def test_compiled_model_gives_the_same_features(repo, videos, capsys):
    # fp32: in bf16 the frozen graph's fused GEMM epilogues round differently from eager (scores within 4e-4)
    argv = ("classify", repo, videos / "bikes.mp4", "--json", "--num-workers", "0", "--dtype", "fp32")
    assert run_cli(*argv) == 0
    eager = json.loads(capsys.readouterr().out)["predictions"]
    assert run_cli(*argv, "--compile") == 0
    compiled = json.loads(capsys.readouterr().out)["predictions"]
    assert [p["label"] for p in compiled] == [p["label"] for p in eager]
    np.testing.assert_allclose([p["score"] for p in compiled], [p["score"] for p in eager], atol=1e-5)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp16"])
def test_cuda_matches_cpu(repo, videos, dtype):
    from timesformer_hf.inference import load_model

    paths = [str(videos / name) for name in REAL_VIDEOS]
    reference_model, processor = load_model(repo, task="features", device="cpu")
    reference = {
        r.index: r.value for r in InferenceEngine(reference_model, processor, output="cls").run(paths)
    }
    model, processor = load_model(repo, task="features", device="cuda", dtype=dtype)
    engine = InferenceEngine(model, processor, output="cls", num_workers=2, batch_size=2)
    tolerance = 1e-4 if dtype == "fp32" else 5e-2
    for result in engine.run(paths):
        np.testing.assert_allclose(result.value, reference[result.index], atol=tolerance, rtol=tolerance)


def test_resume_follows_the_video_names_not_their_positions(repo, many_videos, tmp_path, monkeypatch):
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("b.mp4", "d.mp4", "f.mp4"):
        (folder / name).symlink_to(many_videos / "v00.mp4")
    output = tmp_path / "f.parquet"
    argv = ("features", repo, folder, "--output", output, "--batch-size", "1", "--num-workers", "0")
    count_forwards(monkeypatch, interrupt_after=2)
    assert run_cli(*argv) == 130  # b and d done, f not
    (folder / "a.mp4").symlink_to(many_videos / "v01.mp4")  # the list changes: every position moves
    monkeypatch.undo()
    calls = count_forwards(monkeypatch)
    assert run_cli(*argv) == 0
    assert len(calls) == 4  # all four videos: the parts were of other positions
    videos = [row["video"] for row in read_rows(output)]
    assert videos == sorted(str(folder / name) for name in ("a.mp4", "b.mp4", "d.mp4", "f.mp4"))


def test_interrupted_overwrite_resumes(repo, many_videos, tmp_path, monkeypatch, capsys):
    output = tmp_path / "f.parquet"
    argv = ("features", repo, many_videos, "--output", output, "--batch-size", "1", "--num-workers", "0")
    assert run_cli(*argv) == 0
    count_forwards(monkeypatch, interrupt_after=3)
    assert run_cli(*argv, "--pool", "mean", "--overwrite", "--save-every", "1") == 130
    assert not output.exists()  # the old output went with --overwrite
    monkeypatch.undo()
    calls = count_forwards(monkeypatch)
    assert run_cli(*argv, "--pool", "mean") == 0  # resumes without --overwrite
    assert len(calls) == 16 - 3
    assert len(read_rows(output)) == 16


def test_evaluate_again_reports_without_model_work(repo, tmp_path, monkeypatch):
    labels = motion_labels(4)
    for i in range(4):
        (tmp_path / "data" / labels[i]).mkdir(parents=True)
        write_video(
            tmp_path / "data" / labels[i] / "0.mp4", motion_video(labels[i], num_frames=8, size=32), fps=8
        )
    argv = ("evaluate", repo, tmp_path / "data", "--output-dir", tmp_path / "e")
    assert run_cli(*argv) == 0
    first = json.loads((tmp_path / "e" / "evaluation.json").read_text())
    (tmp_path / "e" / "evaluation.json").unlink()
    calls = count_forwards(monkeypatch)
    assert run_cli(*argv, "--predictions", tmp_path / "p.csv") == 0
    assert calls == [] and json.loads((tmp_path / "e" / "evaluation.json").read_text()) == first
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 1 + 4 * 4  # header, 4 videos x top-4
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    for row in rows:  # the true label beside each prediction, and whether that prediction is it
        assert row["true_label"] == Path(row["video"]).parent.name
        assert row["correct"] == str(row["label"] == row["true_label"])
    assert sum(row["correct"] == "True" for row in rows) == 4  # each video's true label is in its top 4, once
    top1 = [row["correct"] == "True" for row in rows if row["rank"] == "1"]
    assert sum(top1) / len(top1) == pytest.approx(first["top1_accuracy"])


def test_all_broken_videos_leave_a_report(repo, tmp_path, capsys):
    for name in ("a.mp4", "b.mp4"):
        (tmp_path / name).write_bytes(b"not a video")
    output = tmp_path / "f.parquet"
    assert run_cli("features", repo, tmp_path / "a.mp4", tmp_path / "b.mp4", "--output", output) == 1
    assert "None of the 2 videos could be read" in capsys.readouterr().err
    report = json.loads((tmp_path / "f.parquet.report.json").read_text())
    assert [failure["video"] for failure in report["failed"]] == [
        str(tmp_path / "a.mp4"),
        str(tmp_path / "b.mp4"),
    ]
    assert not output.exists()


def test_videos_from_a_datasets_column_paths_or_bytes(repo, videos):
    from datasets import Dataset

    model = TimeSformerForVideoClassification.from_pretrained(repo).eval()
    engine = InferenceEngine(model, TimeSformerVideoProcessor.from_pretrained(repo), num_workers=2)
    paths = [str(videos / name) for name in REAL_VIDEOS]
    expected = {r.index: r.value for r in engine.run(paths)}
    embedded = [{"path": None, "bytes": open(path, "rb").read()} for path in paths]
    for dataset in (Dataset.from_dict({"video": paths}), Dataset.from_dict({"video": embedded})):
        results = sorted(engine.run(dataset), key=lambda result: result.index)
        assert [r.error for r in results] == [None] * 3
        for result in results:
            np.testing.assert_allclose(result.value, expected[result.index], atol=1e-6)
    assert [r.video for r in sorted(engine.run(Dataset.from_dict({"video": embedded})), key=lambda r: r.index)] == [
        "data/0", "data/1", "data/2",
    ]  # fmt: skip


@pytest.mark.parametrize(("features", "expected"), [(("amx_bf16", "avx512_bf16"), "bf16"), ((), "fp32")])
def test_dtype_auto_is_bf16_on_a_cpu_with_native_bf16(repo, monkeypatch, features, expected):
    from timesformer_hf import inference

    monkeypatch.setattr(inference, "cpu_bf16_features", lambda: features)
    assert inference.auto_dtype("cpu") == expected
    assert resolve_dtype("auto", torch.device("cpu")) == inference.DTYPES[expected]
    model, _ = inference.load_model(repo, device="cpu")  # dtype="auto" by default
    assert model.dtype == inference.DTYPES[expected]


def test_dtype_auto_is_said_once_and_recorded_so_a_resumed_job_does_not_mix_dtypes(
    repo, videos, tmp_path, monkeypatch, capsys
):
    from timesformer_hf import inference

    monkeypatch.setattr(inference, "cpu_bf16_features", lambda: ("amx_bf16",))
    output = tmp_path / "features.parquet"
    assert run_cli("features", repo, videos / "bikes.mp4", "--output", output, "--device", "cpu") == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "in bf16" in line]
    assert said == [
        "Computing in bf16 (the CPU has amx_bf16: --dtype auto); --dtype fp32 gives the original's numbers exactly"
    ]
    report = json.loads((tmp_path / "features.parquet.report.json").read_text())
    assert report["settings"]["dtype"] == "bf16"
    import pyarrow.parquet as pq

    assert pq.read_table(output).schema.field("feature").type.value_type == "float"  # stored as float32
    # the same job in fp32 is another job: refused, not mixed into the bf16 results
    assert run_cli("features", repo, videos / "bikes.mp4", "--output", output, "--dtype", "fp32") == 1
    assert "already exists (written for other videos or settings)" in capsys.readouterr().err

"""The `timesformer-hf` command layer: dispatch, spelling, errors, train; the inference commands are in
test_inference.py."""

import json
import re
import subprocess
import sys

import pytest
from conftest import TINY

from timesformer_hf.commands.app import main
from timesformer_hf.commands.jobs import idle_cpus_notice
from timesformer_hf.commands.options import dashed, default_num_workers
from timesformer_hf.synthetic import write_motion_dataset
from timesformer_hf.video_processing_timesformer import TimeSformerVideoProcessor


@pytest.fixture(scope="module")
def trained_repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    write_motion_dataset(root / "data", num_train_per_class=1, num_eval_per_class=1, num_frames=4, size=32)
    overrides = ",".join(f"{name}={value}" for name, value in TINY.items() if name != "num_labels")
    status = main([
        "train", "--train-dir", str(root / "data" / "train"), "--validation_dir", str(root / "data" / "validation"),
        "--from-scratch", "--config-overrides", overrides, "--frame-sampling", "uniform", "--horizontal-flip", "False",
        "--output-dir", str(root / "run"), "--max-steps", "1", "--per-device-train-batch-size", "2",
        "--report-to", "none", "--disable-tqdm", "True", "--dataloader-pin-memory", "False",
    ])  # fmt: skip
    assert status == 0
    return root


def test_train_writes_a_hub_ready_repo(trained_repo):
    repo = trained_repo / "run" / "model"
    names = {path.name for path in repo.iterdir()}
    assert {"config.json", "model.safetensors", "video_preprocessor_config.json", "README.md"} <= names
    assert json.loads((repo / "config.json").read_text())["id2label"]["3"] == "right_2"
    assert TimeSformerVideoProcessor.from_pretrained(repo).frame_sampling == "uniform"


def test_train_in_bf16_without_a_gpu(trained_repo, tmp_path):
    overrides = ",".join(f"{name}={value}" for name, value in TINY.items() if name != "num_labels")
    status = main([
        "train", "--train-dir", str(trained_repo / "data" / "train"), "--validation-dir",
        str(trained_repo / "data" / "validation"), "--from-scratch", "--config-overrides",
        overrides, "--frame-sampling", "uniform", "--output-dir", str(tmp_path / "run"), "--max-steps", "1",
        "--per-device-train-batch-size", "2", "--report-to", "none", "--bf16",  # no --use-cpu needed
    ])  # fmt: skip
    assert status == 0
    assert json.loads((tmp_path / "run" / "model" / "config.json").read_text())["dtype"] == "float32"


def test_train_without_arguments_says_what_is_needed(capsys):
    assert main(["train"]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--train-dir" in error and "timesformer-hf train" in error


def test_dashed_spelling():
    assert dashed(["--batch_size", "4", "--top_k=2", "--json", "-x", "my_file.mp4", "--", "--not_an_option"]) == [
        "--batch-size", "4", "--top-k=2", "--json", "-x", "my_file.mp4", "--", "--not_an_option",
    ]  # fmt: skip


def test_processes_on_one_machine_share_its_cpus(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 64)
    assert [default_num_workers(n) for n in (1, 4, 8, 32, 64)] == [8, 8, 7, 1, 1]
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert default_num_workers() == default_num_workers(2) == 1
    # launchers give each process one thread unless told: say how to use the rest, once there is a rest to use
    notice = idle_cpus_notice(local_processes=8, threads=1, cpus=64)
    assert "--num_cpu_threads_per_process 8" in notice and "OMP_NUM_THREADS=8" in notice
    assert "\n" not in notice
    assert idle_cpus_notice(local_processes=8, threads=8, cpus=64) is None  # threads given
    assert idle_cpus_notice(local_processes=1, threads=1, cpus=64) is None  # one process: the user's choice
    assert idle_cpus_notice(local_processes=2, threads=1, cpus=2) is None  # one CPU each: nothing idle


def test_version_and_usage_errors(capsys):
    assert main(["--version"]) == 0 and capsys.readouterr().out.startswith("timesformer-hf 0.1.0")
    assert main(["classify"]) == 2
    error = capsys.readouterr().err
    assert "required" in error and error.count("\n") == 1  # one line


@pytest.mark.parametrize(
    ("argv", "prog", "hint"),
    [
        (
            ["classify", "repo", "video.mp4", "--top-kk", "3"],
            "timesformer-hf classify",
            "did you mean --top-k?",
        ),
        (
            ["features", "repo", "v.mp4", "--output", "f.npy", "--batch_sise", "2"],
            "features",
            "--batch-size?",
        ),
        (
            ["train", "--train-dir", "data", "--learnin-rate", "1e-4"],
            "train",
            "did you mean --learning-rate?",
        ),
        (
            ["train", "--train-dir", "data", "--learnin_rate", "1e-4"],
            "train",
            "did you mean --learning-rate?",
        ),
    ],
)
def test_a_misspelled_option_gets_the_commands_usage_and_the_closest_option(capsys, argv, prog, hint):
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and prog in error and hint in error, error
    assert f"see timesformer-hf {argv[0]} --help" in error


def test_train_help_shows_dashed_options_and_each_default_once(capsys):
    assert main(["train", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--learning-rate LEARNING_RATE" in text and "--from-scratch" in text
    assert "--learning_rate" not in text and "--model_name_or_path" not in text
    entries = [" ".join(entry.split()) for entry in re.split(r"\n  (?=-)", text.partition("options:")[2])]
    assert len(entries) > 100
    assert [entry.split()[0] for entry in entries if entry.count("(default:") > 1] == []
    assert any("(default: 5e-05)" in entry for entry in entries if entry.startswith("--learning-rate"))


def test_known_errors_are_one_line_and_debug_shows_the_traceback(tmp_path):
    command = [
        sys.executable,
        "-m",
        "timesformer_hf.cli",
        "classify",
        str(tmp_path / "no-repo"),
        str(tmp_path),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.startswith("timesformer-hf: error: No videos") and result.stderr.count("\n") == 1
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=120, env={"TIMESFORMER_HF_DEBUG": "1", "PATH": ""}
    )
    assert result.returncode == 1 and "Traceback" in result.stderr


@pytest.mark.parametrize("case", ["missing", "empty-folder", "text", "existing-output"])
def test_convert_errors_are_one_line(tmp_path, capsys, case):
    text = tmp_path / "notes.pyth"
    text.write_text("not a checkpoint")
    (tmp_path / "empty").mkdir()
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "config.json").write_text("{}")
    argv = {
        "missing": ["--checkpoint", str(tmp_path / "missing.pyth"), "--output-dir", str(tmp_path / "out")],
        "empty-folder": ["--checkpoint-dir", str(tmp_path / "empty"), "--output-dir", str(tmp_path / "out")],
        "text": ["--checkpoint", str(text), "--output-dir", str(tmp_path / "out")],
        "existing-output": ["--checkpoint", str(text), "--output-dir", str(tmp_path / "taken")],
    }[case]
    assert main(["convert", *argv]) == 1
    error = capsys.readouterr().err
    assert error.startswith("timesformer-hf: error: ") and error.count("\n") == 1, error
    assert "weights_only=False" not in error and "Traceback" not in error


def test_output_piped_into_a_reader_that_stops_ends_quietly(trained_repo):
    # as `timesformer-hf classify ... | head -1`: the reader is gone before the first result is printed
    command = [
        sys.executable, "-m", "timesformer_hf.cli", "classify", str(trained_repo / "run" / "model"),
        str(trained_repo / "data" / "validation"), "--num-workers", "0",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.close()
    error = process.stderr.read()
    assert process.wait(timeout=120) == 141, error
    assert "Error" not in error and "unexpected" not in error and "Traceback" not in error

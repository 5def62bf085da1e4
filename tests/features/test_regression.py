"""Regression end to end: a list of numeric targets trains a one-output model that `evaluate` and `classify` report
as values (the velocity of the moving bar: direction times speed)."""

import json

import numpy as np
import pytest
from test_training import TINY_OVERRIDES, training_args

from timesformer_hf import TimeSformerForVideoClassification
from timesformer_hf.commands.app import main
from timesformer_hf.data import load_video_dataset, split_train_validation
from timesformer_hf.evaluation import regression_metrics
from timesformer_hf.synthetic import write_motion_dataset
from timesformer_hf.training import DataTrainingArguments, ModelArguments, run_training


def velocity(label: str) -> float:
    direction, speed = label.split("_")
    return (1.0 if direction == "right" else -1.0) * float(speed) + 0.25  # a fraction: regression targets


@pytest.fixture(scope="module")
def velocity_lists(tmp_path_factory):
    root = tmp_path_factory.mktemp("velocity")
    write_motion_dataset(root, num_train_per_class=2, num_eval_per_class=1, num_frames=4, size=32)
    for split in ("train", "validation"):
        rows = [
            f"{path.relative_to(root)},{velocity(path.parent.name)}\n"
            for path in sorted((root / split).rglob("*.mp4"))
        ]
        (root / f"{split}.csv").write_text("video,speed\n" + "".join(rows))
    return root


@pytest.fixture(scope="module")
def regression_run(velocity_lists, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("regression-run")
    metrics = run_training(
        ModelArguments(from_scratch=True, config_overrides=TINY_OVERRIDES),
        DataTrainingArguments(
            train_file=str(velocity_lists / "train.csv"),
            validation_file=str(velocity_lists / "validation.csv"),
            label_column_name="speed",
            frame_sampling="uniform",
            horizontal_flip=False,
        ),
        training_args(output_dir, max_steps=2),
    )
    return output_dir / "model", metrics


def test_fractional_labels_are_targets_and_split_at_random(velocity_lists):
    dataset = load_video_dataset(velocity_lists / "train.csv", label_column="speed")
    assert dataset.features["label"].dtype == "float32"
    assert sorted(set(dataset["label"])) == [-1.75, -0.75, 1.25, 2.25]
    train, validation = split_train_validation(dataset, 0.25)
    assert len(train) + len(validation) == len(dataset) and len(validation) == 2
    integers = velocity_lists / "integers.csv"
    integers.write_text("video,label\na.mp4,1\nb.mp4,3\n")
    assert load_video_dataset(integers).features["label"].names == ["1", "3"]  # integers are class names
    assert load_video_dataset(integers, regression=True)["label"] == [1.0, 3.0]


def test_training_saves_a_regression_model_with_its_metrics_and_card(regression_run):
    repo, metrics = regression_run
    assert {"eval_mse", "eval_mae", "eval_pearson_r"} <= set(metrics)
    assert metrics["eval_mse"] >= 0 and "eval_top1_accuracy" not in metrics
    model = TimeSformerForVideoClassification.from_pretrained(repo)
    assert model.config.problem_type == "regression" and model.config.num_labels == 1
    assert model.config.id2label == {0: "speed"}
    card = (repo / "README.md").read_text()
    assert "- Task: regression, 1 predicted value(s) per video" in card
    assert "Mean squared error" in card and "print(logits[0, 0].item())" in card


def test_classify_prints_a_value_per_video_and_window(regression_run, velocity_lists, capsys):
    repo, _ = regression_run
    video = next((velocity_lists / "validation").rglob("*.mp4"))
    assert main(["classify", str(repo), str(video), "--num-workers", "0", "--json", "--window", "0.05"]) == 0
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert set(record) == {"video", "value", "windows"} and isinstance(record["value"], float)
    assert record["windows"] and all(isinstance(window["value"], float) for window in record["windows"])
    assert record["value"] == pytest.approx(
        np.mean([window["value"] for window in record["windows"]]), abs=1e-5
    )


def test_evaluate_reports_mse_mae_and_pearson_r(regression_run, velocity_lists, tmp_path, capsys):
    repo, _ = regression_run
    arguments = [
        "evaluate",
        str(repo),
        str(velocity_lists / "validation.csv"),
        "--label-column-name",
        "speed",
    ]
    arguments += [
        "--output-dir",
        str(tmp_path),
        "--num-workers",
        "0",
        "--predictions",
        str(tmp_path / "p.jsonl"),
    ]
    assert main(arguments) == 0
    report = json.loads((tmp_path / "evaluation.json").read_text())
    records = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    values = np.array([record["value"] for record in records])
    targets = np.array([record["label"] for record in records])
    expected = regression_metrics(values, targets)
    for name in ("mse", "mae", "pearson_r"):
        assert report[name] == pytest.approx(expected[name], rel=1e-5)
    assert "mse:" in capsys.readouterr().out and not (tmp_path / "confusion_matrix.png").exists()

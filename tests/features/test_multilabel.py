"""Multi-label data, metrics, training and predictions: several labels per video, BCE, mAP and F1, sigmoid scores."""

import json
import re

import numpy as np
import pytest
import torch
from conftest import TINY, tiny_config
from test_training import training_args
from transformers import TrainingArguments

from timesformer_hf import TimeSformerForVideoClassification, TimeSformerVideoProcessor
from timesformer_hf.commands.app import main
from timesformer_hf.data import (
    VideoClipTransform,
    class_label,
    collate_videos,
    is_multi_label,
    load_video_dataset,
    probe_videos,
    split_train_validation,
)
from timesformer_hf.evaluation import multi_label_metrics
from timesformer_hf.synthetic import ACTION_LABELS, write_action_dataset
from timesformer_hf.training import DataTrainingArguments, ModelArguments, run_training
from timesformer_hf.video import read_video

TINY_OVERRIDES = ",".join(f"{name}={value}" for name, value in TINY.items() if name != "num_labels")


# ---- metrics ------------------------------------------------------------------------------------------------


# ---- data ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def actions_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("actions")
    write_action_dataset(root, num_train=8, num_eval=4, num_frames=4, size=32)
    return root


def test_multi_hot_targets_reach_the_batch(actions_dir):
    dataset = probe_videos(load_video_dataset(actions_dir / "train.json"))
    rows = json.loads((actions_dir / "train.json").read_text())
    assert class_label(dataset.features["label"]).names == list(ACTION_LABELS)
    processor = TimeSformerVideoProcessor(
        size={"shortest_edge": 32},
        crop_size={"height": 32, "width": 32},
        num_frames=4,
        frame_sampling="uniform",
    )
    dataset.set_transform(VideoClipTransform(processor, training=False, num_labels=2))
    batch = collate_videos([dataset[i] for i in range(4)])
    assert batch["labels"].dtype == torch.float32
    expected = [[float(name in row["label"]) for name in ACTION_LABELS] for row in rows[:4]]
    assert batch["labels"].tolist() == expected
    # the frames are those of the listed video
    frames = read_video(str(actions_dir / rows[1]["video"]), np.arange(4))
    direct = processor(frames, do_sample_frames=False, return_tensors="pt")["pixel_values"][0]
    torch.testing.assert_close(batch["pixel_values"][1], direct)
    dataset.set_transform(VideoClipTransform(processor, training=False))
    with pytest.raises(ValueError, match="num_labels"):
        dataset[0]


def test_collating_label_lists_says_what_to_do():
    example = {"pixel_values": torch.zeros(1), "labels": [0, 1]}
    with pytest.raises(ValueError, match="multi-hot"):
        collate_videos([example])


def test_multi_label_split_holds_out_a_random_share(actions_dir):
    dataset = load_video_dataset(actions_dir / "train.json")
    train, validation = split_train_validation(dataset, 0.25, seed=0)
    assert (len(train), len(validation)) == (6, 2)
    assert sorted([*train["video"], *validation["video"]]) == sorted(dataset["video"])
    assert is_multi_label(validation.features["label"])


# ---- training and predictions -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def multi_label_run(actions_dir, tmp_path_factory):
    """2 steps of a tiny model on the action list: `(run folder, metrics)`."""
    output_dir = tmp_path_factory.mktemp("multi-label-run")
    metrics = run_training(
        ModelArguments(from_scratch=True, config_overrides=TINY_OVERRIDES),
        DataTrainingArguments(
            train_file=str(actions_dir / "train.json"),
            validation_file=str(actions_dir / "validation.json"),
            frame_sampling="uniform",
            horizontal_flip=False,
        ),
        training_args(output_dir, max_steps=2),
    )
    return output_dir, metrics


def test_multi_label_training_saves_a_multi_label_model(multi_label_run, actions_dir):
    output_dir, metrics = multi_label_run
    for name in ("map_macro", "map_micro", "f1_macro", "f1_micro", "precision_micro", "recall_micro"):
        assert 0 <= metrics[f"eval_{name}"] <= 1
    assert "eval_top1_accuracy" not in metrics
    config = json.loads((output_dir / "model" / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification"
    assert config["id2label"] == {"0": "blinking_square", "1": "moving_bar"}
    state = json.loads((output_dir / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    card = (output_dir / "model" / "README.md").read_text()
    assert "mAP (macro)" in card and "Mean average precision in percent" in card
    assert "- Classes: 2 (multi-label: sigmoid scores)" in card and "logits[0].sigmoid() >= 0.5" in card
    # the loss is the BCE of the logits and the multi-hot targets
    model = TimeSformerForVideoClassification.from_pretrained(output_dir / "model").eval()
    pixel_values, targets = torch.randn(2, 4, 3, 32, 32), torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    with torch.no_grad():
        output = model(pixel_values, labels=targets)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(output.logits, targets)
    torch.testing.assert_close(output.loss, expected)


def test_multi_label_validation_needs_a_list(actions_dir, tmp_path):
    with pytest.raises(ValueError, match="`validation_file=`"):
        run_training(
            ModelArguments(from_scratch=True, config_overrides=TINY_OVERRIDES),
            DataTrainingArguments(train_file=str(actions_dir / "train.json"), validation_dir=str(tmp_path)),
            TrainingArguments(output_dir=str(tmp_path / "run"), report_to="none"),
        )


def classify_json(capsys, *arguments):
    assert main(["classify", *map(str, arguments), "--num-workers", "0", "--json", "--dtype", "fp32"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_classify_lists_the_labels_above_the_threshold(multi_label_run, actions_dir, capsys):
    repo = multi_label_run[0] / "model"
    video = actions_dir / "validation" / "0003.mp4"
    (record,) = classify_json(capsys, repo, video, "--threshold", "0")
    assert sorted(p["label"] for p in record["predictions"]) == sorted(ACTION_LABELS)
    # sigmoid probabilities of the model itself (one uniform clip of the 4 frames)
    model = TimeSformerForVideoClassification.from_pretrained(repo).eval()
    processor = TimeSformerVideoProcessor.from_pretrained(repo)
    inputs = processor(read_video(str(video), np.arange(4)), do_sample_frames=False, return_tensors="pt")
    with torch.no_grad():
        probabilities = model(**inputs).logits[0].sigmoid()
    for prediction in record["predictions"]:
        index = model.config.label2id[prediction["label"]]
        assert prediction["score"] == pytest.approx(float(probabilities[index]), abs=1e-5)
    (best, second) = record["predictions"]
    middle = (best["score"] + second["score"]) / 2
    (record,) = classify_json(capsys, repo, video, "--threshold", middle)
    assert [p["label"] for p in record["predictions"]] == [best["label"]]
    (record,) = classify_json(capsys, repo, video, "--threshold", 1)
    assert record["predictions"] == []
    assert main(["classify", str(repo), str(video), "--num-workers", "0", "--threshold", "1"]) == 0
    assert "(no label above the threshold)" in capsys.readouterr().out
    assert main(["classify", str(repo), str(video), "--threshold", "2"]) == 2  # a usage error
    assert "argument --threshold: is a probability" in capsys.readouterr().err


def test_evaluate_reports_map_and_f1(multi_label_run, actions_dir, tmp_path, capsys):
    repo = multi_label_run[0] / "model"
    output_dir = tmp_path / "evaluation"
    arguments = [str(repo), str(actions_dir / "validation.json"), "--num-workers", "0", "--threshold", "0.5"]
    arguments += ["--dtype", "fp32"]  # the scores are checked against the model's own fp32 ones
    assert (
        main(
            [
                "evaluate",
                *arguments,
                "--output-dir",
                str(output_dir),
                "--predictions",
                str(tmp_path / "p.jsonl"),
            ]
        )
        == 0
    )
    assert "map_macro" in capsys.readouterr().out
    report = json.loads((output_dir / "evaluation.json").read_text())
    rows = json.loads((actions_dir / "validation.json").read_text())
    records = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [record["label"] for record in records] == [row["label"] for row in rows]
    probabilities = classify_json(
        capsys, repo, *(actions_dir / row["video"] for row in rows), "--threshold", "0"
    )
    scores = np.array(
        [
            [next(p["score"] for p in r["predictions"] if p["label"] == name) for name in ACTION_LABELS]
            for r in probabilities
        ]
    )
    targets = np.array([[name in row["label"] for name in ACTION_LABELS] for row in rows])
    expected = multi_label_metrics(scores, targets, threshold=0.5)
    for name, value in expected.items():
        assert report[name] == pytest.approx(value, abs=1e-5), name
    assert report["threshold"] == 0.5 and not (output_dir / "confusion_matrix.png").exists()


@pytest.mark.parametrize("form", ["list", "datasets"])
def test_a_single_label_model_is_not_evaluated_on_several_labels_per_video(
    actions_dir, tmp_path, capsys, form
):
    from datasets import Dataset

    labels = dict(enumerate(ACTION_LABELS))
    config = tiny_config(num_labels=2, id2label=labels, label2id={name: i for i, name in labels.items()})
    TimeSformerForVideoClassification(config).save_pretrained(tmp_path / "single")
    source = [str(actions_dir / "validation.json")]
    if form == "datasets":  # the same rows as a saved data set: a list of label names per video
        rows = json.loads((actions_dir / "validation.json").read_text())
        rows = [
            {"video": str(actions_dir / row["video"]), "label": [*row["label"], *ACTION_LABELS]}
            for row in rows
        ]
        Dataset.from_list(rows).save_to_disk(tmp_path / "set")
        source = ["--dataset-name", str(tmp_path / "set")]
    arguments = [str(tmp_path / "single"), *source, "--output-dir", str(tmp_path)]
    assert main(["evaluate", *arguments]) == 1
    assert "one label per video is expected here: use a multi-label model" in capsys.readouterr().err


@pytest.mark.slow
def test_tiny_model_learns_two_actions(tmp_path):
    """A few hundred steps of the demo's tiny divided model on the two-action set: mAP >= 0.9."""
    from timesformer_hf.demo import TINY_MODEL

    write_action_dataset(tmp_path / "data", num_train=96, num_eval=32, seed=0)
    metrics = run_training(
        ModelArguments(from_scratch=True, config_overrides=TINY_MODEL, embedding_init_std=1.0),
        DataTrainingArguments(
            train_file=str(tmp_path / "data" / "train.json"),
            validation_file=str(tmp_path / "data" / "validation.json"),
            num_frames=8,
            frame_sampling="uniform",
            horizontal_flip=False,
        ),
        TrainingArguments(
            output_dir=str(tmp_path / "run"),
            num_train_epochs=40,
            per_device_train_batch_size=16,
            per_device_eval_batch_size=32,
            learning_rate=1e-3,
            weight_decay=0.05,
            warmup_steps=0.1,
            lr_scheduler_type="cosine",
            save_strategy="no",
            report_to="none",
            dataloader_num_workers=1,
            dataloader_pin_memory=False,
            seed=0,
            disable_tqdm=True,
        ),
    )
    assert metrics["eval_map_macro"] >= 0.9, metrics


def test_explain_shows_a_multi_label_models_sigmoid_scores(multi_label_run, actions_dir, tmp_path, capsys):
    repo = multi_label_run[0] / "model"
    video = actions_dir / "validation" / "0003.mp4"
    (record,) = classify_json(capsys, repo, video, "--threshold", "0")
    expected = {prediction["label"]: prediction["score"] for prediction in record["predictions"]}
    main(
        [
            "explain",
            str(repo),
            str(video),
            "--output",
            str(tmp_path / "map.png"),
            "--device",
            "cpu",
            "--dtype",
            "fp32",
        ]
    )
    printed = capsys.readouterr().out
    shown = dict(
        (label, float(score) / 100) for label, score in re.findall(r"(\w+) ([\d.]+)%", printed.split(";")[-1])
    )
    assert set(shown) == set(expected), printed
    for label, score in shown.items():  # the sigmoid of each label, as classify reports it (not a softmax)
        assert abs(score - expected[label]) < 6e-4, (label, score, expected[label])

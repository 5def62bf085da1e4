"""Fine-tuning: ViT initialisation, optimiser groups, resuming, distributed runs with accelerate, learning."""

import json
import logging
import os
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
import torch
from conftest import TINY, randomize_, tiny_config, write_tiny_vit
from datasets import ClassLabel, Dataset, Features, Value
from huggingface_hub import ModelCard
from transformers import (
    EvalPrediction,
    HfArgumentParser,
    TrainerCallback,
    TrainingArguments,
)

from timesformer_hf import TimeSformerForVideoClassification, TimeSformerVideoProcessor
from timesformer_hf.data import (
    split_train_validation,
)
from timesformer_hf.errors import InputError, as_flags
from timesformer_hf.evaluation import multi_label_metrics
from timesformer_hf.hub import build_model_card
from timesformer_hf.synthetic import motion_labels, write_motion_dataset
from timesformer_hf.training import (
    DataTrainingArguments,
    ModelArguments,
    TimeSformerTrainer,
    build_compute_metrics,
    load_model_and_processor,
    parse_config_overrides,
    resolve_horizontal_flip,
    resolve_license,
    run_training,
)
from timesformer_hf.video import FrameSampler

TINY_OVERRIDES = ",".join(f"{name}={value}" for name, value in TINY.items() if name != "num_labels")


@pytest.fixture(scope="module")
def run_without_validation(tmp_path_factory):
    """A 1-step run from scratch on `train/` (4 classes of 2 videos) with no validation set, written to
    `runs/mine` relative to the working directory (the data folder) as a user would; returns that folder, the
    metrics and the records logged by the package."""
    root = tmp_path_factory.mktemp("small")
    write_motion_dataset(root, num_train_per_class=2, num_eval_per_class=0, num_frames=4, size=32)
    arguments = DataTrainingArguments(train_dir="train", frame_sampling="uniform", horizontal_flip=False)
    records = Records()
    package_logger = logging.getLogger("timesformer_hf")
    cwd = os.getcwd()
    os.chdir(root)
    package_logger.addHandler(records)
    try:
        metrics = run_training(
            ModelArguments(from_scratch=True, config_overrides=TINY_OVERRIDES),
            arguments,
            training_args("runs/mine", max_steps=1),
        )
    finally:
        package_logger.removeHandler(records)
        os.chdir(cwd)
    return root, metrics, records.records


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def data_args(root, **overrides):
    return DataTrainingArguments(
        train_dir=str(root / "train"),
        validation_dir=str(root / "validation"),
        frame_sampling="uniform",
        horizontal_flip=False,
        **overrides,
    )


def training_args(output_dir, **overrides):
    defaults = dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=4,
        per_device_eval_batch_size=4,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        dataloader_pin_memory=False,
    )
    return TrainingArguments(**{**defaults, **overrides})


# The image-ViT initialisation itself is tested in test_modeling.py (from_vit); here: its use by training.


def test_weight_decay_spares_embeddings_biases_and_norms(tmp_path):
    model = TimeSformerForVideoClassification(TimeSformerForVideoClassification.config_class(**TINY))
    trainer = TimeSformerTrainer(model=model, args=training_args(tmp_path, weight_decay=0.05))
    decayed = set(trainer.get_decay_parameter_names(model))
    assert "classifier.weight" in decayed
    assert "timesformer.embeddings.patch_embeddings.projection.weight" in decayed
    for name, _ in model.named_parameters():
        if (
            name.endswith("bias")
            or "layernorm" in name
            or name.endswith(("cls_token", "position_embeddings", "time_embeddings"))
        ):
            assert name not in decayed, name
    optimizer = trainer.create_optimizer()
    no_decay = {
        id(p) for group in optimizer.param_groups if group["weight_decay"] == 0 for p in group["params"]
    }
    assert id(model.timesformer.embeddings.time_embeddings) in no_decay


def test_config_overrides():
    assert parse_config_overrides("hidden_size=64, attention_type=space_only,qkv_bias=False") == {
        "hidden_size": 64,
        "attention_type": "space_only",
        "qkv_bias": False,
    }
    with pytest.raises(ValueError, match="name=value"):
        parse_config_overrides("hidden_size")


class Interrupt(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        raise KeyboardInterrupt(f"simulated interruption after the checkpoint at step {state.global_step}")


class CountSteps(TrainerCallback):
    def __init__(self):
        self.steps, self.first = 0, None

    def on_step_end(self, args, state, control, **kwargs):
        self.steps += 1
        self.first = self.first or state.global_step


def test_interrupted_run_resumes_from_its_checkpoint(motion_dir, tmp_path):
    model_args = ModelArguments(from_scratch=True, config_overrides=TINY_OVERRIDES)
    arguments = dict(max_steps=4, save_strategy="steps", save_steps=2, per_device_train_batch_size=2)
    with pytest.raises(KeyboardInterrupt):
        run_training(
            model_args, data_args(motion_dir), training_args(tmp_path, **arguments), callbacks=[Interrupt()]
        )
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-2"]

    counter = CountSteps()
    run_training(model_args, data_args(motion_dir), training_args(tmp_path, **arguments), callbacks=[counter])
    state = json.loads((tmp_path / "trainer_state.json").read_text())
    assert state["global_step"] == 4 and state["max_steps"] == 4
    assert (counter.first, counter.steps) == (3, 2)  # started after the checkpoint, ran the rest
    assert (tmp_path / "model" / "config.json").is_file()
    processor = TimeSformerVideoProcessor.from_pretrained(tmp_path / "model")
    assert processor.do_sample_frames and processor.num_frames == 4  # a path gives the model's frame count


def test_evaluating_during_training_still_trains_and_do_eval_alone_only_evaluates(motion_dir, tmp_path):
    # `--eval-strategy epoch` sets TrainingArguments.do_eval, without --do-train (the README's fine-tune example)
    model_args = ModelArguments(from_scratch=True, config_overrides=TINY_OVERRIDES)
    counter = CountSteps()
    arguments = training_args(tmp_path / "during", max_steps=1, eval_strategy="epoch")
    run_training(model_args, data_args(motion_dir), arguments, callbacks=[counter])
    assert counter.steps == 1
    counter = CountSteps()
    run_training(
        model_args, data_args(motion_dir), training_args(tmp_path / "only", do_eval=True), callbacks=[counter]
    )
    assert counter.steps == 0


# `--multi_gpu` on a CPU-only machine starts 2 processes through torchrun (DDP over gloo). `--cpu --num_processes 2`
# starts 2 processes only through MPI (`--mpirun_hostfile`); without it accelerate starts one, which still trains.
@pytest.mark.parametrize(
    "launcher, world_size", [(["--multi_gpu"], 2), (["--cpu"], 1)], ids=["multi_gpu-2-processes", "cpu"]
)
def test_accelerate_launch_run(motion_dir, tmp_path, launcher, world_size):
    output_dir = tmp_path / "run"
    command = [
        sys.executable, "-m", "accelerate.commands.launch", *launcher, "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no",
        "-m", "timesformer_hf.cli", "train",
        "--train_dir", str(motion_dir / "train"), "--validation_dir", str(motion_dir / "validation"),
        "--from_scratch", "--config_overrides", TINY_OVERRIDES, "--frame_sampling", "uniform", "--horizontal_flip", "False",
        "--output_dir", str(output_dir), "--per_device_train_batch_size", "2", "--num_train_epochs", "1",
        "--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "True",
        "--dataloader_pin_memory", "False", "--log-level", "info", "--log-level-replica", "info",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-5000:]
    for rank in range(world_size):
        assert f"Process rank: {rank}, world size: {world_size}" in log
    assert f"Process rank: {world_size}," not in log
    state = json.loads((output_dir / "trainer_state.json").read_text())
    assert state["global_step"] == 8 // (2 * world_size)  # 8 videos, 2 per process and step
    assert sorted(os.listdir(output_dir / "model")).count("config.json") == 1
    assert [name for name in os.listdir(output_dir) if name.startswith(".")] == []  # no half-written repo
    model = TimeSformerForVideoClassification.from_pretrained(output_dir / "model")
    assert model.config.id2label[0] == "left_1"


@pytest.mark.slow
def test_tiny_model_learns_motion(tmp_path):
    root = tmp_path / "data"
    write_motion_dataset(root, num_train_per_class=48, num_eval_per_class=16)
    from timesformer_hf.demo import train_model

    metrics, _ = train_model("divided_space_time", root, tmp_path / "run", tmp_path / "repo", seed=0)
    assert metrics["eval_top1_accuracy"] >= 0.9
    # frames seen independently: the classes (same frames, different order) cannot be told apart
    metrics, _ = train_model("space_only", root, tmp_path / "run_space", tmp_path / "repo_space", seed=0)
    assert metrics["eval_top1_accuracy"] <= 0.5


def test_model_from_an_image_vit_folder_keeps_its_normalisation(tmp_path):
    write_tiny_vit(tmp_path)
    model, processor = load_model_and_processor(ModelArguments(init_from_image=str(tmp_path)), ["a", "b"], 4)
    assert model.config.num_frames == 4 and model.config.id2label == {0: "a", 1: "b"}
    assert list(processor.image_mean) == [0.5] * 3 and processor.crop_size["height"] == 32


def test_fine_tuning_at_other_shapes_resizes_the_pretrained_embeddings(tmp_path):
    pretrained = randomize_(TimeSformerForVideoClassification(tiny_config()))  # 4 frames, 32 pixels
    pretrained.save_pretrained(tmp_path)
    arguments = ModelArguments(model_name_or_path=str(tmp_path), config_overrides="image_size=64")
    model, processor = load_model_and_processor(arguments, ["a", "b"], num_frames=8)
    assert (model.config.num_frames, model.config.image_size, model.config.num_labels) == (8, 64, 2)
    assert processor.crop_size["height"] == 64
    pretrained.resize_embeddings(num_frames=8, image_size=64)  # the nearest-resized originals
    embeddings, expected = model.timesformer.embeddings, pretrained.timesformer.embeddings
    assert embeddings.time_embeddings.abs().sum() > 0
    torch.testing.assert_close(embeddings.time_embeddings, expected.time_embeddings)
    torch.testing.assert_close(embeddings.position_embeddings, expected.position_embeddings)
    torch.testing.assert_close(
        model.timesformer.embeddings.cls_token, pretrained.timesformer.embeddings.cls_token
    )
    with pytest.raises(ValueError, match="only the classifier"):
        load_model_and_processor(
            ModelArguments(model_name_or_path=str(tmp_path), config_overrides="intermediate_size=48"), ["a"]
        )


def test_repo_dir_replaces_only_model_repos(tmp_path, motion_dir):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "thesis.tex").write_text("precious")
    model_args = ModelArguments(from_scratch=True, config_overrides=TINY_OVERRIDES, repo_dir=str(notes))
    with pytest.raises(FileExistsError, match="holds something else than what this command writes"):
        run_training(model_args, data_args(motion_dir), training_args(tmp_path / "run", max_steps=1))
    assert (notes / "thesis.tex").read_text() == "precious"
    assert not (tmp_path / "run").exists()  # refused before training
    # the default <output_dir>/model too
    (tmp_path / "run2" / "model").mkdir(parents=True)
    (tmp_path / "run2" / "model" / "mine.txt").write_text("kept")
    default = ModelArguments(from_scratch=True, config_overrides=TINY_OVERRIDES)
    with pytest.raises(FileExistsError, match="model holds something else"):
        run_training(default, data_args(motion_dir), training_args(tmp_path / "run2", max_steps=1))
    assert (tmp_path / "run2" / "model" / "mine.txt").read_text() == "kept"


def test_no_training_videos_says_what_is_needed_with_an_example():
    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, TrainingArguments))
    with pytest.raises(ValueError) as error:
        parser.parse_args_into_dataclasses(["--from-scratch"])
    message = str(error.value)
    assert "`train_dir=`" in message and "`train_file=`" in message and "`output_dir=`" in message
    assert "--train-dir (a folder" in as_flags(message)  # as the command line says it
    assert "`timesformer-hf train --train-dir data/train " in message and "\n" not in message
    (parsed,) = HfArgumentParser(DataTrainingArguments).parse_args_into_dataclasses(
        ["--train-dir", "data", "--frame-sampling", "uniform"]
    )  # the flags as the message spells them
    assert (parsed.train_dir, parsed.frame_sampling) == ("data", "uniform")


def test_small_folder_without_validation_set_trains(run_without_validation):
    root, metrics, _ = run_without_validation
    assert 0 <= metrics["eval_top1_accuracy"] <= 1
    assert (root / "runs" / "mine" / "model" / "model.safetensors").is_file()


def test_process_rank_is_not_a_warning(run_without_validation):
    _, _, records = run_without_validation
    warnings = [record.getMessage() for record in records if record.levelno >= logging.WARNING]
    assert not [message for message in warnings if "Process rank" in message], warnings


def test_split_holds_out_every_class_and_keeps_every_class(tmp_path):
    labels = [0] * 2 + [1] * 3 + [2] * 20 + [3] * 2
    dataset = Dataset.from_dict(
        {"video": [f"{i}.mp4" for i in range(len(labels))], "label": labels},
        features=Features({"video": Value("string"), "label": ClassLabel(names=["a", "b", "c", "d"])}),
    )
    train, validation = split_train_validation(dataset, 0.15, seed=0)
    assert sorted(Counter(validation["label"]).items()) == [
        (0, 1),
        (1, 1),
        (2, 3),
        (3, 1),
    ]  # ceil(15% of 20) = 3
    assert set(train["label"]) == {0, 1, 2, 3} and len(train) + len(validation) == len(dataset)
    assert not set(train["video"]) & set(validation["video"])
    assert split_train_validation(dataset, 0.15, seed=0)[1]["video"] == validation["video"]  # seeded
    assert Counter(split_train_validation(dataset, 0.9, seed=0)[0]["label"]) == {0: 1, 1: 1, 2: 2, 3: 1}

    lonely = dataset.select([0, 1, 2, 3, 5, 25, 26])  # class "c" has one video
    with pytest.raises(ValueError, match=r"\['c'\] have a single video.*`validation_dir=`"):
        split_train_validation(lonely, 0.15)
    with pytest.raises(ValueError, match=r"`train_val_split=`\) is between 0 and 1"):
        split_train_validation(dataset, 1.5)


def test_card_of_a_run_from_scratch(run_without_validation):
    root, metrics, _ = run_without_validation
    card = ModelCard.load(root / "runs" / "mine" / "model" / "README.md")
    assert card.data.license is None  # not the original weights' license: none is known
    assert (
        'from_pretrained("runs/mine/model")' in card.content and 'from_pretrained("mine")' not in card.content
    )
    # 4 classes: top-5 would always be 100%
    assert "eval_top1_accuracy" in metrics and "eval_top5_accuracy" not in metrics
    assert "Top-1 accuracy" in card.content and "Top-5" not in card.content


def test_top_k_below_the_class_count():
    logits = np.random.default_rng(0).normal(size=(12, 10))
    prediction = EvalPrediction(predictions=logits, label_ids=np.arange(12) % 10)
    assert sorted(build_compute_metrics(num_labels=10)(prediction)) == ["top1_accuracy", "top5_accuracy"]
    assert sorted(build_compute_metrics(num_labels=5)(prediction)) == ["top1_accuracy"]


def test_license_comes_from_the_base_model_card(tmp_path, motion_dir):
    base = tmp_path / "base"
    pretrained = randomize_(TimeSformerForVideoClassification(tiny_config()))
    pretrained.save_pretrained(base)
    build_model_card(pretrained.config, model_name="base", license="apache-2.0").save(base / "README.md")
    model_args = ModelArguments(model_name_or_path=str(base))
    run_training(model_args, data_args(motion_dir), training_args(tmp_path / "run", max_steps=1))
    assert ModelCard.load(tmp_path / "run" / "model" / "README.md").data.license == "apache-2.0"

    assert resolve_license(ModelArguments(model_name_or_path=str(base), license="mit")) == "mit"
    (base / "README.md").unlink()
    assert resolve_license(model_args) is None
    assert resolve_license(ModelArguments(init_from_image="me/not-downloadable-offline")) is None


def test_horizontal_flip_defaults_to_off_for_ssv2_only():
    parser = HfArgumentParser(DataTrainingArguments)
    (default,) = parser.parse_args_into_dataclasses(["--train_dir", "data"])
    assert default.horizontal_flip is None
    (off,) = parser.parse_args_into_dataclasses(["--train_dir", "data", "--horizontal_flip", "False"])
    assert off.horizontal_flip is False
    assert resolve_horizontal_flip(None, FrameSampler(frame_sampling="ssv2")) is False
    assert (
        resolve_horizontal_flip(None, FrameSampler(frame_sampling="kinetics")) is True
        and resolve_horizontal_flip(None, FrameSampler(frame_sampling="uniform")) is True
    )
    assert (
        resolve_horizontal_flip(True, FrameSampler(frame_sampling="ssv2")) is True
        and resolve_horizontal_flip(False, FrameSampler()) is False
    )


def test_no_flip_for_classes_a_flip_swaps(caplog):
    labels = motion_labels()  # left_1, left_2, right_1, right_2
    with caplog.at_level("WARNING", logger="timesformer_hf"):
        assert resolve_horizontal_flip(None, FrameSampler(frame_sampling="uniform"), labels) is False
    assert "a flip turns 'left_1' into 'right_1' (2 such pair(s)" in caplog.text
    assert resolve_horizontal_flip(False, FrameSampler(), labels) is False
    with pytest.raises(InputError, match="flipped clips would carry the wrong label"):
        resolve_horizontal_flip(True, FrameSampler(), labels)
    assert resolve_horizontal_flip(None, FrameSampler(), ["archery", "bowling"]) is True


def test_trainer_metrics_are_computed_on_sigmoid_probabilities():
    logits = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    targets = (np.random.default_rng(1).random((20, 4)) < 0.4).astype(np.int64)
    targets[0] = 1
    metrics = build_compute_metrics(num_labels=4, multi_label=True, threshold=0.4)(
        EvalPrediction(predictions=logits, label_ids=targets)
    )
    expected = multi_label_metrics(torch.from_numpy(logits).sigmoid().numpy(), targets, threshold=0.4)
    assert metrics == pytest.approx(expected)
    assert sorted(metrics) == sorted(
        ["map_macro", "map_micro", "f1_macro", "f1_micro", "precision_micro", "recall_micro"]
    )

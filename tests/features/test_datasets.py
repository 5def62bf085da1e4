"""`datasets` sources for train, evaluate and features: Hub-style data sets of real mp4 files in every form
(videofolder, Parquet with embedded bytes, WebDataset shards, a saved DatasetDict), streamed or not."""

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from conftest import TINY, sample_video_path
from datasets import ClassLabel, Dataset, DatasetDict, Features, List, Value, Video, load_dataset
from test_training import training_args
from torch.utils.data import DataLoader
from transformers import TrainerCallback

from timesformer_hf import TimeSformerForVideoClassification, TimeSformerVideoProcessor
from timesformer_hf.commands.app import main
from timesformer_hf.data import (
    MissingSplitError,
    NamedVideos,
    VideoSource,
    video_names,
)
from timesformer_hf.synthetic import write_motion_dataset
from timesformer_hf.training import DataTrainingArguments, ModelArguments, run_training
from timesformer_hf.video import read_video, sample_uniform_indices

TINY_OVERRIDES = ",".join(f"{name}={value}" for name, value in TINY.items() if name != "num_labels")
CLASSES = ["left_1", "left_2", "right_1", "right_2"]
# the saved DatasetDict's ClassLabel, in an order of its own: id2label must follow it, not sorted names
SAVED_CLASSES = ["right_2", "left_1", "right_1", "left_2"]


def motion_rows(root: Path, split: str) -> list[tuple[Path, str]]:
    return [(path, path.parent.name) for path in sorted((root / split).glob("*/*.mp4"))]


def write_parquet(root: Path, out: Path) -> Path:
    """Parquet shards (2 for train) with the videos embedded (`Video` feature) and labels as names."""
    features = Features({"video": Video(decode=False), "label": Value("string")})
    (out / "data").mkdir(parents=True)
    for split, shards in (("train", 2), ("validation", 1)):
        rows = [
            {"video": {"path": p.name, "bytes": p.read_bytes()}, "label": c}
            for p, c in motion_rows(root, split)
        ]
        dataset = Dataset.from_list(rows, features=features)
        for shard in range(shards):
            dataset.shard(shards, shard).to_parquet(
                out / "data" / f"{split}-{shard:05d}-of-{shards:05d}.parquet"
            )
    return out


def write_webdataset(root: Path, out: Path) -> Path:
    """WebDataset tar shards (2 for train): `<key>.mp4` and `<key>.cls` (the class id)."""
    out.mkdir(parents=True)
    for split, shards in (("train", 2), ("validation", 1)):
        rows = motion_rows(root, split)
        for shard in range(shards):
            with tarfile.open(out / f"{split}-{shard:05d}.tar", "w") as tar:
                for path, label in rows[shard::shards]:
                    for name, data in (
                        (f"{path.stem}.mp4", path.read_bytes()),
                        (f"{path.stem}.cls", b"%d" % CLASSES.index(label)),
                    ):
                        info = tarfile.TarInfo(name)
                        info.size = len(data)
                        tar.addfile(info, io.BytesIO(data))
    return out


def write_saved(root: Path, out: Path) -> Path:
    """A `save_to_disk` DatasetDict: videos as a binary column `clip`, labels as a ClassLabel column `action`."""
    features = Features({"clip": Value("binary"), "action": ClassLabel(names=SAVED_CLASSES)})
    splits = {
        split: Dataset.from_dict(
            {
                "clip": [p.read_bytes() for p, _ in motion_rows(root, split)],
                "action": [SAVED_CLASSES.index(c) for _, c in motion_rows(root, split)],
            },
            features=features,
        )
        for split in ("train", "validation")
    }
    DatasetDict(splits).save_to_disk(out, num_shards={"train": 2, "validation": 1})
    return out


@pytest.fixture(scope="module")
def motion(tmp_path_factory):
    """8 training and 4 validation videos (4 frames of 32x32) in every form; the folder is also a `videofolder`."""
    root = tmp_path_factory.mktemp("sources")
    write_motion_dataset(
        root / "videofolder", num_train_per_class=2, num_eval_per_class=1, num_frames=4, size=32
    )
    folder = root / "videofolder"
    return {
        "root": folder,
        "videofolder": folder,
        "parquet": write_parquet(folder, root / "parquet"),
        "webdataset": write_webdataset(folder, root / "webdataset"),
        "saved": write_saved(folder, root / "saved"),
    }


# the source options of each form (besides --dataset-name)
FORMS = {
    "videofolder": {},
    "parquet": {},
    "webdataset": {"video_column_name": "mp4", "label_column_name": "cls", "class_names": CLASSES},
    "saved": {"video_column_name": "clip", "label_column_name": "action"},
}


class CaptureInputs(TrainerCallback):
    """Record every batch the model is called with: its pixel values, labels, and whether it was training."""

    def __init__(self):
        self.calls = []

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        def hook(module, args, kwargs):
            self.calls.append((module.training, kwargs["pixel_values"].clone(), kwargs["labels"].clone()))

        model.register_forward_pre_hook(hook, with_kwargs=True)


def direct_clips(root: Path, split: str, processor) -> list[tuple[torch.Tensor, str]]:
    """Each video of the split decoded straight from its file, sampled and processed: `(clip, class name)`."""
    clips = []
    for path, label in motion_rows(root, split):
        frames = read_video(path)
        indices = sample_uniform_indices(len(frames), processor.num_frames)
        clips.append(
            (
                processor(frames[indices], do_sample_frames=False, return_tensors="pt")["pixel_values"][0],
                label,
            )
        )
    return clips


def match(clip: torch.Tensor, expected: list[tuple[torch.Tensor, str]]) -> int:
    distances = [float((clip - other).abs().max()) for other, _ in expected]
    best = int(np.argmin(distances))
    assert distances[best] < 1e-4, f"a clip that matches no video of the split (closest: {distances[best]})"
    return best


def train(dataset_name: Path, output_dir: Path, *, streaming: bool, callbacks=(), **source):
    arguments = DataTrainingArguments(
        dataset_name=str(dataset_name),
        streaming=streaming,
        frame_sampling="uniform",
        horizontal_flip=False,
        short_side_range=[
            32,
            32,
        ],  # with 32x32 videos and crops: training sees the whole frame, as evaluation
        **source,
    )
    args = training_args(output_dir, max_steps=2)
    dispatch = DispatchSetting()
    metrics = run_training(
        ModelArguments(from_scratch=True, config_overrides=TINY_OVERRIDES),
        arguments,
        args,
        callbacks=[*callbacks, dispatch],
    )
    # a stream is read by each process (its own shards), not by the main one for all; the caller's args unchanged
    assert dispatch.value is (False if streaming else None)
    assert args.accelerator_config.dispatch_batches is None and args.remove_unused_columns
    return metrics


class DispatchSetting(TrainerCallback):
    """The `dispatch_batches` of the arguments the Trainer ran with."""

    value = "not set"

    def on_train_begin(self, args, state, control, **kwargs):
        self.value = args.accelerator_config.dispatch_batches


@pytest.mark.parametrize("streaming", [False, True], ids=["map-style", "streaming"])
@pytest.mark.parametrize("form", list(FORMS))
def test_train_from_each_form_feeds_the_videos_frames_and_labels(motion, tmp_path, form, streaming):
    source = dict(FORMS[form])
    if streaming and form == "parquet":  # names without a ClassLabel: a stream needs them up front
        source["class_names"] = CLASSES
    capture = CaptureInputs()
    metrics = train(motion[form], tmp_path / "run", streaming=streaming, callbacks=[capture], **source)
    assert "eval_top1_accuracy" in metrics
    repo = tmp_path / "run" / "model"
    model = TimeSformerForVideoClassification.from_pretrained(repo)
    label_names = SAVED_CLASSES if form == "saved" else CLASSES  # a ClassLabel's own order, else sorted names
    assert [model.config.id2label[i] for i in range(4)] == label_names
    assert (
        f"fine-tuned on {motion[form].name} " in (repo / "README.md").read_text()
    )  # the card names the source
    processor = TimeSformerVideoProcessor.from_pretrained(repo)
    for training, split, count in ((True, "train", 8), (False, "validation", 4)):
        expected = direct_clips(motion["root"], split, processor)
        seen = []
        for _, pixel_values, labels in (call for call in capture.calls if call[0] == training):
            for clip, label in zip(pixel_values, labels.tolist(), strict=True):
                seen.append(match(clip, expected))
                assert model.config.id2label[label] == expected[seen[-1]][1]
        # 2 steps of 4 are one pass over the 8 training videos; evaluation reads each validation video once
        assert sorted(seen) == list(range(count)), (split, seen)


def test_two_processes_each_read_their_own_shards_of_a_streamed_set(motion, tmp_path):
    output_dir = tmp_path / "run"
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "-m", "timesformer_hf.cli", "train", "--dataset-name", str(motion["parquet"]), "--streaming",
        "--class-names", *CLASSES, "--max-steps", "2",
        "--from_scratch", "--config_overrides", TINY_OVERRIDES, "--frame_sampling", "uniform", "--horizontal_flip", "False",
        "--output_dir", str(output_dir), "--per_device_train_batch_size", "2", "--save_strategy", "no",
        "--report_to", "none", "--disable_tqdm", "True", "--dataloader_pin_memory", "False",
        "--log-level", "info", "--log-level-replica", "info",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-5000:]
    assert "2 training shards for 2 process(es)" in log
    assert json.loads((output_dir / "trainer_state.json").read_text())["global_step"] == 2
    assert (
        TimeSformerForVideoClassification.from_pretrained(output_dir / "model").config.id2label[3]
        == "right_2"
    )


def test_accelerate_shards_a_streamed_set_between_processes(motion):
    """What the run above relies on: with `dispatch_batches=False` (set by run_training when streaming), accelerate
    gives each process its own shards of a `datasets.IterableDataset`."""
    from accelerate.data_loader import prepare_data_loader

    stream = VideoSource.from_datasets(str(motion["parquet"]), streaming=True).load(
        "train", label_names=CLASSES
    )
    seen = []
    for rank in range(2):
        loader = DataLoader(
            stream, batch_size=2, collate_fn=lambda rows: [row["video"]["path"] for row in rows]
        )
        loader = prepare_data_loader(
            loader, num_processes=2, process_index=rank, dispatch_batches=False, put_on_device=False
        )
        seen.append(sorted(path for batch in loader for path in batch))
    assert len(seen[0]) == len(seen[1]) == 4 and not set(seen[0]) & set(seen[1])


def test_streaming_needs_max_steps_and_class_names(motion, tmp_path):
    with pytest.raises(ValueError, match="`max_steps=`"):
        run_training(
            ModelArguments(from_scratch=True, config_overrides=TINY_OVERRIDES),
            DataTrainingArguments(dataset_name=str(motion["parquet"]), streaming=True, class_names=CLASSES),
            training_args(tmp_path / "run", num_train_epochs=1),
        )
    with pytest.raises(ValueError, match="`label_names=`"):  # labels as names without a ClassLabel
        VideoSource.from_datasets(str(motion["parquet"]), streaming=True).load("train")
    with pytest.raises(ValueError, match="`dataset_name=`"):
        DataTrainingArguments(train_dir=str(motion["root"] / "train"), streaming=True)


def test_source_errors_name_the_fix(motion):
    with pytest.raises(
        ValueError,
        match=r"no column\(s\) \['clip'\]: its columns are \['video', 'label'\]; set `video_column_name=`",
    ):
        VideoSource.from_datasets(str(motion["parquet"]), video_column_name="clip").load("train")
    with pytest.raises(MissingSplitError, match="'test'"):
        VideoSource.from_datasets(str(motion["saved"]), video_column_name="clip").load("test")
    with pytest.raises(ValueError, match="holds ClassLabel.*not videos"):
        VideoSource.from_datasets(
            str(motion["saved"]), video_column_name="action", label_column_name=None
        ).load("train")
    with pytest.raises(ValueError, match="both name 'label'"):
        VideoSource.from_datasets(str(motion["parquet"]), video_column_name="label").load("train")
    with pytest.raises(ValueError, match=r"labels \['left_1'\] that are not among"):
        VideoSource.from_datasets(str(motion["parquet"])).load("train", label_names=CLASSES[1:])
    with pytest.raises(ValueError, match="one training set"):
        DataTrainingArguments(dataset_name="x", train_dir="y")


def test_a_data_set_without_a_validation_split_holds_one_out_unless_streamed(motion, tmp_path):
    from timesformer_hf.training import _load_splits

    parquet = tmp_path / "train-only"
    (parquet / "data").mkdir(parents=True)
    for path in (motion["parquet"] / "data").glob("train-*.parquet"):
        (parquet / "data" / path.name).symlink_to(path)
    train, validation = _load_splits(
        DataTrainingArguments(dataset_name=str(parquet), train_val_split=0.5), seed=0
    )
    assert (len(train), len(validation)) == (4, 4)  # half of every class's 2 videos
    assert sorted(validation["label"]) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="`eval_split_name=`"):
        _load_splits(
            DataTrainingArguments(dataset_name=str(parquet), streaming=True, class_names=CLASSES), seed=0
        )
    with pytest.raises(MissingSplitError, match="'dev'"):  # named, so not replaced by a held-out part
        _load_splits(DataTrainingArguments(dataset_name=str(parquet), eval_split_name="dev"), seed=0)


def test_old_column_option_spellings_are_aliases():
    from transformers import HfArgumentParser

    parser = HfArgumentParser(DataTrainingArguments)
    for flag in ("--video_column", "--video-column", "--video_column_name", "--video-column-name"):
        (args,) = parser.parse_args_into_dataclasses(["--train-dir", "x", flag, "clip"])
        assert args.video_column_name == "clip"


def test_a_class_label_is_mapped_onto_other_label_names_by_name(motion):
    validation = VideoSource.from_datasets(
        str(motion["saved"]), video_column_name="clip", label_column_name="action"
    )
    labels = validation.load("validation", label_names=CLASSES)
    rows = motion_rows(motion["root"], "validation")
    assert labels.features["label"].names == CLASSES
    assert [CLASSES[label] for label in labels["label"]] == [label for _, label in rows]


def test_video_names_are_paths_when_distinct_else_split_and_index(motion):
    parquet = VideoSource.from_datasets(str(motion["parquet"])).load("validation")
    assert video_names(parquet, "validation") == [
        p.name for p, _ in motion_rows(motion["root"], "validation")
    ]
    saved = VideoSource.from_datasets(
        str(motion["saved"]), video_column_name="clip", label_column_name="action"
    )
    videos = NamedVideos(saved.load("validation"), "validation")
    assert videos.names == [f"validation/{i}" for i in range(4)] and videos[2]["path"] == "validation/2"
    duplicated = Dataset.from_dict({"video": [str(sample_video_path())] * 2})
    videos = NamedVideos(duplicated, "test")
    assert videos[1] == {"path": "test/1", "bytes": sample_video_path().read_bytes()}


@pytest.fixture(scope="module")
def repo(motion, tmp_path_factory):
    """A tiny model trained 2 steps on the folder form (labels `CLASSES`)."""
    run = tmp_path_factory.mktemp("repo") / "run"
    arguments = DataTrainingArguments(
        train_dir=str(motion["root"] / "train"),
        validation_dir=str(motion["root"] / "validation"),
        frame_sampling="uniform",
    )
    run_training(
        ModelArguments(from_scratch=True, config_overrides=TINY_OVERRIDES),
        arguments,
        training_args(run, max_steps=2),
    )
    return run / "model"


def test_evaluate_a_data_set_as_its_folder(motion, repo, tmp_path, capsys):
    common = ["--num-workers", "0", "--predictions"]
    assert (
        main(
            [
                "evaluate",
                str(repo),
                str(motion["root"] / "validation"),
                "--output-dir",
                str(tmp_path / "folder"),
                *common,
                str(tmp_path / "folder.jsonl"),
            ]
        )
        == 0
    )
    saved = [
        "--dataset-name",
        str(motion["saved"]),
        "--split",
        "validation",
        "--video_column_name",
        "clip",
        "--label-column",
        "action",
    ]
    assert (
        main(
            [
                "evaluate",
                str(repo),
                *saved,
                "--output-dir",
                str(tmp_path / "saved"),
                *common,
                str(tmp_path / "saved.jsonl"),
            ]
        )
        == 0
    )
    folder = json.loads((tmp_path / "folder" / "evaluation.json").read_text())
    from_saved = json.loads((tmp_path / "saved" / "evaluation.json").read_text())
    assert from_saved["confusion_matrix"] == folder["confusion_matrix"]  # same videos, labels mapped by name
    probabilities = [
        pq.read_table(tmp_path / name / "probabilities.parquet").to_pydict() for name in ("folder", "saved")
    ]
    np.testing.assert_allclose(probabilities[1]["feature"], probabilities[0]["feature"], atol=1e-5)
    assert probabilities[1]["video"] == [f"validation/{i}" for i in range(4)]
    records = [json.loads(line) for line in (tmp_path / "saved.jsonl").read_text().splitlines()]
    assert [r["label"] for r in records] == [label for _, label in motion_rows(motion["root"], "validation")]


def test_features_of_a_data_set(motion, repo, tmp_path):
    output = tmp_path / "features.parquet"
    assert (
        main(
            [
                "features",
                str(repo),
                "--dataset-name",
                str(motion["parquet"]),
                "--split",
                "validation",
                "--output",
                str(output),
                "--num-workers",
                "0",
            ]
        )
        == 0
    )
    table = pq.read_table(output).to_pydict()
    assert table["video"] == [p.name for p, _ in motion_rows(motion["root"], "validation")]
    files = tmp_path / "files.parquet"
    assert (
        main(
            [
                "features",
                str(repo),
                str(motion["root"] / "validation"),
                "--output",
                str(files),
                "--num-workers",
                "0",
            ]
        )
        == 0
    )
    np.testing.assert_allclose(table["feature"], pq.read_table(files).to_pydict()["feature"], atol=1e-5)


def test_a_job_on_another_data_set_with_the_same_row_names_is_not_taken_as_done(
    motion, repo, tmp_path, capsys
):
    other = tmp_path / "other"
    other.symlink_to(motion["saved"])
    output = tmp_path / "features.parquet"
    for dataset, status in ((motion["saved"], 0), (other, 1)):  # both name their rows validation/0...
        argv = [
            "features",
            str(repo),
            "--dataset-name",
            str(dataset),
            "--split",
            "validation",
            "--video-column",
            "clip",
        ]
        assert main([*argv, "--output", str(output), "--num-workers", "0"]) == status
    assert "written for other videos or settings" in capsys.readouterr().err


def test_commands_take_files_or_a_data_set_not_both(motion, repo, tmp_path, capsys):
    assert (
        main(
            [
                "features",
                str(repo),
                str(motion["root"]),
                "--dataset-name",
                str(motion["parquet"]),
                "--output",
                str(tmp_path / "f.parquet"),
            ]
        )
        == 1
    )
    assert "not both" in capsys.readouterr().err
    assert main(["evaluate", str(repo)]) == 1
    assert "--dataset-name" in capsys.readouterr().err
    assert (
        main(["evaluate", str(repo), "--dataset-name", str(motion["parquet"])]) == 1
    )  # 2 splits: which one?
    error = capsys.readouterr().err
    assert "error: --split: " in error and "has several splits, ['train', 'validation']: choose one." in error


@pytest.mark.slow
def test_parquet_form_of_the_demo_data_learns_as_the_folder_form(tmp_path):
    from timesformer_hf.demo import train_arguments, train_model

    write_motion_dataset(tmp_path / "data", num_train_per_class=32, num_eval_per_class=8, seed=0)
    features = Features({"video": Video(decode=False), "label": Value("string")})
    (tmp_path / "parquet" / "data").mkdir(parents=True)
    for split in ("train", "validation"):
        rows = [
            {"video": {"path": p.name, "bytes": p.read_bytes()}, "label": c}
            for p, c in motion_rows(tmp_path / "data", split)
        ]
        Dataset.from_list(rows, features=features).to_parquet(
            tmp_path / "parquet" / "data" / f"{split}.parquet"
        )
    assert load_dataset(str(tmp_path / "parquet"), split="validation").num_rows == 32
    folder, _ = train_model(
        "divided_space_time", tmp_path / "data", tmp_path / "run1", tmp_path / "repo1", seed=0
    )
    # the demo's command with the Parquet set in place of the two folders
    arguments = train_arguments(
        "divided_space_time", tmp_path / "data", tmp_path / "run2", tmp_path / "repo2"
    )
    folders = [arguments.index("--train-dir"), arguments.index("--validation-dir")]
    arguments = [a for i, a in enumerate(arguments) if i not in {j + k for j in folders for k in (0, 1)}]
    assert main(["train", *arguments, "--dataset-name", str(tmp_path / "parquet")]) == 0
    parquet = json.loads((tmp_path / "run2" / "eval_results.json").read_text())
    print(
        f"held-out top-1: folder {folder['eval_top1_accuracy']:.3f}, parquet {parquet['eval_top1_accuracy']:.3f}"
    )
    assert folder["eval_top1_accuracy"] >= 0.8
    assert abs(parquet["eval_top1_accuracy"] - folder["eval_top1_accuracy"]) <= 0.1


@pytest.mark.parametrize("streaming", [False, True], ids=["map-style", "streaming"])
def test_a_multi_label_data_set_trains_a_multi_label_model(motion, tmp_path, streaming):
    """A Parquet set whose label column holds lists of names: multi-hot targets reach the model, BCE, mAP."""
    features = Features(
        {"video": Video(decode=False), "label": List(ClassLabel(names=["fast", "left", "right"]))}
    )
    (tmp_path / "actions" / "data").mkdir(parents=True)
    expected = {}
    for split in ("train", "validation"):
        rows = []
        for path, label in motion_rows(motion["root"], split):
            direction, speed = label.split("_")
            names = [direction] + (["fast"] if speed == "2" else [])
            rows.append({"video": {"path": path.name, "bytes": path.read_bytes()}, "label": names})
            expected[path.read_bytes()] = sorted(names)
        Dataset.from_list(rows, features=features).to_parquet(
            tmp_path / "actions" / "data" / f"{split}.parquet"
        )
    capture = CaptureInputs()
    metrics = train(tmp_path / "actions", tmp_path / "run", streaming=streaming, callbacks=[capture])
    assert {"eval_map_macro", "eval_map_micro"} <= set(metrics)
    config = TimeSformerForVideoClassification.from_pretrained(tmp_path / "run" / "model").config
    assert config.problem_type == "multi_label_classification"
    assert [config.id2label[i] for i in range(3)] == ["fast", "left", "right"]
    targets = torch.cat([labels for _, _, labels in capture.calls])
    assert targets.dtype == torch.float32 and targets.shape[1] == 3  # multi-hot
    # every target is the label set of some training video: a direction, with `fast` for speed 2
    allowed = {
        tuple(float(name in names) for name in ("fast", "left", "right")) for names in expected.values()
    }
    assert {tuple(row.tolist()) for row in targets} <= allowed and targets[:, 1:].sum(1).eq(1).all()

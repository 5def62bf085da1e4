"""The `timesformer-hf` command: train, classify and features on a tiny model."""

import json

import numpy as np
import pytest
from conftest import TINY
from safetensors.numpy import load_file

from timesformer_hf.cli import default_num_clips, main
from timesformer_hf.synthetic import motion_video, write_motion_dataset, write_video
from timesformer_hf.video_processing_timesformer import TimeSformerVideoProcessor


@pytest.fixture(scope="module")
def trained_repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    write_motion_dataset(root / "data", num_train_per_class=1, num_eval_per_class=1, num_frames=4, size=32)
    overrides = ",".join(f"{name}={value}" for name, value in TINY.items() if name != "num_labels")
    main([
        "train", "--train_dir", str(root / "data" / "train"), "--validation_dir", str(root / "data" / "validation"),
        "--config_overrides", overrides, "--frame_sampling", "uniform", "--horizontal_flip", "False",
        "--output_dir", str(root / "run"), "--max_steps", "1", "--per_device_train_batch_size", "2",
        "--report_to", "none", "--disable_tqdm", "True", "--dataloader_pin_memory", "False",
    ])  # fmt: skip
    return root


def test_train_writes_a_hub_ready_repo(trained_repo):
    repo = trained_repo / "run" / "model"
    names = {path.name for path in repo.iterdir()}
    assert {"config.json", "model.safetensors", "video_preprocessor_config.json", "README.md"} <= names
    card = (repo / "README.md").read_text()
    assert "top1_accuracy" in card and "Top-5" not in card  # 4 classes: top-5 would always be 100%
    assert json.loads((repo / "config.json").read_text())["id2label"]["3"] == "right_2"
    assert TimeSformerVideoProcessor.from_pretrained(repo).frame_sampling == "uniform"


def test_classify_prints_top_k_for_long_videos(trained_repo, tmp_path, capsys):
    long_video = tmp_path / "long.mp4"
    write_video(long_video, np.concatenate([motion_video("right_1", num_frames=4, rng=i) for i in range(10)]))
    main(["classify", str(trained_repo / "run" / "model"), str(long_video), "--top_k", "2", "--json", "--num_clips", "3",
          "--frame_sampling", "kinetics"])  # fmt: skip
    result = json.loads(capsys.readouterr().out)[str(long_video)]
    assert len(result) == 2 and result[0]["score"] >= result[1]["score"]
    assert sum(item["score"] for item in result) <= 1 + 1e-6


def test_features_to_safetensors_and_npy(trained_repo, tmp_path, capsys):
    videos = trained_repo / "data" / "validation"
    main(
        [
            "features",
            str(trained_repo / "run" / "model"),
            str(videos),
            "--output",
            str(tmp_path / "f.safetensors"),
        ]
    )
    features = load_file(tmp_path / "f.safetensors")["features"]
    assert features.shape == (4, TINY["hidden_size"]) and np.isfinite(features).all()
    main(["features", str(trained_repo / "run" / "model"), str(videos), "--output", str(tmp_path / "f.npy")])
    np.testing.assert_allclose(np.load(tmp_path / "f.npy"), features, atol=1e-6)
    assert len(json.loads((tmp_path / "f.json").read_text())) == 4


def test_default_clips_cover_long_videos():
    processor = TimeSformerVideoProcessor(num_frames=8, sampling_rate=4)  # clips of 32 frames at 30 fps
    assert default_num_clips(processor, 30, fps=30) == 1
    assert default_num_clips(processor, 100, fps=30) == 4
    assert default_num_clips(processor, 10_000, fps=30) == 10
    processor.frame_sampling = "uniform"
    assert default_num_clips(processor, 10_000, fps=30) == 1


def test_features_output_is_checked_and_written_atomically(trained_repo, tmp_path, capsys):
    repo, videos = str(trained_repo / "run" / "model"), str(trained_repo / "data" / "validation")
    with pytest.raises(SystemExit, match=r"\.npy or \.safetensors"):
        main(["features", repo, videos, "--output", str(tmp_path / "features.pt")])
    output = tmp_path / "features.npy"
    output.write_bytes(b"earlier results")
    with pytest.raises(SystemExit, match="--overwrite"):
        main(["features", repo, videos, "--output", str(output)])
    assert output.read_bytes() == b"earlier results"
    main(["features", repo, videos, "--output", str(output), "--overwrite"])
    assert np.load(output).shape == (4, TINY["hidden_size"])
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "features.json",
        "features.npy",
    ]  # no temp files

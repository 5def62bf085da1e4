"""`timesformer-hf index` and `search` end to end on a tiny model: results equal brute-force cosine similarity over
`features` output; an index grows by the new videos only and refuses other weights."""

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import sample_video_path

from timesformer_hf.commands.app import main
from timesformer_hf.synthetic import motion_labels, motion_video, write_video


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("collection")
    for label in motion_labels():
        for seed in range(2):
            write_video(folder / f"{label}_{seed}.mp4", motion_video(label, num_frames=8, size=32, rng=seed))
    shutil.copy(sample_video_path("bikes.mp4"), folder / "bikes.mp4")
    return folder


def run(capsys, *argv):
    assert main([str(arg) for arg in argv]) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def test_search_results_are_brute_force_cosine_over_features(repo, videos, tmp_path, capsys):
    options = ("--num-workers", "0", "--dtype", "fp32")
    run(capsys, "index", repo, videos, "--output", tmp_path / "index", *options)
    run(capsys, "features", repo, videos, "--output", tmp_path / "f.parquet", *options)
    table = pq.read_table(tmp_path / "f.parquet").to_pydict()
    features = np.asarray(table["feature"], dtype=np.float64)
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)

    def expected(query, without=None):
        scores = unit @ (query / np.linalg.norm(query))
        ranked = [(table["video"][i], scores[i]) for i in np.argsort(-scores) if table["video"][i] != without]
        return ranked[:3]

    # a video of the index, by its file name: the others nearest it
    name = str(videos / "left_1_0.mp4")
    lines = run(capsys, "search", tmp_path / "index", "left_1_0.mp4", "--top-k", "3", "--json").splitlines()
    hits = [json.loads(line) for line in lines]
    want = expected(features[table["video"].index(name)], without=name)
    assert [hit["video"] for hit in hits] == [video for video, _ in want]
    np.testing.assert_allclose([hit["score"] for hit in hits], [score for _, score in want], atol=1e-5)
    # a file not in the index: its feature computed as the index's were (its model, pool, dtype), so as `features`
    # computed it; a copy of an indexed video finds that one first
    copy = shutil.copy(videos / "bikes.mp4", tmp_path / "query.mp4")
    query = ("search", tmp_path / "index", copy, "--top-k", "3", "--json", "--device", "cpu")
    hits = [json.loads(line) for line in run(capsys, *query).splitlines()]
    bikes = features[table["video"].index(str(videos / "bikes.mp4"))]
    scores = dict(zip(table["video"], unit @ (bikes / np.linalg.norm(bikes)), strict=True))
    third = sorted(scores.values(), reverse=True)[2]
    assert hits[0]["video"] == str(videos / "bikes.mp4") and hits[0]["score"] == pytest.approx(1.0, abs=1e-5)
    for hit in hits:  # a random tiny model's features are all alike: near-ties (1e-6 apart) may swap
        assert (
            hit["score"] == pytest.approx(scores[hit["video"]], abs=1e-4)
            and scores[hit["video"]] >= third - 1e-4
        )


def test_an_index_grows_by_the_new_videos_and_refuses_other_weights(repo, videos, tmp_path, capsys):
    options = ("--num-workers", "0")
    first = sorted(videos.glob("left_*.mp4"))
    run(capsys, "index", repo, *first, "--output", tmp_path / "index", *options)
    out = run(capsys, "index", repo, videos, "--output", tmp_path / "index", *options)
    assert "Indexed 5 new row(s): 9 in" in out  # the 4 right_* videos and bikes.mp4
    assert "nothing to add" in run(capsys, "index", repo, videos, "--output", tmp_path / "index", *options)
    assert [path.name for path in tmp_path.iterdir()] == ["index"]  # the features' working files are gone

    other = shutil.copytree(repo, tmp_path / "other-weights")
    weights = other / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-8:] = b"\x00\x00\x80\x3f\x00\x00\x80\x3f"  # the last two float32 weights become 1.0
    weights.write_bytes(bytes(data))
    assert main(["index", str(other), str(videos), "--output", str(tmp_path / "index")]) == 1
    assert "indexes the features of other weights" in capsys.readouterr().err
    # the index's own model re-trained in place: a query file is refused, an indexed video still found by name
    run(capsys, "index", other, *first, "--output", tmp_path / "other-index", *options)
    weights.write_bytes(bytes(data[:-8] + b"\x00\x00\x00\x40\x00\x00\x00\x40"))
    assert main(["search", str(tmp_path / "other-index"), str(videos / "bikes.mp4")]) == 1
    assert "is not the one it was built with any more (other weights): rebuild" in capsys.readouterr().err
    assert "left_1_1.mp4" in run(capsys, "search", tmp_path / "other-index", "left_1_0.mp4")
    assert main(["search", str(tmp_path / "index"), "nothing-like-this.mp4"]) == 1
    assert "is neither a video file nor a video of the index" in capsys.readouterr().err


def test_a_moment_is_searched_among_the_moments_of_long_videos(repo, videos, tmp_path, capsys):
    windows = ("--window", "2", "--stride", "2", "--num-workers", "0", "--dtype", "fp32")
    run(
        capsys,
        "index",
        repo,
        videos / "bikes.mp4",
        videos / "left_1_0.mp4",
        "--output",
        tmp_path / "index",
        *windows,
    )
    # a part of a file: one clip of the span, as the window with the same span was computed: found first, exactly
    copy = shutil.copy(videos / "bikes.mp4", tmp_path / "query.mp4")
    query = ("search", tmp_path / "index", copy, "--start", "2", "--end", "4", "--json", "--top-k", "3")
    hits = [json.loads(line) for line in run(capsys, *query).splitlines()]
    assert (hits[0]["video"], hits[0]["start"], hits[0]["end"]) == (str(videos / "bikes.mp4"), 2.0, 4.0)
    assert hits[0]["score"] == pytest.approx(1.0, abs=1e-5)
    # the same moment of the indexed video, by name: the moments that overlap it are not results
    query = (
        "search",
        tmp_path / "index",
        "bikes.mp4",
        "--start",
        "2.5",
        "--end",
        "4",
        "--json",
        "--top-k",
        "50",
    )
    hits = [json.loads(line) for line in run(capsys, *query).splitlines()]
    moments = [(hit["video"], hit["start"]) for hit in hits]
    assert (str(videos / "bikes.mp4"), 2.0) not in moments and (str(videos / "bikes.mp4"), 0.0) in moments
    assert (str(videos / "left_1_0.mp4"), 0.0) in moments
    assert main(["search", str(tmp_path / "index"), "bikes.mp4", "--start", "4", "--end", "3"]) == 1
    assert "--end (3 s) must come after --start (4 s)" in capsys.readouterr().err
    assert main(["search", str(tmp_path / "index"), str(copy), "--start", "500"]) == 1
    assert "starts after its end" in capsys.readouterr().err

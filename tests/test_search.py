"""search: `VideoIndex` against brute-force cosine similarity, exact and approximate, saved and loaded."""

import json

import numpy as np
import pytest

from timesformer_hf import search
from timesformer_hf.errors import InputError
from timesformer_hf.search import VideoIndex


def collection(count: int, dim: int = 32, seed: int = 0) -> tuple[np.ndarray, list[dict]]:
    features = np.random.default_rng(seed).normal(size=(count, dim)).astype(np.float32)
    rows = [
        {"video": f"v{i // 4}.mp4", "start": 2.0 * (i % 4), "end": 2.0 * (i % 4) + 2} for i in range(count)
    ]
    return features, rows


def brute_force(features: np.ndarray, query: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    scores = unit @ (query / np.linalg.norm(query))
    order = np.argsort(-scores, kind="stable")[:top_k]
    return order, scores[order]


def test_exact_search_is_brute_force_cosine():
    features, rows = collection(200)
    index = VideoIndex(features, rows)
    queries = np.random.default_rng(1).normal(size=(5, 32))
    for query, hits in zip(queries, index.search(queries, top_k=7), strict=True):
        order, scores = brute_force(features, query, 7)
        assert [hit["video"] for hit in hits] == [rows[i]["video"] for i in order]
        assert [hit["start"] for hit in hits] == [rows[i]["start"] for i in order]
        np.testing.assert_allclose([hit["score"] for hit in hits], scores, atol=1e-5)
    assert not index.approximate and index.recall_at_10() == 1.0


def test_above_the_exact_limit_the_index_is_approximate_and_measures_its_recall():
    features, rows = collection(2000)
    index = VideoIndex(features, rows, exact_limit=500)
    assert index.approximate
    recall = index.recall_at_10(num_queries=200)
    assert 0.9 <= recall <= 1.0
    hits = index.search(features[:20], top_k=1)
    assert (
        sum(
            hit[0]["video"] == rows[i]["video"] and hit[0]["start"] == rows[i]["start"]
            for i, hit in enumerate(hits)
        )
        >= 19
    )


def test_adding_adds_only_new_rows():
    features, rows = collection(40)
    index = VideoIndex(features[:20], rows[:20])
    assert index.add(features[10:], rows[10:]) == 20  # rows 10-19 are there already
    assert len(index) == 40
    assert index.add(features, rows) == 0
    top = index.search(features[35], top_k=1)[0][0]
    assert (top["video"], top["start"]) == (rows[35]["video"], rows[35]["start"])


def test_saved_and_loaded_index_searches_the_same(tmp_path):
    features, rows = collection(300)
    index = VideoIndex(features, rows, model="repo", model_fingerprint="sha256:abc", exact_limit=100)
    index.save(tmp_path / "index")
    meta = json.loads((tmp_path / "index" / "index.json").read_text())
    assert meta["kind"] == "hnsw" and meta["rows"] == 300 and meta["model_fingerprint"] == "sha256:abc"
    assert 0.9 <= meta["recall_at_10"] <= 1.0
    loaded = VideoIndex.load(tmp_path / "index")
    queries = features[:10]
    assert loaded.search(queries, top_k=5) == index.search(queries, top_k=5)
    assert (loaded.model, loaded.model_fingerprint, loaded.dim) == ("repo", "sha256:abc", 32)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="holds something else"):
        index.save(tmp_path / "notes", overwrite=True)
    with pytest.raises(FileNotFoundError, match="is not a video index"):
        VideoIndex.load(tmp_path / "notes")


def test_bad_queries_say_what_is_wrong():
    features, rows = collection(8)
    index = VideoIndex(features, rows)
    with pytest.raises(InputError, match="A query of size 3 for an index of size 32"):
        index.search(np.ones(3))
    with pytest.raises(InputError, match="top_k: must be at least 1"):
        index.search(features[0], top_k=0)
    with pytest.raises(InputError, match="at least one video"):
        VideoIndex(np.zeros((0, 4)), [])
    with pytest.raises(InputError, match="2 features for 3 rows"):
        VideoIndex(features[:2], rows[:3])


def test_features_are_held_once_inside_faiss_and_handled_a_chunk_at_a_time(tmp_path, monkeypatch):
    """Built, grown past the exact limit, measured and saved in chunks of 64 rows: the same results as at once."""
    monkeypatch.setattr(search, "CHUNK_ROWS", 64)
    features, rows = collection(700)
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    index = VideoIndex(features[:300], rows[:300], exact_limit=500)
    assert not index.approximate and not hasattr(index, "_features")
    np.testing.assert_allclose(index.features, unit[:300], atol=1e-6)
    assert index.add(features, rows) == 400  # past the limit: rebuilt as a graph from what FAISS holds
    assert index.approximate and len(index) == 700
    np.testing.assert_allclose(index.vectors([699, 3, 4, 5]), unit[[699, 3, 4, 5]], atol=1e-6)
    # recall@10 against a brute-force top 10 over all the rows at once
    queries = np.random.default_rng(0).choice(700, 100, replace=False)
    truth = np.argsort(-(unit[np.sort(queries)] @ unit.T), axis=1, kind="stable")[:, :10]
    _, found = index._index.search(unit[np.sort(queries)], 10)
    expected = (
        sum(len(set(a) & set(b)) for a, b in zip(truth.tolist(), found.tolist(), strict=True)) / truth.size
    )
    assert index.recall_at_10(num_queries=100) == pytest.approx(expected)
    index.save(tmp_path / "index")
    loaded = VideoIndex.load(tmp_path / "index")
    np.testing.assert_array_equal(loaded.features, index.features)
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "index" / "rows.parquet").to_pydict()  # the features kept for users too
    np.testing.assert_allclose(np.asarray(table["feature"]), unit, atol=1e-6)
    assert table["video"] == [row["video"] for row in rows]

"""evaluation."""

import warnings

import evaluate
import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score

from timesformer_hf.evaluation import (
    average_precision,
    multi_label_metrics,
    multi_label_report,
    plot_confusion_matrix,
    regression_metrics,
)
from timesformer_hf.metrics import TOP_K_ACCURACY


def test_top_k_metric_is_shipped_and_offline():
    metric = evaluate.load(TOP_K_ACCURACY)
    scores = np.array([[0.1, 0.5, 0.4], [0.7, 0.2, 0.1], [0.2, 0.3, 0.5]])
    result = metric.compute(predictions=scores, references=[2, 0, 0], k=[1, 2])
    assert result == {"top1_accuracy": pytest.approx(1 / 3), "top2_accuracy": pytest.approx(2 / 3)}


def test_top_k_metric_breaks_ties_by_index_like_argmax():
    metric = evaluate.load(TOP_K_ACCURACY)
    references = [0, 1, 2, 0, 3]
    result = metric.compute(predictions=np.zeros((5, 4)), references=references, k=[1, 2])
    assert result == {"top1_accuracy": pytest.approx(2 / 5), "top2_accuracy": pytest.approx(3 / 5)}


def random_case(seed, videos=40, classes=6, ties=False):
    rng = np.random.default_rng(seed)
    targets = (rng.random((videos, classes)) < 0.3).astype(int)
    targets[0] = 1  # every class has a positive
    scores = rng.random((videos, classes))
    return (np.round(scores, 1) if ties else scores), targets


@pytest.mark.parametrize("ties", [False, True], ids=["distinct-scores", "tied-scores"])
@pytest.mark.parametrize("seed", range(5))
def test_map_matches_scikit_learn(seed, ties):
    scores, targets = random_case(seed, ties=ties)
    metrics = multi_label_metrics(scores, targets)
    assert metrics["map_macro"] == pytest.approx(
        average_precision_score(targets, scores, average="macro"), abs=1e-12
    )
    assert metrics["map_micro"] == pytest.approx(
        average_precision_score(targets, scores, average="micro"), abs=1e-12
    )
    for c in range(targets.shape[1]):
        assert average_precision(scores[:, c], targets[:, c]) == pytest.approx(
            average_precision_score(targets[:, c], scores[:, c]), abs=1e-12
        )


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.8])
def test_f1_precision_recall_match_scikit_learn(threshold):
    scores, targets = random_case(7)
    metrics = multi_label_metrics(scores, targets, threshold)
    predicted = (scores >= threshold).astype(int)
    assert metrics["f1_micro"] == pytest.approx(f1_score(targets, predicted, average="micro"))
    assert metrics["f1_macro"] == pytest.approx(
        f1_score(targets, predicted, average="macro", zero_division=0)
    )
    assert metrics["precision_micro"] == pytest.approx(precision_score(targets, predicted, average="micro"))
    assert metrics["recall_micro"] == pytest.approx(recall_score(targets, predicted, average="micro"))


def test_average_precision_by_hand():
    # ranked: + - + - ; precision at the two positives 1/1 and 2/3, each half the recall
    assert average_precision(np.array([0.9, 0.8, 0.3, 0.1]), np.array([1, 0, 1, 0])) == pytest.approx(5 / 6)
    # a tie of a positive and a negative counts as one step: precision 1/2 at recall 1
    assert average_precision(np.array([0.5, 0.5]), np.array([1, 0])) == pytest.approx(0.5)
    # two videos, two classes: run ranks its positives first (AP 1), jump too (AP 1); micro: + + - + -> 1, 1, 3/4
    scores, targets = np.array([[0.9, 0.6], [0.4, 0.8]]), np.array([[1, 0], [1, 1]])
    metrics = multi_label_metrics(scores, targets, threshold=0.5)
    assert metrics["map_macro"] == 1.0
    assert metrics["map_micro"] == pytest.approx((1 + 1 + 3 / 4) / 3)
    # at 0.5: predicted (run, jump), (jump): tp 2, fp 1 (jump of video 0), fn 1 (run of video 1)
    assert metrics["precision_micro"] == pytest.approx(2 / 3) and metrics["recall_micro"] == pytest.approx(
        2 / 3
    )
    assert metrics["f1_micro"] == pytest.approx(2 / 3)


def test_a_class_without_positives_is_left_out_of_the_macro_mean():
    scores, targets = random_case(3)
    targets[:, 2] = 0
    metrics = multi_label_metrics(scores, targets)
    present = [0, 1, 3, 4, 5]
    assert metrics["map_macro"] == pytest.approx(
        average_precision_score(targets[:, present], scores[:, present])
    )
    assert np.isnan(average_precision(scores[:, 2], targets[:, 2]))
    report = multi_label_report(scores, targets, [f"c{i}" for i in range(6)])
    assert sorted(report["per_class_average_precision"]) == ["c0", "c1", "c3", "c4", "c5"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn warns, and counts the class (as 0 in recent versions)
        assert metrics["map_macro"] != pytest.approx(
            average_precision_score(targets, scores, average="macro")
        )
    nothing = multi_label_metrics(scores, np.zeros_like(targets))
    assert np.isnan(nothing["map_macro"]) and np.isnan(nothing["map_micro"])


def test_metric_shapes_are_checked():
    with pytest.raises(ValueError, match="same shape"):
        multi_label_metrics(np.zeros((3, 2)), np.zeros((3, 3)))


def test_regression_metrics_by_hand():
    metrics = regression_metrics(np.array([1.0, 2.0, 4.0]), np.array([1.0, 3.0, 5.0]))
    assert metrics["mse"] == pytest.approx(2 / 3) and metrics["mae"] == pytest.approx(2 / 3)
    assert metrics["pearson_r"] == pytest.approx(np.corrcoef([1, 2, 4], [1, 3, 5])[0, 1])
    assert np.isnan(regression_metrics(np.ones(3), np.arange(3.0))["pearson_r"])


def test_confusion_matrix_plot_is_readable(tmp_path):
    matrix = np.array([[9, 1, 0], [0, 5, 5], [0, 0, 0]])  # class "c" never occurs
    figure = plot_confusion_matrix(
        matrix, ["a", "b", "c"], tmp_path / "matrix.png", title="Confusion matrix: m on d"
    )
    assert (tmp_path / "matrix.png").read_bytes().startswith(b"\x89PNG")
    axes = figure.axes[0]
    assert axes.get_title() == "Confusion matrix: m on d\n14 of 20 videos correct (70.0%)"
    assert (axes.get_xlabel(), axes.get_ylabel()) == ("Predicted class", "True class")
    cells = {text.get_text(): text.get_color() for text in axes.texts if text.get_text() in ("9", "1")}
    assert cells == {"9": "white", "1": "black"}  # light digits on the darkest cell, dark ones on light cells
    assert len(axes.texts) == 9  # the 3 classes that occur

"""Multi-label metrics as an `evaluate` metric, shipped with the package so that nothing is downloaded: mean average
precision (macro and micro) and F1, precision and recall at a threshold.

Load it by path (works offline):

```python
>>> import evaluate
>>> from timesformer_hf.metrics import MULTI_LABEL
>>> metric = evaluate.load(MULTI_LABEL)
>>> metric.compute(predictions=[[0.9, 0.6], [0.4, 0.8]], references=[[1, 0], [1, 1]])["map_macro"]
1.0
```
"""

import datasets
import evaluate

from timesformer_hf.evaluation import multi_label_metrics

_DESCRIPTION = """
Multi-label classification metrics (see `timesformer_hf.evaluation.multi_label_metrics`): `map_macro`, the mean of
the classes' average precisions over the classes that have a positive reference; `map_micro`, the average precision
of all (example, class) pairs ranked together; and, predicting the classes whose probability is at least
`threshold`, `f1_macro`, `f1_micro`, `precision_micro` and `recall_micro`. Average precision is computed as
scikit-learn's `average_precision_score` (tied scores count together).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `float`): Probabilities (sigmoid of the logits) of every class, one row per
        example.
    references (`list` of `list` of `int`): Multi-hot references, one row per example.
    threshold (`float`, defaults to 0.5): A class is predicted when its probability is at least this.
Returns:
    `dict`: `map_macro`, `map_micro`, `f1_macro`, `f1_micro`, `precision_micro`, `recall_micro`, in [0, 1] (the
    mAPs and `f1_macro` are NaN when no reference is positive).
Example:
    >>> metric = evaluate.load(MULTI_LABEL)
    >>> metric.compute(predictions=[[0.9, 0.2], [0.3, 0.7]], references=[[1, 0], [0, 1]])["f1_micro"]
    1.0
"""

_CITATION = ""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MultiLabel(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float32")),
                    "references": datasets.Sequence(datasets.Value("int64")),
                }
            ),
        )

    def _compute(self, predictions, references, threshold=0.5) -> dict[str, float]:
        return multi_label_metrics(predictions, references, threshold)

"""Top-k accuracy as an `evaluate` metric, shipped with the package so that nothing is downloaded.

Load it by path (works offline):

```python
>>> import evaluate
>>> from timesformer_hf.metrics import TOP_K_ACCURACY
>>> metric = evaluate.load(TOP_K_ACCURACY)
>>> metric.compute(predictions=[[0.1, 0.9, 0.0], [0.8, 0.1, 0.1]], references=[1, 2], k=[1, 2])
{'top1_accuracy': 0.5, 'top2_accuracy': 1.0}
```
"""

import datasets
import evaluate
import numpy as np

from timesformer_hf.evaluation import top_k_accuracy

_DESCRIPTION = """
Top-k accuracy: the fraction of examples whose reference label is among the k highest scores, equal scores ranked
by class index (as argmax does). With k larger than the number of classes every example counts as correct.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `float`): Scores (logits or probabilities) of every class, one row per example.
    references (`list` of `int`): Reference class indices.
    k (`list` of `int`, defaults to `[1, 5]`): The values of k to report.
Returns:
    `dict`: `top{k}_accuracy` for every k, in [0, 1].
Example:
    >>> metric = evaluate.load(TOP_K_ACCURACY)
    >>> metric.compute(predictions=[[0.1, 0.9], [0.7, 0.3]], references=[1, 1], k=[1])
    {'top1_accuracy': 0.5}
"""

_CITATION = ""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class TopKAccuracy(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float32")),
                    "references": datasets.Value("int64"),
                }
            ),
        )

    def _compute(self, predictions, references, k=(1, 5)) -> dict[str, float]:
        return top_k_accuracy(np.asarray(predictions, dtype=np.float32), np.asarray(references), k)

"""`pipeline("video-classification")` on a saved repo of this package, through the video processor."""

import logging
import subprocess
import sys
import warnings

import pytest
from conftest import sample_video_path, tiny_config
from transformers import pipeline

from timesformer_hf import (
    TimeSformerForVideoClassification,
    TimeSformerImageProcessor,
    TimeSformerVideoProcessor,
)

VIDEO = sample_video_path("bikes.mp4")


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory):
    config = tiny_config(
        num_labels=3, id2label={0: "cat", 1: "dog", 2: "bird"}, label2id={"cat": 0, "dog": 1, "bird": 2}
    )
    directory = tmp_path_factory.mktemp("tiny-timesformer")
    TimeSformerForVideoClassification(config).save_pretrained(directory)
    processor_kwargs = {"size": {"shortest_edge": 32}, "crop_size": {"height": 32, "width": 32}}
    TimeSformerImageProcessor(**processor_kwargs).save_pretrained(directory)
    TimeSformerVideoProcessor(**processor_kwargs, sampling_rate=8).save_pretrained(directory)
    return directory


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_pipeline_classifies_a_real_video_through_the_video_processor(tiny_repo):
    records = _Records()
    transformers_logger = logging.getLogger("transformers")
    transformers_logger.addHandler(records)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            classifier = pipeline("video-classification", model=str(tiny_repo))
            predictions = classifier(str(VIDEO), top_k=3)
    finally:
        transformers_logger.removeHandler(records)
    assert isinstance(classifier.video_processor, TimeSformerVideoProcessor)
    messages = [str(w.message) for w in caught] + records.messages
    assert not [m for m in messages if "deprecat" in m.lower()], messages
    assert sorted(p["label"] for p in predictions) == ["bird", "cat", "dog"]
    assert sum(p["score"] for p in predictions) == pytest.approx(1.0, abs=1e-5)
    inputs = classifier.preprocess(str(VIDEO))
    assert tuple(inputs["pixel_values"].shape) == (1, 4, 3, 32, 32)


def test_processors_load_as_remote_code_without_the_package(tiny_repo, tmp_path):
    script = f"""
import sys
# the modules' Auto classes: some `transformers` versions export placeholders without torchvision
from transformers.models.auto.image_processing_auto import AutoImageProcessor
from transformers.models.auto.video_processing_auto import AutoVideoProcessor
image_processor = AutoImageProcessor.from_pretrained({str(tiny_repo)!r}, trust_remote_code=True)
video_processor = AutoVideoProcessor.from_pretrained({str(tiny_repo)!r}, trust_remote_code=True)
assert "timesformer_hf" not in sys.modules, "the package itself was imported"
print(type(image_processor).__name__, type(video_processor).__name__, video_processor.sampling_rate)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["TimeSformerImageProcessor", "TimeSformerVideoProcessor", "8"]

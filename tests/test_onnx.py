"""ONNX export (self-check, int8, fp16), `TimeSformerOnnxModel` and `--backend onnxruntime`, on tiny models."""

import json
import re
import sys
from unittest import mock

import numpy as np
import onnx
import pytest
import torch
from conftest import randomize_, sample_video_path, tiny_config
from huggingface_hub import ModelCard
from onnx import numpy_helper

from timesformer_hf import TimeSformerForVideoClassification, TimeSformerModel
from timesformer_hf import onnx as onnx_export
from timesformer_hf.commands.app import main
from timesformer_hf.onnx import (
    OnnxExportError,
    TimeSformerOnnxModel,
    agreement,
    export_onnx,
    onnx_providers,
)


def run_cli(*argv):
    return main([str(arg) for arg in argv])


@pytest.fixture(scope="module")
def exported(repo, tmp_path_factory):
    """`timesformer-hf export REPO --output DIR --quantize int8` (fixed frames and size): `(DIR, its stdout)`."""
    import contextlib
    import io

    output = tmp_path_factory.mktemp("onnx") / "tiny-onnx"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert run_cli("export", repo, "--output", output, "--quantize", "int8") == 0
    return output, stdout.getvalue()


@pytest.fixture(scope="module")
def exported_features(repo, tmp_path_factory):
    """The backbone of `repo` exported with a dynamic frame count, and in int8."""
    folder = tmp_path_factory.mktemp("onnx") / "features"
    export_onnx(repo, folder, task="features", dynamic_frames=True, quantize="int8")
    return folder


def test_export_of_every_attention_type_checks_itself_and_runs_other_shapes(attention_type, tmp_path):
    model = randomize_(TimeSformerForVideoClassification(tiny_config(attention_type=attention_type)))
    report = export_onnx(model, tmp_path / "out", dynamic_frames=True, dynamic_size=True)
    graph = onnx.load(tmp_path / "out" / "model.onnx").graph
    attentions = [node for node in graph.node if node.op_type == "MultiHeadAttention"]
    assert len(attentions) == (4 if attention_type == "divided_space_time" else 2)  # 2 layers
    check = report["check"]
    assert check["max_abs_diff"] <= 1e-4 and check["tolerance"] == 1e-4
    # two batch sizes, another frame count, another size
    assert check["inputs"] == [[1, 4, 3, 32, 32], [2, 4, 3, 32, 32], [1, 2, 3, 32, 32], [1, 4, 3, 40, 48]]
    assert report["fixed_axes"] == {} and report["inputs"]["pixel_values"] == [
        "batch",
        "frames",
        3,
        "height",
        "width",
    ]
    assert json.loads((tmp_path / "out" / "onnx_export.json").read_text()) == report
    onnx_model = TimeSformerOnnxModel.from_pretrained(tmp_path / "out")
    assert onnx_model.config.attention_type == attention_type
    pixel_values = torch.randn(3, 6, 3, 24, 40)  # a shape no check used
    with torch.no_grad():
        expected = model.eval()(pixel_values).logits
    output = onnx_model(pixel_values=pixel_values)
    assert type(output).__name__ == "TimeSformerVideoClassifierOutput"
    torch.testing.assert_close(output.logits, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("qkv_bias", [True, False], ids=["qkv-bias", "no-qkv-bias"])
def test_the_exported_classifier_runs_its_last_layer_for_the_class_token_only(attention_type, qkv_bias):
    config = tiny_config(attention_type=attention_type, qkv_bias=qkv_bias)
    model = randomize_(TimeSformerForVideoClassification(config))
    reference = onnx_export._inference_copy(model)
    graph_model = onnx_export._export_copy(reference)
    mlp_inputs = []
    last_mlp = graph_model.timesformer.encoder.layer[-1].intermediate.dense
    last_mlp.register_forward_hook(lambda module, args, output: mlp_inputs.append(args[0].shape))
    pixel_values = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        expected = reference(pixel_values, output_hidden_states=True).logits  # every token of every layer
        actual = graph_model(pixel_values).logits
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)
    assert mlp_inputs == [(8 if attention_type == "space_only" else 2, 1, 32)]  # one token a video (a frame)


def test_the_exported_backbone_keeps_every_token():
    model = randomize_(TimeSformerModel(tiny_config()))
    graph_model = onnx_export._export_copy(onnx_export._inference_copy(model))
    pixel_values = torch.randn(1, 4, 3, 32, 32)
    with torch.no_grad():
        expected, actual = model.eval()(pixel_values), graph_model(pixel_values)
    torch.testing.assert_close(actual.last_hidden_state, expected.last_hidden_state, atol=1e-5, rtol=0)


def test_export_command_says_which_axes_are_fixed_and_writes_a_self_contained_folder(exported):
    folder, stdout = exported
    assert (
        "fixed axes: frames 4, height 32, width 32 (dynamic with --dynamic-frames --dynamic-size)" in stdout
    )
    assert "top-1 agreement" in stdout
    names = {path.name for path in folder.iterdir()}
    assert {"model.onnx", "model_int8.onnx", "config.json", "video_preprocessor_config.json"} <= names
    report = json.loads((folder / "onnx_export.json").read_text())
    assert report["exporter"] == "torchscript" and report["fixed_axes"] == {
        "frames": 4,
        "height": 32,
        "width": 32,
    }
    assert report["check"]["max_abs_diff"] <= 1e-4
    assert report["int8"]["self_check"]["cosine_similarity_mean"] > 0.99
    model = TimeSformerOnnxModel.from_pretrained(folder)
    assert model(torch.randn(3, 4, 3, 32, 32)).logits.shape == (3, 4)  # the batch is dynamic
    with pytest.raises(Exception, match="pixel_values"):  # the frame count is not
        model(torch.randn(1, 5, 3, 32, 32))


def test_the_export_folder_has_a_model_card_that_says_what_it_is_and_how_to_run_it(exported, repo, capsys):
    folder, _ = exported
    card = ModelCard.load(folder / "README.md")
    assert (card.data.library_name, card.data.pipeline_tag) == ("onnx", "video-classification")
    report = json.loads((folder / "onnx_export.json").read_text())
    assert f"max abs difference {report['check']['max_abs_diff']:.2g} from PyTorch" in card.text
    int8 = report["int8"]["self_check"]
    assert f"cosine similarity mean {int8['cosine_similarity_mean']:.4f}" in card.text
    assert f"From `{repo}` with `timesformer-hf export` (torchscript exporter, opset 18, fp32)" in card.text
    # the card's command runs as written (ONNX Runtime, chosen from the folder)
    command = re.search(r"```bash\ntimesformer-hf (classify .*)\n```", card.text)[1]
    assert command == f"classify {folder} video.mp4 --top-k 5"
    video = sample_video_path()
    assert run_cli(*command.replace("video.mp4", str(video)).split()) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) >= 2


def test_export_pushes_to_the_hub_after_checking_it_can(repo, tmp_path):
    with (
        mock.patch("timesformer_hf.hub.HfApi") as api_class,
        mock.patch("timesformer_hf.hub.hub_unreachable", return_value=None),
    ):
        assert run_cli("export", repo, "--output", tmp_path / "out", "--push-to-hub", "me/tiny-onnx") == 0
    api = api_class.return_value
    api.create_repo.assert_called_once_with("me/tiny-onnx", repo_type="model", private=False, exist_ok=True)
    assert api.upload_folder.call_args.kwargs["folder_path"] == tmp_path / "out"
    card = ModelCard.load(tmp_path / "out" / "README.md")
    assert "timesformer-hf classify me/tiny-onnx video.mp4" in card.text
    # offline: refused before the export starts
    assert run_cli("export", repo, "--output", tmp_path / "offline", "--push-to-hub", "me/tiny-onnx") == 1
    assert not (tmp_path / "offline").exists()


def corrupt_first_weight(path):
    """Add noise to the first large float initializer (a weight) of the ONNX file at `path` (noise: a constant
    added to an embedding would vanish in the LayerNorms)."""
    model = onnx.load(str(path))
    for initializer in model.graph.initializer:
        weight = numpy_helper.to_array(initializer)
        if weight.dtype == np.float32 and weight.size > 100:
            noise = np.random.default_rng(0).normal(size=weight.shape).astype(np.float32)
            initializer.CopyFrom(numpy_helper.from_array(weight + noise, initializer.name))
            break
    onnx.save(model, str(path))


def test_a_corrupted_weight_fails_the_check_and_leaves_nothing(monkeypatch, tmp_path):
    export_graph = onnx_export.export_graph

    def export_then_corrupt(model, path, **kwargs):
        exporter = export_graph(model, path, **kwargs)
        corrupt_first_weight(path)
        return exporter

    monkeypatch.setattr(onnx_export, "export_graph", export_then_corrupt)
    model = randomize_(TimeSformerForVideoClassification(tiny_config()))
    with pytest.raises(OnnxExportError, match="does not match PyTorch: max abs difference"):
        export_onnx(model, tmp_path / "out", dynamic_frames=True)
    assert list(tmp_path.iterdir()) == []  # neither the folder nor its staging copy


def test_an_existing_export_is_replaced_only_with_overwrite_and_another_folder_never(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("keep")
    model = randomize_(TimeSformerModel(tiny_config()))
    with pytest.raises(FileExistsError, match="holds something else"):
        export_onnx(model, tmp_path / "notes", dynamic_frames=True, overwrite=True)
    assert (tmp_path / "notes" / "mine.txt").read_text() == "keep"
    export_onnx(model, tmp_path / "out", dynamic_frames=True)
    with pytest.raises(FileExistsError, match="pass `overwrite=True`"):
        export_onnx(model, tmp_path / "out", dynamic_frames=True)
    report = export_onnx(model, tmp_path / "out", dynamic_frames=True, dtype="fp16", overwrite=True)
    # fp16: checked relative to the largest output, on the CPU
    assert report["check"]["relative"] and report["check"]["max_abs_diff"] <= 2e-2
    assert report["outputs"] == ["last_hidden_state", "pooler_output"]
    pixel_values = torch.randn(2, 4, 3, 32, 32)
    output = TimeSformerOnnxModel.from_pretrained(tmp_path / "out")(pixel_values)
    assert type(output).__name__ == "TimeSformerModelOutput"
    with torch.no_grad():
        expected = model(pixel_values)
    scale = expected.last_hidden_state.abs().max().item()
    torch.testing.assert_close(
        output.last_hidden_state, expected.last_hidden_state, atol=2e-2 * scale, rtol=0
    )
    torch.testing.assert_close(output.pooler_output, expected.pooler_output, atol=2e-2 * scale, rtol=0)


def test_an_fp16_classifier_export_runs_its_attention_in_fp16_and_checks_itself(tmp_path):
    model = randomize_(TimeSformerForVideoClassification(tiny_config()))
    report = export_onnx(model, tmp_path / "out", dtype="fp16")
    assert report["check"]["relative"] and report["check"]["max_abs_diff"] <= 2e-2
    graph = onnx.load(tmp_path / "out" / "model.onnx").graph
    fp16_values = {
        value.name
        for value in graph.value_info
        if value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    }
    attentions = [node for node in graph.node if node.op_type == "MultiHeadAttention"]
    assert len(attentions) == 4 and all(node.output[0] in fp16_values for node in attentions)


def classify_json(*argv, capsys):
    assert run_cli("classify", *argv, "--json", "--num-workers", "0", "--top-k", "4", "--dtype", "fp32") == 0
    return {p["label"]: p["score"] for p in json.loads(capsys.readouterr().out)["predictions"]}


def test_backend_onnxruntime_classifies_a_real_video_as_pytorch_does(repo, exported, capsys):
    video = sample_video_path("bikes.mp4")
    pytorch = classify_json(repo, video, capsys=capsys)
    onnxruntime = classify_json(exported[0], video, "--backend", "onnxruntime", capsys=capsys)
    assert pytorch.keys() == onnxruntime.keys()
    np.testing.assert_allclose([onnxruntime[k] for k in pytorch], list(pytorch.values()), atol=1e-4, rtol=0)
    # an export folder runs with ONNX Runtime without being told (--backend auto)
    assert classify_json(exported[0], video, capsys=capsys) == onnxruntime


def test_backend_onnxruntime_extracts_the_features_pytorch_does(repo, exported_features, tmp_path):
    import pyarrow.parquet as pq

    video = sample_video_path("carphone_pristine.mp4")
    for backend, source in (("pytorch", repo), ("onnxruntime", exported_features)):
        output = tmp_path / f"{backend}.parquet"
        assert (
            run_cli(
                "features",
                source,
                video,
                "--output",
                output,
                "--backend",
                backend,
                "--num-workers",
                0,
                "--dtype",
                "fp32",
            )
            == 0
        )
    features = {
        backend: np.stack(pq.read_table(tmp_path / f"{backend}.parquet")["feature"].to_pylist())
        for backend in ("pytorch", "onnxruntime")
    }
    assert features["pytorch"].shape == (1, 32)
    int8 = json.loads((exported_features / "onnx_export.json").read_text())["int8"]["self_check"]
    assert int8["cosine_similarity_mean"] > 0.99 and "top1_agreement" not in int8  # features have no classes
    np.testing.assert_allclose(features["onnxruntime"], features["pytorch"], atol=1e-4, rtol=0)


def test_backend_onnxruntime_errors_are_one_line(repo, exported, capsys):
    video = sample_video_path("bikes.mp4")
    assert run_cli("classify", repo, video, "--backend", "onnxruntime") == 1
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "has no model.onnx" in error and "timesformer-hf export" in error
    assert run_cli("classify", exported[0], video, "--backend", "onnxruntime", "--compile") == 1
    assert "--compile: for the PyTorch backend only" in capsys.readouterr().err
    output = exported[0].parent / "features.parquet"
    assert run_cli("features", exported[0], video, "--output", output, "--backend", "onnxruntime") == 1
    assert "--task features" in capsys.readouterr().err


def test_int8_agrees_with_pytorch_on_the_demo_models_validation_videos(demo_model, tmp_path):
    repo, data = demo_model
    videos = sorted((data / "validation").rglob("*.mp4"))
    report = export_onnx(repo, tmp_path / "onnx", quantize="int8", videos=videos)
    on_videos = report["int8"]["videos"]
    print(f"int8 vs PyTorch fp32 on {on_videos['count']} validation videos: {on_videos}")
    assert on_videos["count"] == len(videos) == 32
    assert on_videos["top1_agreement"] >= 0.95, f"int8 top-1 agreement: {on_videos}"
    assert on_videos["cosine_similarity_mean"] >= 0.99, f"int8 agreement: {on_videos}"
    int8 = TimeSformerOnnxModel.from_pretrained(tmp_path / "onnx", file_name="model_int8.onnx")
    assert int8(torch.randn(1, 8, 3, 32, 32)).logits.shape == (1, 4)


def test_agreement():
    reference = [np.array([[1.0, 0.0], [0.0, 1.0]])]
    result = agreement(reference, [np.array([[2.0, 0.0], [1.0, 0.0]])])
    assert result == {
        "count": 2,
        "cosine_similarity_mean": 0.5,
        "cosine_similarity_min": 0.0,
        "top1_agreement": 0.5,
    }
    assert "top1_agreement" not in agreement(reference, reference, top1=False)  # features: no classes


def test_providers_follow_the_device():
    assert onnx_providers("cpu") == ["CPUExecutionProvider"]
    with pytest.raises(ValueError, match="not 'mps'"):
        onnx_providers("mps")
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        assert onnx_providers("auto") == ["CPUExecutionProvider"]
        with pytest.raises(ValueError, match="onnxruntime-gpu"):
            onnx_providers("cuda:1")


@pytest.mark.parametrize("module", ["onnx", "onnxruntime", "onnxscript"])
def test_export_without_the_extra_says_what_to_install(module, repo, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, module, None)  # import fails
    assert run_cli("export", repo, "--output", tmp_path / "out") == 1
    assert f"needs {module}: pip install 'timesformer-hf[onnx]'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_onnx_file_runs_the_int8_graph_of_an_export(repo, exported, capsys):
    video = sample_video_path("bikes.mp4")
    fp32 = classify_json(exported[0], video, "--backend", "onnxruntime", capsys=capsys)
    int8 = classify_json(
        exported[0], video, "--backend", "onnxruntime", "--onnx-file", "model_int8.onnx", capsys=capsys
    )
    difference = max(abs(int8[label] - fp32.get(label, 0.0)) for label in int8)
    assert 0 < difference < 0.05  # another graph (int8 rounding), close to the fp32 one
    assert run_cli("classify", repo, video, "--onnx-file", "model_int8.onnx") == 1
    assert (
        "--onnx-file: model_int8.onnx is an ONNX graph, for --backend onnxruntime" in capsys.readouterr().err
    )


def test_backend_onnxruntime_evaluates_as_pytorch_does(repo, exported, tmp_path):
    from timesformer_hf.synthetic import write_motion_dataset

    write_motion_dataset(
        tmp_path / "data", num_train_per_class=1, num_eval_per_class=2, num_frames=4, size=32
    )
    reports = {}
    for backend, model in (("pytorch", repo), ("onnxruntime", exported[0])):
        output_dir = tmp_path / backend
        arguments = ["evaluate", model, tmp_path / "data" / "validation", "--output-dir", output_dir]
        assert (
            run_cli(
                *arguments,
                "--backend",
                backend,
                "--num-workers",
                "0",
                "--predictions",
                output_dir / "p.jsonl",
                "--dtype",
                "fp32",
            )
            == 0
        )
        reports[backend] = json.loads((output_dir / "evaluation.json").read_text())
    pytorch, onnxruntime = reports["pytorch"], reports["onnxruntime"]
    assert onnxruntime["top1_accuracy"] == pytorch["top1_accuracy"]
    assert onnxruntime["confusion_matrix"] == pytorch["confusion_matrix"]
    scores = {
        backend: [
            p["score"]
            for line in (tmp_path / backend / "p.jsonl").read_text().splitlines()
            for p in json.loads(line)["predictions"]
        ]
        for backend in reports
    }
    np.testing.assert_allclose(scores["onnxruntime"], scores["pytorch"], atol=1e-4, rtol=0)

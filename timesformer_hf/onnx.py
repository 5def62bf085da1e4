"""ONNX export of TimeSformer models, checked against PyTorch, and ONNX Runtime inference with the same outputs.

[`export_onnx`] writes a self-contained folder: `model.onnx` (input `pixel_values`, `(batch, frames, 3, height,
width)`), the repo's `config.json` and processor configs, `onnx_export.json` (what was exported and what the check
measured) and, with `quantize="int8"`, `model_int8.onnx`. The graph goes through ONNX Runtime's transformer
optimizer (LayerNorm, GELU and bias fusions) and is checked against PyTorch on random inputs; a graph that disagrees
raises [`OnnxExportError`] and nothing is written. [`TimeSformerOnnxModel`] runs such a folder and returns the
output classes of the PyTorch models, so the inference engine takes it as it takes them.

Example:

```python
>>> from timesformer_hf.onnx import TimeSformerOnnxModel, export_onnx
>>> report = export_onnx("path/to/repo", "path/to/onnx", quantize="int8")  # doctest: +SKIP
>>> model = TimeSformerOnnxModel.from_pretrained("path/to/onnx")  # doctest: +SKIP
>>> model(pixel_values=inputs["pixel_values"]).logits.shape  # doctest: +SKIP
torch.Size([1, 400])
```
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import shutil
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from .errors import InputError
from .extras import require
from .files import apply_umask, make_staging_dir

__all__ = [
    "INT8_FILE",
    "MODEL_FILE",
    "REPORT_FILE",
    "TOLERANCES",
    "OnnxExportError",
    "TimeSformerOnnxModel",
    "check_opset",
    "export_model_card",
    "export_onnx",
    "onnx_providers",
]

MODEL_FILE = "model.onnx"
INT8_FILE = "model_int8.onnx"
REPORT_FILE = "onnx_export.json"
DEFAULT_OPSET = 18
MIN_OPSET = 13  # the first with the reshapes the graph needs (Unflatten)


def check_opset(opset: int) -> None:
    """An opset the TorchScript exporter writes and this graph needs: `MIN_OPSET` up to the installed torch's most."""
    from torch.onnx._constants import ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET

    if not MIN_OPSET <= opset <= ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET:
        raise InputError(
            f"opset {opset} is not one this export can write: choose one from {MIN_OPSET} to "
            f"{ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET} (the most this torch exports; default {DEFAULT_OPSET}).",
            argument="opset",
        )


# Max abs difference from PyTorch fp32 allowed by the self-check; fp16 relative to the largest output magnitude.
TOLERANCES = {"fp32": 1e-4, "fp16": 2e-2}
FEATURE_OUTPUTS = ("last_hidden_state", "pooler_output")
Task = Literal["classify", "features"]


class OnnxExportError(InputError):
    """The exported graph does not give PyTorch's outputs (the self-check of [`export_onnx`])."""


def _require_onnx(feature: str) -> None:
    for module in ("onnx", "onnxruntime", "onnxscript"):
        require(module, feature)


@contextlib.contextmanager
def _quiet(*loggers: str) -> Iterator[None]:
    """Warnings and the WARNING lines of these loggers off: exporter and optimizer chatter (the self-check judges)."""
    levels = {name: logging.getLogger(name).level for name in loggers}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in loggers:
            logging.getLogger(name).setLevel(logging.ERROR)
        try:
            yield
        finally:
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)


# ---- the PyTorch side -----------------------------------------------------------------------------------------


def _is_classifier(model: torch.nn.Module) -> bool:
    """Whether `model` has a classification head, so that its graph outputs only `logits`."""
    return hasattr(model, "classifier")


class _ExportWrapper(torch.nn.Module):
    """`pixel_values` in, plain tensors out: `logits` (nothing else, so that the last layer updates the CLS token
    alone), or `last_hidden_state` and `pooler_output`."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.output_names = ("logits",) if _is_classifier(model) else FEATURE_OUTPUTS

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.model(pixel_values=pixel_values, return_dict=True)
        return tuple(outputs[name] for name in self.output_names)


def _default_task(config: Any) -> Task:
    from .configuration_timesformer import classifier_num_labels

    return "classify" if classifier_num_labels(config) is not None else "features"


def _load_repo(repo: str | os.PathLike, task: Task | None, revision: str | None) -> tuple[Any, list[Any]]:
    """The model of `repo` for `task` (default: what the repo holds) and the processors it has."""
    from .image_processing_timesformer import TimeSformerImageProcessor
    from .loading import hub_errors, load_config
    from .modeling_timesformer import TimeSformerForVideoClassification, TimeSformerModel
    from .video_processing_timesformer import TimeSformerVideoProcessor

    config = load_config(repo, revision)
    task = task or _default_task(config)
    model_class = TimeSformerForVideoClassification if task == "classify" else TimeSformerModel
    with hub_errors(repo):
        model = model_class.from_pretrained(repo, revision=revision)
    processors = []
    for processor_class in (TimeSformerImageProcessor, TimeSformerVideoProcessor):
        try:
            processors.append(processor_class.from_pretrained(repo, revision=revision))
        except OSError:  # a repo may hold only one of the two
            pass
    return model, processors


def _inference_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of `model` as it is exported and checked: fp32, eval, temporal projections fused, eager attention (the
    softmax attention `MultiHeadAttention` computes), whole MLPs (the CPU path's chunks would fix the token count in
    the graph)."""
    from .modeling_timesformer import TimeSformerLayer

    model = copy.deepcopy(model).float().eval()
    model.set_attn_implementation("eager")
    for module in model.modules():
        if isinstance(module, TimeSformerLayer):
            module.chunk_size_feed_forward = 0
    return model.fuse_temporal_projections()


# ---- the exported graph: ONNX Runtime's `MultiHeadAttention` ---------------------------------------------------------


@torch.library.custom_op("timesformer_hf::onnx_multi_head_attention", mutates_args=())
def onnx_multi_head_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, bias: torch.Tensor, num_heads: int
) -> torch.Tensor:
    """Softmax attention as ONNX Runtime's `com.microsoft.MultiHeadAttention` computes it: projected `query`
    `(batch, queries, D)`, `key` and `value` `(batch, seq, D)`, their biases concatenated in `bias` `(3D,)`;
    returns `(batch, queries, D)`."""
    batch_size, num_queries, hidden_size = query.shape
    head_dim = hidden_size // num_heads
    query, key, value = (
        (states + part).view(batch_size, -1, num_heads, head_dim).transpose(1, 2)
        for states, part in zip((query, key, value), bias.chunk(3), strict=True)
    )  # (batch, heads, queries | seq, head_dim)
    weights = torch.softmax(query @ key.transpose(-1, -2) * head_dim**-0.5, dim=-1)
    return (weights @ value).transpose(1, 2).reshape(batch_size, num_queries, hidden_size)


@onnx_multi_head_attention.register_fake
def _(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, bias: torch.Tensor, num_heads: int
) -> torch.Tensor:
    return query.new_empty(query.shape)


def _multi_head_attention_symbolic(
    graph: Any, query: Any, key: Any, value: Any, bias: Any, num_heads: Any
) -> Any:
    """`onnx_multi_head_attention` for the TorchScript exporter."""
    from torch.onnx import symbolic_helper

    heads = symbolic_helper._get_const(num_heads, "i", "num_heads")
    output = graph.op("com.microsoft::MultiHeadAttention", query, key, value, bias, num_heads_i=heads)
    output.setType(query.type())  # the output has the query's shape and type
    return output


class _OnnxSelfAttention(torch.nn.Module):
    """A `TimeSformerSelfAttention` as it is exported: the Q, K and V projections (three MatMuls, which int8
    quantizes) and one `MultiHeadAttention` node, which adds their biases, splits the heads and attends.

    With `num_queries`, only the first `num_queries` tokens query (and are projected to queries); all of
    `hidden_states` are keys and values.
    """

    def __init__(self, attention: torch.nn.Module) -> None:
        super().__init__()
        qkv = attention.qkv
        query, key, value = qkv.weight.detach().chunk(3)  # 3 x (D, D)
        self.register_buffer("query_weight", query.clone())
        self.register_buffer("key_weight", key.clone())
        self.register_buffer("value_weight", value.clone())
        bias = qkv.bias if qkv.bias is not None else torch.zeros(qkv.out_features)
        self.register_buffer("bias", bias.detach().clone())
        self.num_heads = attention.num_heads

    def forward(
        self,
        hidden_states: torch.Tensor,
        output_attentions: bool = False,
        num_queries: int | None = None,
    ) -> tuple[torch.Tensor, None]:
        query = torch.nn.functional.linear(hidden_states[:, :num_queries], self.query_weight)
        key = torch.nn.functional.linear(hidden_states, self.key_weight)
        value = torch.nn.functional.linear(hidden_states, self.value_weight)
        return onnx_multi_head_attention(query, key, value, self.bias, self.num_heads), None


def _export_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of `model` (see [`_inference_copy`]) built for the graph: every self-attention an
    [`_OnnxSelfAttention`]. Same outputs."""
    from .modeling_timesformer import TimeSformerAttention

    model = copy.deepcopy(model)
    for module in model.modules():
        if isinstance(module, TimeSformerAttention):
            module.attention = _OnnxSelfAttention(module.attention)
    return model


def _register_attention_op(opset: int) -> None:
    """Make the TorchScript exporter write `onnx_multi_head_attention` as a `MultiHeadAttention` node."""
    torch.onnx.register_custom_op_symbolic(
        "timesformer_hf::onnx_multi_head_attention", _multi_head_attention_symbolic, opset
    )


# ---- export and graph work ------------------------------------------------------------------------------------


def _trace_input(config: Any, dynamic_frames: bool, dynamic_size: bool) -> torch.Tensor:
    """The example input of the export: batch 2; another frame count / size than the config's where that axis is
    dynamic, so that the traced graph holds the resizing of the time / position embeddings."""
    from .configuration_timesformer import to_pair

    (height, width), (patch_height, patch_width) = to_pair(config.image_size), to_pair(config.patch_size)
    frames = config.num_frames + 1 if dynamic_frames else config.num_frames
    if dynamic_size:
        height, width = height + patch_height, width + patch_width
    return torch.randn(
        2, frames, config.num_channels, height, width, generator=torch.Generator().manual_seed(1)
    )


def export_graph(
    model: torch.nn.Module,
    path: Path,
    *,
    dynamic_frames: bool,
    dynamic_size: bool,
    opset: int,
) -> str:
    """Write the ONNX graph of `model` (see [`_inference_copy`], built as [`_export_copy`]) to `path`; returns the
    exporter used.

    The TorchScript exporter is used, traced on the resizing path where frames or size are dynamic: the model
    branches in Python on them (resizing the embeddings or not), which `torch.export` specialises, and on the CPU
    of BENCHMARKS.md its graph also runs faster after ONNX Runtime's optimizer than the `torch.export` one.
    """
    _register_attention_op(opset)
    model = _export_copy(model)
    wrapper = _ExportWrapper(model).eval()
    example = _trace_input(model.config, dynamic_frames, dynamic_size)
    axes = {0: "batch"} | ({1: "frames"} if dynamic_frames else {})
    axes |= {3: "height", 4: "width"} if dynamic_size else {}
    output_axes = {name: {0: "batch"} for name in wrapper.output_names}
    if "last_hidden_state" in output_axes and (dynamic_frames or dynamic_size):
        output_axes["last_hidden_state"][1] = "sequence"
    with _quiet("torch.onnx"), torch.no_grad():
        torch.onnx.export(
            wrapper,
            (example,),
            str(path),
            input_names=["pixel_values"],
            output_names=list(wrapper.output_names),
            dynamic_axes={"pixel_values": axes, **output_axes},
            opset_version=opset,
            dynamo=False,
        )
    return "torchscript"


def optimize_graph(path: Path, config: Any, dtype: str) -> None:
    """ONNX Runtime's transformer optimizer on the graph at `path`, in place: LayerNorm, SkipLayerNorm, GELU and bias
    fusions (ONNX Runtime contrib ops, as `MultiHeadAttention`), and for fp16 the conversion (fp32 in and out)."""
    optimizer = require("onnxruntime.transformers.optimizer", "ONNX export")
    with (
        _quiet("onnxruntime", "fusion_skiplayernorm", "onnx_model", "fusion_utils"),
        contextlib.redirect_stdout(None),
    ):
        optimized = optimizer.optimize_model(
            str(path),
            model_type="vit",
            num_heads=config.num_attention_heads,
            hidden_size=config.hidden_size,
            opt_level=0,
        )
        if dtype == "fp16":
            optimized.convert_float_to_float16(keep_io_types=True)
    optimized.save_model_to_file(str(path))


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantization of the MatMuls (the linear layers) of the fp32 graph at `source`, after ONNX
    Runtime's quantization pre-processing, into `target`."""
    quantization = require("onnxruntime.quantization", "int8 quantization")
    shape_inference = require("onnxruntime.quantization.shape_inference", "int8 quantization")
    prepared = target.with_name(f".{target.stem}.pre.onnx")
    try:
        # symbolic shape inference does not know the contrib ops of the optimized graph: ONNX's own inference runs
        shape_inference.quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantization.quantize_dynamic(
            str(prepared),
            str(target),
            weight_type=quantization.QuantType.QInt8,
            op_types_to_quantize=["MatMul"],
            extra_options={
                "DefaultTensorType": 1
            },  # FLOAT, for outputs of contrib ops without inferred types
        )
    finally:
        prepared.unlink(missing_ok=True)


# ---- checks ---------------------------------------------------------------------------------------------------


def _check_shapes(config: Any, dynamic_frames: bool, dynamic_size: bool) -> list[tuple[int, ...]]:
    """Inputs of the self-check: 1 and 2 clips as configured, and another frame count / size where dynamic."""
    from .configuration_timesformer import to_pair

    (height, width), (patch_height, patch_width) = to_pair(config.image_size), to_pair(config.patch_size)
    frames, channels = config.num_frames, config.num_channels
    shapes = [(1, frames, channels, height, width), (2, frames, channels, height, width)]
    if dynamic_frames:
        shapes.append((1, max(1, frames // 2), channels, height, width))
    if dynamic_size:
        shapes.append((1, frames, channels, height + patch_height, width + 2 * patch_width))
    return shapes


def _random_inputs(shapes: Sequence[tuple[int, ...]]) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(shape, generator=generator) for shape in shapes]


@torch.no_grad()
def _torch_outputs(model: torch.nn.Module, inputs: Sequence[torch.Tensor]) -> list[tuple[np.ndarray, ...]]:
    wrapper = _ExportWrapper(model)
    return [tuple(output.numpy() for output in wrapper(pixel_values)) for pixel_values in inputs]


def _session(path: Path, providers: Sequence[Any] = ("CPUExecutionProvider",)) -> Any:
    ort = require("onnxruntime", "ONNX Runtime inference")
    return ort.InferenceSession(str(path), providers=list(providers))


def _onnx_outputs(session: Any, inputs: Sequence[torch.Tensor]) -> list[tuple[np.ndarray, ...]]:
    return [tuple(session.run(None, {"pixel_values": pixel_values.numpy()})) for pixel_values in inputs]


def check_export(
    path: Path,
    inputs: Sequence[torch.Tensor],
    expected: Sequence[tuple[np.ndarray, ...]],
    dtype: str,
) -> dict[str, Any]:
    """Run the graph at `path` in ONNX Runtime (CPU) on `inputs`; raise [`OnnxExportError`] when an output is
    further from `expected` (PyTorch fp32) than `TOLERANCES[dtype]` (fp16: times the largest output magnitude)."""
    actual = _onnx_outputs(_session(path), inputs)
    worst, allowed = 0.0, TOLERANCES[dtype]
    for pixel_values, want, got in zip(inputs, expected, actual, strict=True):
        scale = max(1.0, max(float(np.abs(w).max()) for w in want)) if dtype == "fp16" else 1.0
        difference = max(
            float(np.abs(w - g.astype(np.float32)).max()) for w, g in zip(want, got, strict=True)
        )
        if not difference <= allowed * scale:  # NaN fails too
            raise OnnxExportError(
                f"The ONNX graph does not match PyTorch: max abs difference {difference:.3g} on input of shape "
                f"{tuple(pixel_values.shape)}, above the {dtype} tolerance {allowed * scale:.3g}; nothing was "
                "written. Try another `opset=`, or report it with TIMESFORMER_HF_DEBUG=1's traceback."
            )
        worst = max(worst, difference / scale)
    shapes = [list(pixel_values.shape) for pixel_values in inputs]
    return {"max_abs_diff": worst, "tolerance": allowed, "relative": dtype == "fp16", "inputs": shapes}


def agreement(
    reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray], *, top1: bool = True
) -> dict[str, float]:
    """How closely `candidate` rows follow `reference` rows (logits or pooled features): the mean and minimum cosine
    similarity, and with `top1` (logits) the share of rows with the same top-1 class.

    Example:

    ```python
    >>> import numpy as np
    >>> agreement([np.array([[1.0, 3.0]])], [np.array([[1.1, 2.9]])])["top1_agreement"]
    1.0
    ```
    """
    reference, candidate = np.concatenate(reference), np.concatenate(candidate)
    norms = np.linalg.norm(reference, axis=-1) * np.linalg.norm(candidate, axis=-1)
    cosine = (reference * candidate).sum(-1) / np.maximum(norms, 1e-12)
    result = {
        "count": len(reference),
        "cosine_similarity_mean": float(cosine.mean()),
        "cosine_similarity_min": float(cosine.min()),
    }
    if top1:
        result["top1_agreement"] = float((reference.argmax(-1) == candidate.argmax(-1)).mean())
    return result


def _video_inputs(processors: Sequence[Any], videos: Sequence[str | os.PathLike]) -> list[torch.Tensor]:
    """One clip of each video as the repo's video processor prepares it."""
    from .video_processing_timesformer import TimeSformerVideoProcessor

    processor = next((p for p in processors if isinstance(p, TimeSformerVideoProcessor)), None)
    if processor is None:
        raise InputError("Agreement on videos needs the repo's video processor, and the model has none.")
    return [processor(os.fspath(video), return_tensors="pt")["pixel_values"] for video in videos]


def _int8_agreement(
    path: Path,
    model: torch.nn.Module,
    inputs: Sequence[torch.Tensor],
    expected: Sequence[tuple[np.ndarray, ...]],
    video_inputs: Sequence[torch.Tensor],
) -> dict[str, Any]:
    """Agreement of the int8 graph with PyTorch fp32 on the self-check inputs and on the videos: on the logits, or on
    `pooler_output` for a backbone (the last output either way)."""
    session, top1 = _session(path), _is_classifier(model)
    int8_outputs = [outputs[-1] for outputs in _onnx_outputs(session, inputs)]
    report = {"self_check": agreement([outputs[-1] for outputs in expected], int8_outputs, top1=top1)}
    if video_inputs:
        reference = [outputs[-1] for outputs in _torch_outputs(model, video_inputs)]
        int8_outputs = [outputs[-1] for outputs in _onnx_outputs(session, video_inputs)]
        report["videos"] = agreement(reference, int8_outputs, top1=top1)
    return report


def _agreement_lines(report: dict[str, Any]) -> list[str]:
    """The export's measured agreement with PyTorch, as Markdown list items."""
    check = report["check"]
    scale = " x the largest output" if check["relative"] else ""
    lines = [
        f"- `{MODEL_FILE}` ({report['dtype']}): max abs difference {check['max_abs_diff']:.2g} from PyTorch on "
        f"{len(check['inputs'])} random inputs (tolerance {check['tolerance']:g}{scale})"
    ]
    for where, values in report.get("int8", {}).items():
        if where != "file":
            top1 = f", top-1 agreement {values['top1_agreement']:.1%}" if "top1_agreement" in values else ""
            lines.append(
                f"- `{INT8_FILE}` (dynamic int8) against PyTorch fp32, {where.replace('_', ' ')} ({values['count']} "
                f"clips): cosine similarity mean {values['cosine_similarity_mean']:.4f}, min "
                f"{values['cosine_similarity_min']:.4f}{top1}"
            )
    return lines


def export_model_card(
    report: dict[str, Any], config: Any, name: str, location: str, license: str | None = None
) -> Any:
    """The `README.md` of an export folder: the task, how it was exported, its measured agreement with PyTorch,
    and how to run it (`location`: the folder, or the Hub id it is pushed to)."""
    from .hub import build_model_card

    source = report["source"]
    shape = " x ".join(map(str, report["inputs"]["pixel_values"]))
    fixed = ", ".join(f"{axis} {size}" for axis, size in report["fixed_axes"].items()) or "none"
    outputs = (
        "`logits`" if report["task"] == "classify" else "`last_hidden_state` and `pooler_output` (features)"
    )
    made = [
        f"- From `{source}` with `timesformer-hf export` ({report['exporter']} exporter, opset {report['opset']}, "
        f"{report['dtype']}), optimized by ONNX Runtime's transformer optimizer",
        f"- Input `pixel_values` ({shape}; batch, frames, channels, height, width), float32; outputs {outputs}",
        f"- Fixed axes: {fixed}",
    ]
    files = f"`{MODEL_FILE}`" + (
        f"; `{INT8_FILE}` with `--onnx-file {INT8_FILE}`" if "int8" in report else ""
    )
    usage = (
        "With `pip install 'timesformer-hf[onnx]'`, the commands run the folder with ONNX Runtime, decoding and "
        f"sampling frames as the original did ({files}):\n\n"
        f"```bash\ntimesformer-hf classify {location} video.mp4 --top-k 5\n```\n\n"
        "```python\nfrom timesformer_hf.inference import load_model\n\n"
        f'model, processor = load_model("{location}")  # ONNX Runtime for an export folder\n'
        'outputs = model(**processor("video.mp4", return_tensors="pt"))\n```'
    )
    return build_model_card(
        config,
        model_name=name,
        description=f"TimeSformer exported to ONNX from `{source}`, for ONNX Runtime.",
        base_model=source if "/" in source and not os.path.exists(source) else None,  # a Hub id
        tags=["onnx"],
        license=license,
        library_name="onnx",
        pipeline_tag="video-classification" if report["task"] == "classify" else "feature-extraction",
        usage=usage,
        sections=[
            "## How it was made\n\n" + "\n".join(made),
            "## Agreement with PyTorch\n\n" + "\n".join(_agreement_lines(report)),
        ],
    )


# ---- the export -----------------------------------------------------------------------------------------------


def _axes(config: Any, dynamic_frames: bool, dynamic_size: bool) -> tuple[list[Any], dict[str, int]]:
    """The input's axes (names where dynamic) and the fixed frame count and size."""
    from .configuration_timesformer import to_pair

    height, width = to_pair(config.image_size)
    fixed = {} if dynamic_frames else {"frames": config.num_frames}
    fixed |= {} if dynamic_size else {"height": height, "width": width}
    shape = [
        "batch",
        "frames" if dynamic_frames else config.num_frames,
        config.num_channels,
        "height" if dynamic_size else height,
        "width" if dynamic_size else width,
    ]
    return shape, fixed


def export_onnx(
    model_or_repo: torch.nn.Module | str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    task: Task | None = None,
    dynamic_frames: bool = False,
    dynamic_size: bool = False,
    dtype: Literal["fp32", "fp16"] = "fp32",
    quantize: Literal["int8"] | None = None,
    opset: int = DEFAULT_OPSET,
    videos: Sequence[str | os.PathLike] = (),
    overwrite: bool = False,
    revision: str | None = None,
    push_to_hub: str | None = None,
    private: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """
    Export a TimeSformer to `output_dir/model.onnx`, check it against PyTorch, and write the folder atomically,
    with a model card (`README.md`: how it was made, its agreement with PyTorch, how to run it).

    Args:
        model_or_repo: A `TimeSformerForVideoClassification` / `TimeSformerModel`, or a repo folder or Hub id (its
            config and processor configs are copied, so the folder is self-contained).
        output_dir: The folder to write; an existing one that is not empty is replaced only with `overwrite`.
        task: `"classify"` (output `logits`) or `"features"` (`last_hidden_state` and `pooler_output`: the
            backbone); by default what the repo holds.
        dynamic_frames, dynamic_size: Make the frame count / the height and width dynamic axes (the batch always is).
        dtype: `"fp32"`, or `"fp16"` for GPU runtimes (inputs and outputs stay fp32).
        quantize: `"int8"`: also write `model_int8.onnx`, dynamic int8 quantization for CPUs (fp32 only).
        opset: The ONNX opset.
        videos: Videos on which to measure the int8 model's agreement with PyTorch (one clip each).
        overwrite: Replace an existing `output_dir`.
        revision: Branch, tag or commit of a Hub repo.
        push_to_hub: A Hub repo id to upload the folder to (checked before the export starts).
        private: Create that repo as private.
        progress: Show a progress bar over the export's steps.

    Returns:
        The report also written to `output_dir/onnx_export.json`: exporter, axes, the self-check's largest
        difference and tolerance, and the int8 agreement (cosine similarity, top-1 agreement).

    Raises:
        OnnxExportError: The graph's outputs differ from PyTorch's beyond `TOLERANCES[dtype]`; nothing is written.

    Example:

    ```python
    >>> report = export_onnx("path/to/repo", "path/to/onnx", dynamic_frames=True)  # doctest: +SKIP
    >>> report["check"]["max_abs_diff"] < 1e-4  # doctest: +SKIP
    True
    ```
    """
    from tqdm.auto import tqdm

    from .files import WriteLock, check_output_dir, remove_leftovers, replace_dir
    from .hub import check_hub_access, push_repo

    _require_onnx("ONNX export")
    check_opset(opset)
    if dtype not in TOLERANCES:
        raise InputError(f"Unknown dtype {dtype!r} for the ONNX export: use fp32 or fp16.")
    if quantize not in (None, "int8"):
        raise InputError(f"Unknown quantization {quantize!r}: the export offers int8.")
    if quantize and dtype != "fp32":
        raise InputError(
            "`quantize='int8'` quantizes the fp32 graph: drop `dtype='fp16'`, or export twice.",
            argument="quantize",
        )
    if videos and not quantize:
        raise InputError(
            "Videos are for measuring the int8 agreement: add `quantize='int8'`.", argument="videos"
        )
    if task not in (None, "classify", "features"):
        raise InputError(f"Unknown task {task!r}: use classify (logits) or features (the backbone's tokens).")
    output_dir = Path(output_dir)
    check_output_dir(output_dir, overwrite=overwrite, written_by=(REPORT_FILE, MODEL_FILE))
    if push_to_hub:
        check_hub_access(f"pushing to {push_to_hub}")
    if isinstance(model_or_repo, torch.nn.Module):
        source, processors = type(model_or_repo).__name__, []
        model = getattr(model_or_repo, "timesformer", model_or_repo) if task == "features" else model_or_repo
    else:
        source = os.fspath(model_or_repo)
        model, processors = _load_repo(model_or_repo, task, revision)
    if task == "classify" and not _is_classifier(model):
        raise InputError(f"{source} is a backbone without a classifier: export it with task='features'.")
    model = _inference_copy(model)
    config = model.config
    inputs = _random_inputs(_check_shapes(config, dynamic_frames, dynamic_size))
    expected = _torch_outputs(model, inputs)
    video_inputs = _video_inputs(processors, videos) if videos else []

    steps = ["export", "optimize", "check", *(["int8"] if quantize else []), "write"]
    bar = tqdm(total=len(steps), desc="ONNX export", unit="step", disable=not progress, postfix=steps[0])

    def step(name: str) -> None:  # the previous step is done
        bar.update()
        bar.set_postfix_str(name)

    output_dir.parent.mkdir(parents=True, exist_ok=True)
    with WriteLock(output_dir), bar:
        remove_leftovers(output_dir)  # an interrupted export's staging folder
        staging = make_staging_dir(output_dir, "onnx")
        try:
            exporter = export_graph(
                model,
                staging / MODEL_FILE,
                dynamic_frames=dynamic_frames,
                dynamic_size=dynamic_size,
                opset=opset,
            )
            step("optimize")
            optimize_graph(staging / MODEL_FILE, config, dtype)
            step("check")
            shape, fixed = _axes(config, dynamic_frames, dynamic_size)
            report: dict[str, Any] = {
                "source": source,
                "task": "classify" if _is_classifier(model) else "features",
                "dtype": dtype,
                "opset": opset,
                "exporter": exporter,
                "inputs": {"pixel_values": shape},
                "outputs": list(_ExportWrapper(model).output_names),
                "fixed_axes": fixed,
                "check": check_export(staging / MODEL_FILE, inputs, expected, dtype),
            }
            if quantize:
                step("int8")
                quantize_int8(staging / MODEL_FILE, staging / INT8_FILE)
                int8 = _int8_agreement(staging / INT8_FILE, model, inputs, expected, video_inputs)
                report["int8"] = {"file": INT8_FILE, **int8}
            step("write")
            config.save_pretrained(staging)
            for processor in processors:
                processor.save_pretrained(staging)
            (staging / REPORT_FILE).write_text(json.dumps(report, indent=2))
            card = export_model_card(
                report, config, output_dir.name, push_to_hub or os.fspath(output_dir), _source_license(source)
            )
            card.save(staging / "README.md")
            apply_umask(staging)
            replace_dir(staging, output_dir)
            bar.update()
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    if push_to_hub:
        push_repo(output_dir, push_to_hub, private=private, commit_message=f"Add the ONNX export of {source}")
    return report


def _source_license(source: str) -> str | None:
    """The license of the exported repo's model card, for the export's (None when it has none or is unreadable)."""
    from .hub import card_license

    try:
        return card_license(source) if os.path.isdir(source) else None
    except (OSError, ValueError):
        return None


# ---- running an export ----------------------------------------------------------------------------------------


def onnx_providers(device: str | torch.device = "cpu") -> list[Any]:
    """ONNX Runtime execution providers for a device as the commands spell it: `cpu`, `cuda`, `cuda:N` or `auto`
    (CUDA where this ONNX Runtime has it, else the CPU). A device it cannot use is a `ValueError` saying so.

    Example:

    ```python
    >>> onnx_providers("cpu")
    ['CPUExecutionProvider']
    ```
    """
    ort = require("onnxruntime", "ONNX Runtime inference")
    device = str(device)
    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if device == "cpu" or (device == "auto" and not has_cuda):
        return ["CPUExecutionProvider"]
    if device == "auto" or device.startswith("cuda"):
        if not has_cuda:
            raise InputError(
                f"Device {device!r} asked for, but this ONNX Runtime has no CUDA provider: pip install "
                "onnxruntime-gpu, or use `device='cpu'`."
            )
        index = int(device.partition(":")[2] or 0)
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    raise InputError(f"ONNX Runtime runs on cpu or cuda here, not {device!r}: use `device='cpu'` (or cuda).")


class TimeSformerOnnxModel:
    """
    A folder written by [`export_onnx`], run by ONNX Runtime, called as the PyTorch model is: `pixel_values` (the
    processor's output) in, [`TimeSformerVideoClassifierOutput`] or [`TimeSformerModelOutput`] out (CPU tensors).

    Example:

    ```python
    >>> model = TimeSformerOnnxModel.from_pretrained("path/to/onnx")  # doctest: +SKIP
    >>> model(**processor("video.mp4", return_tensors="pt")).logits.argmax(-1)  # doctest: +SKIP
    tensor([3])
    ```
    """

    main_input_name = "pixel_values"

    def __init__(self, session: Any, config: Any, path: Path) -> None:
        self.session = session
        self.config = config
        self.path = path
        self.output_names = [output.name for output in session.get_outputs()]
        self.device, self.dtype = torch.device("cpu"), torch.float32  # where inputs go and outputs come from

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        *,
        file_name: str = MODEL_FILE,
        device: str | torch.device = "cpu",
        task: Task | None = None,
        session_options: Any = None,
    ) -> TimeSformerOnnxModel:
        """Load `path/file_name` (`model_int8.onnx` for the int8 model) with its config, on `device` (see
        [`onnx_providers`]); `task` checks that the graph has that task's outputs."""
        from .configuration_timesformer import TimeSformerConfig

        _require_onnx("ONNX Runtime inference")
        ort = require("onnxruntime", "ONNX Runtime inference")
        path = Path(path)
        if not (path / file_name).is_file():
            raise FileNotFoundError(
                f"{path} has no {file_name}: ONNX Runtime runs a folder written by `export_onnx` (`timesformer-hf "
                "export`): export the model first and pass that folder."
            )
        providers = onnx_providers(device)
        try:
            session = ort.InferenceSession(
                str(path / file_name), sess_options=session_options, providers=providers
            )
        except Exception as error:  # ONNX Runtime's own classes: Fail, InvalidProtobuf, InvalidGraph...
            raise InputError(
                f"{path / file_name} is not a graph ONNX Runtime can load ({' '.join(str(error).split())[:200]}): "
                "export the model again."
            ) from error
        model = cls(session, TimeSformerConfig.from_pretrained(path), path)
        if task == "features" and "pooler_output" not in model.output_names:
            raise InputError(
                f"{path} was exported for classification (outputs {model.output_names}); features need the "
                "backbone: export it again with `task='features'`."
            )
        if task == "classify" and "logits" not in model.output_names:
            raise InputError(
                f"{path} holds a backbone (outputs {model.output_names}), without a classifier: classify needs an "
                "export of a classification model."
            )
        return model

    def __call__(
        self, pixel_values: torch.Tensor | np.ndarray, return_dict: bool = True, **kwargs: Any
    ) -> Any:
        from .modeling_timesformer import TimeSformerModelOutput, TimeSformerVideoClassifierOutput

        if isinstance(pixel_values, torch.Tensor):
            pixel_values = pixel_values.detach().to("cpu", torch.float32).numpy()
        arrays = self.session.run(None, {"pixel_values": np.asarray(pixel_values, dtype=np.float32)})
        tensors = {
            name: torch.from_numpy(array) for name, array in zip(self.output_names, arrays, strict=True)
        }
        if "logits" in tensors:
            output = TimeSformerVideoClassifierOutput(logits=tensors["logits"])
        else:
            output = TimeSformerModelOutput(**tensors)
        return output if return_dict else output.to_tuple()

    forward = __call__

    def __repr__(self) -> str:
        providers = self.session.get_providers()
        return f"{type(self).__name__}({self.path}, outputs={self.output_names}, providers={providers})"

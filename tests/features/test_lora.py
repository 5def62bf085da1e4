"""LoRA fine-tuning (`--lora-r`): only the adapters and the classifier train, the final repo is the merged model."""

import json
import sys

import pytest
import torch
from conftest import randomize_, tiny_config
from transformers import HfArgumentParser, TrainerCallback, TrainingArguments

from timesformer_hf import TimeSformerForVideoClassification, TimeSformerVideoProcessor
from timesformer_hf.commands.app import main
from timesformer_hf.inference import load_model
from timesformer_hf.packed_linear import pack_linear_layers
from timesformer_hf.synthetic import motion_labels, write_motion_dataset
from timesformer_hf.training import (
    LORA_TARGET_MODULES,
    DataTrainingArguments,
    ModelArguments,
    apply_lora,
    run_training,
)

peft = pytest.importorskip("peft", reason="LoRA needs the peft extra")

RANK = 4


class Snapshots(TrainerCallback):
    """The trained model's parameters before the first step and after the last."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.before = {name: value.detach().clone() for name, value in model.named_parameters()}

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.after = {name: value.detach().clone() for name, value in model.named_parameters()}
        self.trainable = {name for name, value in model.named_parameters() if value.requires_grad}


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    """3 LoRA steps from a pretrained tiny repo (5 classes) on the motion folders (4 classes), adapter saved."""
    root = tmp_path_factory.mktemp("lora")
    base = root / "base"
    randomize_(TimeSformerForVideoClassification(tiny_config())).save_pretrained(base)
    TimeSformerVideoProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}, num_frames=4
    ).save_pretrained(base)
    write_motion_dataset(root / "data", num_train_per_class=2, num_eval_per_class=1, num_frames=4, size=32)
    snapshots = Snapshots()
    metrics = run_training(
        ModelArguments(model_name_or_path=str(base), lora_r=RANK, lora_alpha=8, save_adapter=True),
        DataTrainingArguments(
            train_dir=str(root / "data" / "train"),
            validation_dir=str(root / "data" / "validation"),
            frame_sampling="uniform",
            horizontal_flip=False,
        ),
        TrainingArguments(
            output_dir=str(root / "run"),
            max_steps=3,
            learning_rate=1e-2,
            per_device_train_batch_size=4,
            report_to="none",
            save_strategy="no",
            disable_tqdm=True,
            dataloader_pin_memory=False,
        ),
        callbacks=[snapshots],
    )
    return root, snapshots, metrics


def test_only_the_adapters_and_the_classifier_change(lora_run):
    _, snapshots, _ = lora_run
    changed = {
        name for name, value in snapshots.before.items() if not torch.equal(value, snapshots.after[name])
    }
    assert changed == snapshots.trainable  # every trainable parameter moved, and nothing else
    assert all("lora_" in name or "classifier.modules_to_save" in name for name in changed), sorted(changed)
    for kind in ("lora_A", "lora_B", "classifier.modules_to_save.default.weight"):
        assert any(kind in name for name in changed), kind
    frozen = [name for name in snapshots.before if "base_layer" in name or "layernorm" in name]
    assert frozen and not set(frozen) & changed


def test_the_merged_repo_equals_base_and_adapter(lora_run):
    root, _, _ = lora_run
    merged, info = TimeSformerForVideoClassification.from_pretrained(
        root / "run" / "model", output_loading_info=True
    )
    assert not any(info.values()), info  # a plain model: every weight in place, no adapter keys
    labels = dict(enumerate(motion_labels(4)))
    base = TimeSformerForVideoClassification.from_pretrained(
        root / "base",
        id2label=labels,
        label2id={name: i for i, name in labels.items()},
        ignore_mismatched_sizes=True,
    )
    adapted = peft.PeftModel.from_pretrained(base, root / "run" / "adapter").eval()
    pixel_values = torch.randn(2, 4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = adapted(pixel_values).logits
        logits = merged.eval()(pixel_values).logits
        fused = merged.fuse_temporal_projections()(pixel_values).logits
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(fused, expected, atol=1e-5, rtol=0)
    # the adapter attached to a base model fused for inference (as `load_model` returns it) runs in full
    fused_base = TimeSformerForVideoClassification.from_pretrained(
        root / "base",
        id2label=labels,
        label2id={name: i for i, name in labels.items()},
        ignore_mismatched_sizes=True,
    )
    fused_base.eval().fuse_temporal_projections()
    adapted_fused = peft.PeftModel.from_pretrained(fused_base, root / "run" / "adapter").eval()
    with torch.no_grad():
        torch.testing.assert_close(adapted_fused(pixel_values).logits, expected, atol=1e-5, rtol=0)
    # the adapters changed the backbone: its features differ from the base model's
    original = TimeSformerForVideoClassification.from_pretrained(root / "base").eval()
    with torch.no_grad():
        features = merged.timesformer(pixel_values).pooler_output
        assert not torch.allclose(features, original.timesformer(pixel_values).pooler_output, atol=1e-3)


def test_trainable_parameter_count_is_reported(lora_run):
    root, _, _ = lora_run
    config = tiny_config()
    hidden, intermediate = config.hidden_size, config.intermediate_size
    # per layer: 2 qkv, 2 attention outputs, temporal_dense, the two MLP projections; r * (in + out) each
    per_layer = 2 * (hidden + 3 * hidden) + 3 * (2 * hidden) + 2 * (hidden + intermediate)
    classifier = hidden * 4 + 4
    expected = RANK * per_layer * config.num_hidden_layers + classifier
    results = json.loads((root / "run" / "train_results.json").read_text())
    assert results["trainable_parameters"] == expected
    # all of the PeftModel's: the plain model's, the adapters and the trained copy of the classifier
    plain = sum(p.numel() for p in TimeSformerForVideoClassification(tiny_config(num_labels=4)).parameters())
    assert results["total_parameters"] == plain + expected


def test_the_merged_repo_classifies(lora_run, capsys):
    root, _, _ = lora_run
    video = next((root / "data" / "validation").rglob("*.mp4"))
    assert main(["classify", str(root / "run" / "model"), str(video), "--num-workers", "0", "--json"]) == 0
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {p["label"] for p in record["predictions"]} == set(motion_labels(4))


def test_target_modules_default_to_the_attention_and_mlp_projections():
    model = TimeSformerForVideoClassification(tiny_config())
    linear = {name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}
    wrapped = apply_lora(model, ModelArguments(from_scratch=True, lora_r=2))
    adapted = {
        name.removeprefix("base_model.model.")
        for name, module in wrapped.named_modules()
        if isinstance(module, peft.tuners.lora.LoraLayer)
    }
    assert adapted == linear - {
        "classifier"
    }  # every projection of every layer (the classifier trains in full)
    assert set(LORA_TARGET_MODULES) == {"qkv", "dense", "temporal_dense"}
    only_qkv = apply_lora(
        TimeSformerForVideoClassification(tiny_config()),
        ModelArguments(from_scratch=True, lora_r=2, lora_target_modules=["qkv"]),
    )
    names = [
        name for name, module in only_qkv.named_modules() if isinstance(module, peft.tuners.lora.LoraLayer)
    ]
    assert len(names) == 2 * tiny_config().num_hidden_layers and all(name.endswith("qkv") for name in names)


def test_lora_options_parse_and_are_checked():
    parser = HfArgumentParser(ModelArguments)
    (arguments,) = parser.parse_args_into_dataclasses(
        [
            "--from-scratch",
            "--lora_r",
            "8",
            "--lora-alpha",
            "32",
            "--lora_dropout",
            "0.1",
            "--lora_target_modules",
            "qkv",
            "dense",
            "--save_adapter",
        ]
    )
    assert (arguments.lora_r, arguments.lora_alpha, arguments.lora_dropout) == (8, 32, 0.1)
    assert arguments.lora_target_modules == ["qkv", "dense"] and arguments.save_adapter
    with pytest.raises(ValueError, match="give `lora_r=` too"):
        ModelArguments(from_scratch=True, save_adapter=True)
    with pytest.raises(ValueError, match="at least 1"):
        ModelArguments(from_scratch=True, lora_r=0)


def test_lora_without_peft_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)
    with pytest.raises(ImportError, match=r"pip install 'timesformer-hf\[peft\]'"):
        apply_lora(
            TimeSformerForVideoClassification(tiny_config()), ModelArguments(from_scratch=True, lora_r=2)
        )


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_an_adapter_on_the_model_load_model_returns(repo, dtype):
    """`load_model`'s model (temporal projections fused; in bf16 on a CPU, linear layers packed) with an adapter:
    unmerged, the adapter runs in full; merged, fused and packed again, the same logits."""

    def adapted(model):
        torch.manual_seed(0)  # the same adapter weights each time
        config = peft.LoraConfig(target_modules=list(LORA_TARGET_MODULES), r=2, init_lora_weights=False)
        return peft.get_peft_model(model, config)

    pixel_values = torch.randn(2, 4, 3, 32, 32, generator=torch.Generator().manual_seed(1)).to(dtype)
    reference = adapted(TimeSformerForVideoClassification.from_pretrained(repo).eval().to(dtype))
    model = adapted(load_model(repo, dtype="fp32" if dtype == torch.float32 else "bf16", device="cpu")[0])
    with torch.no_grad():
        expected = reference(pixel_values).logits.float()
        unmerged = model(pixel_values).logits.float()
        merged = pack_linear_layers(model.merge_and_unload().fuse_temporal_projections())
        logits = merged(pixel_values).logits.float()
        base = load_model(repo, dtype="fp32", device="cpu")[0](pixel_values.float()).logits
    tolerance = 1e-5 if dtype == torch.float32 else 0.02 * expected.abs().max().item()
    assert (expected - base).abs().max() > 10 * tolerance  # the adapter matters
    torch.testing.assert_close(unmerged, expected, atol=tolerance, rtol=0)
    torch.testing.assert_close(logits, expected, atol=tolerance, rtol=0)

"""`import timesformer_hf` registers the Auto classes, whatever the running script is called."""

import subprocess
import sys
import textwrap

CHECK = textwrap.dedent(
    """
    import sys

    import timesformer_hf
    from transformers import AutoConfig, AutoModel, AutoModelForVideoClassification
    from transformers.models.auto.video_processing_auto import AutoVideoProcessor

    config = AutoConfig.for_model("timesformer_hf", num_hidden_layers=1)
    print(type(AutoModel.from_config(config)).__name__)
    print(type(AutoModelForVideoClassification.from_config(config)).__name__)
    timesformer_hf.TimeSformerVideoProcessor().save_pretrained(sys.argv[1])
    print(type(AutoVideoProcessor.from_pretrained(sys.argv[1])).__name__)
    """
)


def test_import_registers_even_in_a_script_named_like_the_console_script(tmp_path):
    # the console script is `timesformer-hf`: a script whose name starts the same must not lose the registration
    script = tmp_path / "timesformer-hf-experiment.py"
    script.write_text(CHECK)
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "processor")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "TimeSformerModel",
        "TimeSformerForVideoClassification",
        "TimeSformerVideoProcessor",
    ]

"""`python -m timesformer_hf.demo` end to end in a tiny setting (the full run is `make demo`)."""

from timesformer_hf.demo import main


def test_demo_writes_everything_under_its_output_dir(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    output_dir = tmp_path / "demo-output"
    main(["--output-dir", str(output_dir), "--epochs", "1", "--videos-per-class", "2"])
    printed = capsys.readouterr().out
    assert (
        "| tiny TimeSformer | divided_space_time |" in printed
        and "| tiny TimeSformer | space_only |" in printed
    )
    assert "true label: right_2" in printed
    assert sorted(path.name for path in tmp_path.iterdir()) == ["demo-output"]
    repo = {path.name for path in (output_dir / "model").iterdir()}
    assert {"config.json", "model.safetensors", "video_preprocessor_config.json", "README.md"} <= repo

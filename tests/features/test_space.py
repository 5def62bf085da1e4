"""`timesformer-hf space`: a Space folder (front matter, app.py, pinned requirements, examples, the model) whose app.py
serves the app when run from the folder in a fresh process; Hub ids load by id; --push uploads it as a Space."""

import shutil
import sys
from unittest import mock

import gradio
import pytest
import yaml
from conftest import sample_video_path, serve

from timesformer_hf import __version__
from timesformer_hf.commands.app import main
from timesformer_hf.synthetic import motion_labels


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    folder = tmp_path_factory.mktemp("examples")
    shutil.copy(sample_video_path("carphone_pristine.mp4"), folder / "carphone.mp4")
    (folder / "notes.txt").write_text("not an example")
    return folder


def front_matter(folder):
    text = (folder / "README.md").read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_a_local_model_is_copied_into_a_space_that_serves_it(repo, examples, tmp_path, capsys):
    (repo / "README.md").write_text("---\nlicense: cc-by-nc-4.0\n---\n# tiny\n")
    space = tmp_path / "space"
    argv = ["space", str(repo), str(space), "--examples", str(examples), "--include-model"]
    assert main(argv) == 0, capsys.readouterr().err
    meta = front_matter(space)
    assert (meta["sdk"], meta["sdk_version"], meta["app_file"]) == ("gradio", gradio.__version__, "app.py")
    assert meta["license"] == "cc-by-nc-4.0" and "models" not in meta  # a local model has no Hub id
    assert (space / "requirements.txt").read_text() == f"timesformer-hf[app]=={__version__}\n"
    assert sorted(path.name for path in (space / "examples").iterdir()) == ["carphone.mp4"]
    assert (space / "model" / "model.safetensors").read_bytes() == (repo / "model.safetensors").read_bytes()
    # its app.py, run from the folder in a fresh process (as a Space runs it), serves the model and its examples
    process, url = serve(
        [sys.executable, "app.py"], tmp_path / "space.log", cwd=space, env={"GRADIO_SERVER_PORT": "{port}"}
    )
    try:
        from gradio_client import Client, handle_file

        client = Client(url, verbose=False, download_files=str(tmp_path))
        labels, _, _ = client.predict(handle_file(space / "examples" / "carphone.mp4"), api_name="/classify")
        assert labels["label"] in motion_labels()
    finally:
        process.terminate()
        process.wait(timeout=30)
    # written again only when asked, and only over a Space
    assert main(argv) == 1
    assert "exists" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "mine.txt").write_text("keep")
    assert main(["space", str(repo), str(notes), "--include-model", "--overwrite"]) == 1
    assert (notes / "mine.txt").read_text() == "keep"


def test_a_hub_model_is_loaded_by_id(tmp_path, capsys):
    space = tmp_path / "space"
    assert (
        main(["space", "me/timesformer-motion", str(space), "--requirement", "git+https://example.org/x.git"])
        == 0
    )
    meta = front_matter(space)
    assert meta["models"] == ["me/timesformer-motion"] and meta["license"] == "other"  # offline: not known
    assert "launch_app('me/timesformer-motion')" in (space / "app.py").read_text()
    assert (space / "requirements.txt").read_text() == "git+https://example.org/x.git\n"
    assert sorted(path.name for path in space.iterdir()) == ["README.md", "app.py", "requirements.txt"]


def test_bad_requests_are_refused_before_anything_is_written(repo, tmp_path, capsys):
    cases = {
        (
            str(repo),
        ): "is a local folder, which a Space cannot read: pass --include-model to copy it into the Space",
        ("me/model", "--include-model"): "is a Hub id: the Space loads it by id",
        ("./runs/mdoel", "--include-model"): "No such folder: ./runs/mdoel",
        ("me/model", "--examples", str(tmp_path)): "holds no video",
        ("me/model", "--private"): "--private is for --push SPACE_ID",
        ("me/model", "--push", "me/demo"): "Pushing to me/demo needs the Hub, but HF_HUB_OFFLINE is set",
    }
    for arguments, message in cases.items():
        assert main(["space", arguments[0], str(tmp_path / "space"), *arguments[1:]]) == 1
        assert message in capsys.readouterr().err, arguments
    assert not (tmp_path / "space").exists()


def test_push_uploads_the_folder_as_a_gradio_space(repo, tmp_path, capsys):
    space = tmp_path / "space"
    with (
        mock.patch("timesformer_hf.hub.HfApi") as api,
        mock.patch("timesformer_hf.hub.hub_unreachable", return_value=None),
    ):
        argv = ["space", str(repo), str(space), "--include-model", "--push", "me/demo", "--private"]
        assert main(argv) == 0, capsys.readouterr().err
    api.return_value.create_repo.assert_called_once_with(
        "me/demo", repo_type="space", private=True, exist_ok=True, space_sdk="gradio"
    )
    upload = api.return_value.upload_folder.call_args.kwargs
    assert (upload["repo_id"], upload["repo_type"], upload["folder_path"]) == ("me/demo", "space", space)

"""The web app (`timesformer-hf app`) on a tiny model and real mp4s: `VideoApp` gives what the commands give; the
served page answers `gradio_client` on its named endpoints and works in a real browser (headless Chromium)."""

import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest
from conftest import sample_video_path, serve

from timesformer_hf.commands.app import main
from timesformer_hf.errors import InputError
from timesformer_hf.synthetic import motion_labels, motion_video, write_video
from timesformer_hf.video import VideoReader
from timesformer_hf.web_app import API_NAMES, VideoApp

WINDOW = (
    2.5  # bikes.mp4 (10 s) is a long video for the app (over 2 windows), carphone_pristine.mp4 (4 s) is not
)


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    folder = tmp_path_factory.mktemp("collection")
    for name in ("bikes.mp4", "carphone_pristine.mp4"):
        shutil.copy(sample_video_path(name), folder / name)
    for label in motion_labels():
        write_video(folder / f"{label}.mp4", motion_video(label, num_frames=8, size=32, rng=0))
    return folder


@pytest.fixture(scope="module")
def index_dir(repo, collection, tmp_path_factory):
    folder = tmp_path_factory.mktemp("index") / "index"
    options = ("--window", str(WINDOW), "--num-workers", "0", "--dtype", "fp32")
    assert main(["index", str(repo), str(collection), "--output", str(folder), *options]) == 0
    return folder


@pytest.fixture(scope="module")
def app(repo, index_dir):
    app = VideoApp(repo, index=index_dir, dtype="fp32", window=WINDOW, max_duration=60, top_k=4)
    yield app
    app.close()
    assert not app.output_dir.exists()


def command_json(capsys, *argv):
    assert main([str(arg) for arg in argv]) == 0, capsys.readouterr().err
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_classify_gives_what_the_classify_command_gives(app, repo, collection, capsys):
    short, long = collection / "carphone_pristine.mp4", collection / "bikes.mp4"
    (expected,) = command_json(capsys, "classify", repo, short, "--json", "--dtype", "fp32", "--top-k", "4")
    output = app.classify(short)
    assert output["labels"] == pytest.approx(
        {p["label"]: p["score"] for p in expected["predictions"]}, abs=1e-6
    )
    assert output["windows"] == [] and output["timeline"] is None
    # a long video: windows, each with its top label, and the timeline of the top classes
    argv = ("classify", repo, long, "--json", "--dtype", "fp32", "--top-k", "4", "--window", WINDOW)
    (expected,) = command_json(capsys, *argv)
    output = app.classify(long)
    assert output["labels"] == pytest.approx(
        {p["label"]: p["score"] for p in expected["predictions"]}, abs=1e-6
    )
    assert [(w["start"], w["end"], w["label"]) for w in output["windows"]] == [
        (w["start"], w["end"], w["predictions"][0]["label"]) for w in expected["windows"]
    ]
    assert len(output["windows"]) == 4 and Path(output["timeline"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_explain_writes_a_playable_video_and_a_strip_of_frames(app, collection):
    video = collection / "bikes.mp4"
    output = app.explain(video)
    top = next(iter(output["labels"]))
    assert output["description"] == f"relevance for {top}"
    with VideoReader(output["video"]) as reader:  # one picture per frame the model saw (4), with its map
        assert reader.metadata.total_num_frames == app.processor.num_frames
        assert reader.metadata.width > 300 and reader.metadata.height > 300
    assert Path(output["frames"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    other = next(label for label in app.labels if label != top)
    assert app.explain(video, target=other)["description"] == f"relevance for {other}"
    assert app.explain(video, method="rollout")["description"] == "attention rollout"
    with pytest.raises(InputError, match="'jumping' is not a class of this model"):
        app.explain(video, target="jumping")


def test_search_gives_what_the_search_command_gives(app, index_dir, collection, tmp_path, capsys):
    query = shutil.copy(collection / "bikes.mp4", tmp_path / "query.mp4")
    for span in ((None, None), (2.5, 5.0)):
        flags = [
            f"--{name}={value}"
            for name, value in zip(("start", "end"), span, strict=True)
            if value is not None
        ]
        expected = command_json(capsys, "search", index_dir, query, "--json", "--top-k", "3", *flags)
        hits = app.search(query, *span, top_k=3)
        assert [(hit["video"], hit["start"]) for hit in hits] == [
            (hit["video"], hit["start"]) for hit in expected
        ]
        assert [hit["score"] for hit in hits] == pytest.approx([hit["score"] for hit in expected], abs=1e-5)
        for hit in hits:  # a playable preview of each result: its moment
            with VideoReader(hit["preview"]) as reader:
                assert reader.metadata.duration <= hit["end"] - hit["start"] + 0.2
    assert hits[0]["video"] == str(collection / "bikes.mp4") and hits[0]["score"] == pytest.approx(
        1.0, abs=1e-5
    )


def test_bad_uploads_get_one_sentence(app, repo, collection, tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    for call in (app.classify, app.explain, app.search):
        with pytest.raises(
            InputError, match=r"^notes.mp4 is not a video that can be read: upload a video file"
        ):
            call(text)
        with pytest.raises(InputError, match="^No video: upload one"):
            call(None)
    with pytest.raises(InputError, match="must come after the start"):
        app.search(collection / "bikes.mp4", 4, 2)
    short = VideoApp(repo, dtype="fp32", max_duration=5)
    try:
        with pytest.raises(InputError, match=r"bikes.mp4 lasts 10 s, more than this app's limit of 5 s"):
            short.classify(collection / "bikes.mp4")
        with pytest.raises(InputError, match="no index to search"):
            short.search(collection / "carphone_pristine.mp4")
    finally:
        short.close()


# ---- the app served, as its users reach it -------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(repo, index_dir, collection, tmp_path_factory):
    log = tmp_path_factory.mktemp("app") / "app.log"
    argv = [sys.executable, "-m", "timesformer_hf.cli", "app", str(repo), "--index", str(index_dir)]
    argv += ["--examples", str(collection), "--port", "{port}", "--window", str(WINDOW), "--dtype", "fp32"]
    process, url = serve(argv, log)
    yield url
    process.terminate()
    process.wait(timeout=30)


def test_the_endpoints_answer_gradio_client(served, collection, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(served, verbose=False, download_files=str(tmp_path))
    assert {f"/{name}" for name in API_NAMES} <= set(
        client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    )
    labels, timeline, windows = client.predict(handle_file(collection / "bikes.mp4"), api_name="/classify")
    assert labels["label"] in motion_labels() and len(labels["confidences"]) == 4
    assert sum(item["confidence"] for item in labels["confidences"]) == pytest.approx(1.0, abs=1e-4)
    assert Path(timeline).read_bytes()[:4] == b"\x89PNG" and len(windows["data"]) == 4
    description, video, frames = client.predict(
        handle_file(collection / "carphone_pristine.mp4"), "", "rollout", api_name="/explain"
    )
    assert description == "attention rollout" and Path(frames).read_bytes()[:4] == b"\x89PNG"
    with VideoReader(video) as reader:
        assert reader.metadata.total_num_frames == 4
    gallery, hits = client.predict(handle_file(collection / "bikes.mp4"), 2.5, 5, 3, api_name="/search")
    assert hits[0]["video"] == str(collection / "bikes.mp4") and (hits[0]["start"], hits[0]["end"]) == (
        2.5,
        5.0,
    )
    assert [item["caption"] for item in gallery][0].startswith("1.000 · bikes.mp4 · 2.5-5.0 s")
    # users at once: queued, one at a time on the model, each gets its own answer
    jobs = [
        client.submit(handle_file(collection / name), api_name="/classify")
        for name in ("bikes.mp4", "carphone_pristine.mp4", "right_1.mp4")
    ]
    answers = [job.result(timeout=120) for job in jobs]
    assert [len(windows["data"]) for _, _, windows in answers] == [4, 0, 0]
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(sample_video_path("bikes.mp4").read_bytes()[:300])  # a cut-off download
    with pytest.raises(AppError, match="broken.mp4 is not a video that can be read"):
        client.predict(handle_file(broken), api_name="/classify")


def chromium() -> str:
    """Debian's (or the `CHROMIUM` variable's) Chromium: the browser test drives it, nothing is downloaded."""
    found = os.environ.get("CHROMIUM") or next(
        (
            shutil.which(name)
            for name in ("chromium", "chromium-browser", "google-chrome")
            if shutil.which(name)
        ),
        None,
    )
    if found is None:
        pytest.fail(
            "The browser test needs Chromium: `apt-get install chromium` (Debian, Ubuntu), or set CHROMIUM to a "
            "Chrome or Chromium executable."
        )
    return found


def test_the_page_in_a_browser(served, collection, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    screenshot = Path(os.environ.get("APP_SCREENSHOT") or tmp_path / "app.png")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(served, wait_until="domcontentloaded")
            page.locator("#video-input input[type=file]").set_input_files(str(collection / "bikes.mp4"))
            page.wait_for_selector("#video-input video", timeout=60_000)
            page.click("#classify-button")
            any_label = re.compile("|".join(motion_labels()))
            expect(page.locator("#labels")).to_contain_text(any_label, timeout=60_000)
            page.get_by_role("tab", name="Explain").click()
            page.click("#explain-button")
            page.wait_for_selector("#explain-video video[src]", timeout=60_000)
            expect(page.get_by_label("Explained")).to_have_value(
                re.compile(f"^relevance for ({any_label.pattern})$")
            )
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    assert screenshot.stat().st_size > 10_000

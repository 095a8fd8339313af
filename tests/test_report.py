"""`cremad report`: the offline page of a run, its data files, and the page itself in Chromium."""

import json
import shutil
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
from results_fixtures import ACTORS, N_FRAMES, clip_rows, write_corpus, write_model

from cremad import CremadError, cli, runs
from cremad.features import n_frames
from cremad.plots import padding_share
from cremad.report import build_report

MODELS = (1, 3)  # one model with attention, one without
MISSING_WAV = "1002_IEO_SAD_XX"  # a test clip whose WAV the corpus lacks


def read_script(path: Path) -> dict:
    """The payload of a data script: `call({...});`."""
    text = path.read_text()
    return json.loads(text[text.index("(") + 1 : text.rindex(")")])


def write_run(root: Path) -> tuple[Path, Path]:
    """Models 1 and 3 on two actors (as `cremad loso` leaves them), model 1 with its own random
    attention curve per clip, and a corpus with every test clip's WAV but one."""
    clips = [clip for rows in clip_rows(1).values() for clip, _, _ in rows]
    corpus = write_corpus(root / "CREMA-D", [clip for clip in clips if clip != MISSING_WAV])
    for model_id in MODELS:
        run_dir = write_model(root / "runs", model_id, data_dir=corpus)
    rng = np.random.default_rng(0)
    run_dir = runs.run_dir(root / "runs", "cremad", "paper", "model1", 0)
    for actor in ACTORS:
        fold_clips = [clip for clip, _, _ in clip_rows(1)[actor]]
        weights = rng.dirichlet(np.ones(N_FRAMES), size=(len(fold_clips), 1))  # (clips, 1, frames)
        runs.write_attention(runs.fold_dir(run_dir, actor), fold_clips, weights)
    return root / "runs", corpus


def write_votes(meta: Path, clips: list[str]) -> dict[str, list[int]]:
    """CREMA-D's tabulatedVotes.csv with voice-only votes for `clips`; returns them."""
    meta.mkdir(parents=True)
    votes = {clip: [number % 3, 1, 0, 2, 0, 4] for number, clip in enumerate(clips)}
    lines = [",A,D,F,H,N,S,fileName,numResponses"]
    lines += [
        f"1{number:05d},{','.join(map(str, votes[clip]))},{clip},{sum(votes[clip])}"
        for number, clip in enumerate(clips)
    ]
    (meta / "tabulatedVotes.csv").write_text("\n".join(lines) + "\n")
    return votes


def tree(folder: Path) -> dict[str, float]:
    return {str(path): path.stat().st_mtime for path in folder.rglob("*")}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    runs_root, corpus = write_run(root)
    write_votes(root / "meta", ["1001_DFA_ANG_XX", MISSING_WAV])
    before = tree(root)
    page = build_report(runs_root, root / "out", data=corpus, meta=root / "meta")
    return root, runs_root, corpus, page, before


def test_the_page_and_its_data_are_written_under_out_only(built):
    root, _, _, page, before = built
    after = tree(root)
    assert {path for path in after if not path.startswith(str(root / "out"))} == set(before)
    assert all(after[path] == before[path] for path in before)
    out = root / "out"
    assert page == out / "index.html"
    for name in (
        "index.html",
        "report.js",
        "report.css",
        "data/index.js",
        "data/speaker-0.js",
        "data/speaker-1.js",
    ):
        assert (out / name).is_file(), name
    html = page.read_text() + (out / "report.js").read_text() + (out / "report.css").read_text()
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "") and "https://" not in html
    assert "fetch(" not in (out / "report.js").read_text()


def test_index_holds_every_clip_once_with_each_models_prediction(built):
    root, runs_root, _, _, _ = built
    index = read_script(root / "out" / "data" / "index.js")
    ids = index["clips"]["id"]
    assert len(ids) == len(set(ids)) == 24
    for view in index["views"]:
        predictions = runs.load_predictions(runs.run_dir(runs_root, "cremad", "paper", view["key"], 0))
        expected = dict(zip(predictions.clip_ids, predictions.predicted))
        assert [index["emotions"][k] for k in view["pred"]] == [expected[clip] for clip in ids]
    model1, model3 = index["views"]
    assert model1["attention"] and model1["padding"] is not None and model1["noAttention"] is None
    assert (
        not model3["attention"]
        and model3["padding"] is None
        and model3["noAttention"] == "no attention block"
    )


def test_padding_share_is_fig2s_measure_and_a_missing_wav_has_none(built):
    root, runs_root, _, _, _ = built
    index = read_script(root / "out" / "data" / "index.js")
    model1 = index["views"][0]
    run_dir = runs.run_dir(runs_root, "cremad", "paper", "model1", 0)
    own = n_frames(8000)  # the fixture's 0.5 s WAV, end padding as its run.json does not say start
    for position, clip in enumerate(index["clips"]["id"]):
        actor = index["speakers"][index["clips"]["speaker"][position]]
        if clip == MISSING_WAV:
            assert model1["pad"][position] is None and index["clips"]["duration"][position] is None
            continue
        weights = runs.read_attention(run_dir, actor, clip)
        assert model1["pad"][position] == pytest.approx(padding_share(weights, own, "end"), abs=1e-4)
        assert index["clips"]["frames"][position] == own


def test_crowd_votes_come_with_their_clips(built):
    root, _, _, _, _ = built
    assert read_script(root / "out" / "data" / "index.js")["crowd"]
    speaker = read_script(root / "out" / "data" / "speaker-0.js")["clips"]
    assert speaker["1001_DFA_ANG_XX"]["votes"] == [0, 1, 0, 2, 0, 4]
    assert speaker["1001_DFA_DIS_XX"]["votes"] is None


def test_unfinished_folds_and_archived_runs_are_said(tmp_path, caplog):
    runs_root, corpus = write_run(tmp_path)
    run_dir = runs.run_dir(runs_root, "cremad", "paper", "model1", 0)
    (runs.fold_dir(run_dir, "1002") / runs.DONE).unlink()
    for actor in ACTORS:
        (runs.fold_dir(run_dir, actor) / runs.ATTENTION).unlink()
    build_report(runs_root, tmp_path / "out", data=corpus)
    index = read_script(tmp_path / "out" / "data" / "index.js")
    assert any("1002" in note and "unfinished" in note for note in index["notes"])
    assert "fold(s) without done.json" in caplog.text  # logged as `cremad figures` logs it
    assert index["views"][0]["noAttention"].startswith("no attention.npz")
    assert len(index["clips"]["id"]) == 24  # model 3 still has both folds


def test_several_seeds_give_a_row_per_seed_and_their_ensemble(tmp_path):
    runs_root, corpus = write_run(tmp_path)
    write_model(tmp_path / "runs", 1, data_dir=corpus, seed=1)
    build_report(runs_root, tmp_path / "out", data=corpus, models=["model1"])
    index = read_script(tmp_path / "out" / "data" / "index.js")
    keys = [view["key"] for view in index["views"]]
    assert keys == ["model1/seed0", "model1/seed1", "model1-ensemble"]
    assert index["views"][1]["padding"] is not None  # the fixture's own curves in seed 1
    assert index["views"][2]["noAttention"] == "no attention weights: a combined result"
    speaker = read_script(tmp_path / "out" / "data" / "speaker-0.js")
    assert set(speaker["clips"]["1001_DFA_ANG_XX"]["probs"]) == set(keys)


def test_out_must_be_a_folder(built, tmp_path):
    _, runs_root, corpus, _, _ = built
    (tmp_path / "page").write_text("")
    with pytest.raises(CremadError, match="--out"):
        build_report(runs_root, tmp_path / "page", data=corpus)


def test_cli_writes_the_page(built, tmp_path):
    _, runs_root, corpus, _, _ = built
    code = cli.main(
        ["report", "--runs", str(runs_root), "--data", str(corpus), "--models", "1", "--out", str(tmp_path)]
    )
    assert code == 0
    index = read_script(tmp_path / "data" / "index.js")
    assert [view["key"] for view in index["views"]] == ["model1"]


# --- the page in a real browser ---------------------------------------------------------------


def chromium_driver():
    """Selenium driving Debian's chromium through its chromedriver; skipped without them."""
    webdriver = pytest.importorskip("selenium.webdriver")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not browser or not driver_path:
        pytest.skip("chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    # An explicit driver path: Selenium Manager never downloads a browser or a driver.
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))


def wait_rendered(driver, hash_: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 20).until(
        lambda d: d.execute_script("return document.body.dataset.rendered") == hash_
    )


def requested_urls(driver) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


@pytest.fixture(scope="module")
def browser():
    driver = chromium_driver()
    yield driver
    driver.quit()


def check_cell_and_curve(driver, page: Path, run_dir: Path, true: str, predicted: str) -> None:
    """Follow the link of one confusion cell of model 1: the listed clips are exactly those of
    predictions.csv in that cell, and the first one's drawn attention is attention.npz's, value
    for value."""
    driver.get(page.as_uri())
    wait_rendered(driver, "#")
    predictions = runs.load_predictions(run_dir)
    expected = set(predictions.clip_ids[(predictions.true == true) & (predictions.predicted == predicted)])
    assert expected, "pick a cell with clips"
    cell = f'table[data-view="model1"] a[href="#model=1&true={true}&pred={predicted}"]'
    driver.find_element("css selector", cell).click()
    wait_rendered(driver, f"#model=1&true={true}&pred={predicted}")
    listed = [
        card.get_attribute("data-clip")
        for card in driver.find_elements("css selector", "#clips article.clip")
    ]
    assert sorted(listed) == sorted(expected)

    clip = sorted(expected)[0]
    curve = f"article[data-clip='{clip}'] polyline[data-view='model1']"
    drawn = driver.execute_script("return document.querySelector(arguments[0]).weights", curve)
    actor = predictions.actors[list(predictions.clip_ids).index(clip)]
    weights = runs.read_attention(run_dir, actor, clip)[0]
    np.testing.assert_array_equal(np.asarray(drawn, dtype=np.float32), weights.astype(np.float32))


def check_offline(driver) -> None:
    """Every request the page made was for a local file."""
    urls = requested_urls(driver)
    assert urls and all(url.startswith(("file:", "data:", "about:", "chrome:")) for url in urls), urls


def test_the_page_in_chromium(built, browser):
    root, runs_root, corpus, page, _ = built
    browser.get(page.as_uri())
    wait_rendered(browser, "#")
    assert len(browser.find_elements("css selector", "#clips article.clip")) == 24
    # The audio is the corpus's own WAV, linked from the page's folder.
    source = browser.find_element("css selector", "article[data-clip='1001_DFA_ANG_XX'] audio").get_property(
        "src"
    )
    assert (
        Path(urllib.parse.unquote(urllib.parse.urlparse(source).path))
        == corpus / "AudioWAV" / "1001_DFA_ANG_XX.wav"
    )
    crowd = browser.find_element("css selector", "article[data-clip='1001_DFA_ANG_XX'] tr.crowd").text
    assert crowd.split()[-6:] == ["0.00", "0.14", "0.00", "0.29", "0.00", "0.57"]  # votes 0 1 0 2 0 4 of 7
    check_cell_and_curve(browser, page, runs.run_dir(runs_root, "cremad", "paper", "model1", 0), "ANG", "DIS")

    # A model without attention and a clip without its WAV say so.
    browser.get(page.as_uri() + "#true=SAD&speaker=1002")
    wait_rendered(browser, "#true=SAD&speaker=1002")
    card = browser.find_element("css selector", f"article[data-clip='{MISSING_WAV}']")
    assert "No WAV for this clip" in card.find_element("css selector", ".missing").text
    assert "no attention block" in card.find_element("css selector", ".note[data-view='model3']").text
    assert not card.find_elements("css selector", "polyline[data-view='model3']")

    # Models disagreeing, and sorting by the share of attention on padding.
    index = read_script(root / "out" / "data" / "index.js")
    model1, model3 = index["views"]
    disagree = {clip for clip, a, b in zip(index["clips"]["id"], model1["pred"], model3["pred"]) if a != b}
    assert set(listed_clips(browser, "#disagree=1")) == disagree
    shares = dict(zip(index["clips"]["id"], model1["pad"]))
    ordered = [shares[clip] for clip in listed_clips(browser, "#model=1&sort=padding&order=desc")]
    known = [share for share in ordered if share is not None]
    assert known == sorted(known, reverse=True) and ordered[len(known) :] == [None] * (
        len(ordered) - len(known)
    )
    assert MISSING_WAV in listed_clips(browser, f"#size=5&clip={MISSING_WAV}")  # the page that holds it
    check_offline(browser)


def listed_clips(driver, fragment: str) -> list[str]:
    """The clip ids the page lists, in order, at `fragment`."""
    driver.execute_script("location.hash = arguments[0]", fragment)
    wait_rendered(driver, fragment)
    return [
        card.get_attribute("data-clip")
        for card in driver.find_elements("css selector", "#clips article.clip")
    ]


@pytest.mark.slow
def test_a_trained_demo_run_in_chromium(tmp_path, tiny_corpus, browser):
    """Models 1 and 3 trained for one epoch on the held-out actor 1001 of the tiny demo corpus."""
    for model_id in MODELS:
        argv = [
            "loso",
            "--model",
            str(model_id),
            "--data",
            str(tiny_corpus),
            "--runs",
            str(tmp_path / "runs"),
        ]
        argv += ["--cache-dir", str(tmp_path / "cache"), "--experiment", "demo", "--epochs", "1"]
        assert cli.main([*argv, "--folds", "1001", "--no-save-models"]) == 0
    page = build_report(tmp_path / "runs", tmp_path / "out", data=tiny_corpus)
    run_dir = runs.run_dir(tmp_path / "runs", "cremad", "demo", "model1", 0)
    predictions = runs.load_predictions(run_dir)
    true, predicted = next(
        (t, p)
        for t, p in sorted(zip(predictions.true, predictions.predicted), key=lambda pair: pair[0] == pair[1])
    )
    check_cell_and_curve(browser, page, run_dir, true, predicted)
    index = read_script(tmp_path / "out" / "data" / "index.js")
    assert index["views"][1]["noAttention"] == "no attention block"
    check_offline(browser)

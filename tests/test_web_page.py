"""The web page at `/` in a real headless Chromium (Debian's `chromium` + `chromium-driver`),
against a real `deepspeech serve` process: file upload, server errors, a narrow screen, the
microphone (Chromium's fake capture device), and the words of a transcript: their timings and
confidence, playing the audio from a clicked word, and the SRT download."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from random_models import random_model
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from servers import ServerProcess, clean_server

from deepspeech.data.manifest import read_manifest

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
FAKE_MICROPHONE_FLAGS = ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream")
DESKTOP = (1100, 900)
PHONE_WIDTH = 375
WAIT_SECONDS = 60
RECORD_SECONDS = 1.5
DOWNLOADS = "downloads"  # under the test's tmp_path: where Chromium saves downloads
SEEK_TOLERANCE_SECONDS = 0.05
SPACE_LOGIT_BOOST = 1.0  # e: spaces win some frames, not all (2 makes every transcript " ")

DriverFactory = Callable[..., WebDriver]


@pytest.fixture(scope="module")
def random_words_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """conftest's `random_onnx` with its space logit raised by SPACE_LOGIT_BOOST: random
    weights never win the argmax with a space, and the page's words need more than one word."""
    import onnx

    from deepspeech.audio import FeatureConfig
    from deepspeech.export.convert import convert_to_onnx, write_metadata
    from deepspeech.model.config import ModelConfig
    from deepspeech.runtime.graph import ModelMetadata
    from deepspeech.text import Alphabet

    alphabet = Alphabet.default()
    model = random_model(ModelConfig(alphabet.num_classes, n_hidden=32), seed=5)
    bias = model.h6.bias.numpy()
    bias[alphabet.label_of(" ")] += SPACE_LOGIT_BOOST
    model.h6.bias.assign(bias)
    proto, _ = convert_to_onnx(model)
    metadata = ModelMetadata(
        alphabet, FeatureConfig(stride=2), n_hidden=32, model_name="random-words", model_version="0"
    )
    write_metadata(proto, metadata)
    path = tmp_path_factory.mktemp("random-words-onnx") / "random-words.onnx"
    onnx.save(proto, path)
    return path


@pytest.fixture(scope="module")
def server(random_words_onnx: Path) -> Iterator[ServerProcess]:
    with clean_server(random_words_onnx) as process:
        yield process


@pytest.fixture(scope="module")
def held_out_wav(tiny_corpus: Path) -> Path:
    return read_manifest(tiny_corpus / "test.csv")[0].wav_path


@pytest.fixture(scope="module")
def words_wav(server: ServerProcess, tiny_corpus: Path) -> Path:
    """A held-out WAV the server's model hears as two words or more (one to click after)."""
    for utterance in read_manifest(tiny_corpus / "test.csv"):
        if len(api_transcribe(server, utterance.wav_path).json()["text"].split()) >= 2:
            return utterance.wav_path
    raise AssertionError("no held-out WAV is heard as two words; raise SPACE_LOGIT_BOOST")


@pytest.fixture(scope="module")
def stream_server(random_stream_onnx) -> Iterator[ServerProcess]:
    utterance_onnx, stream_onnx = random_stream_onnx
    with clean_server(utterance_onnx, "--device", "cpu", "--stream-model", str(stream_onnx)) as s:
        yield s


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[DriverFactory]:
    """Start headless Chromium with `browser(*extra_flags)`; every one started is quit.

    Downloads go to `tmp_path / DOWNLOADS` without asking."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found: install Debian's browser and driver with "
            "`sudo apt-get install chromium chromium-driver` (or run `make browser` as root)",
            pytrace=False,
        )
    drivers: list[WebDriver] = []

    def start(*extra_flags: str) -> WebDriver:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        profile = tmp_path / f"profile-{len(drivers)}"
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra_flags):
            options.add_argument(flag)
        options.add_experimental_option(
            "prefs",
            {
                "download.default_directory": str(tmp_path / DOWNLOADS),
                "download.prompt_for_download": False,
            },
        )
        # An explicit driver path: selenium-manager never tries to download one.
        driver = webdriver.Chrome(
            service=Service(executable_path=str(CHROMEDRIVER)), options=options
        )
        drivers.append(driver)
        driver.set_window_size(*DESKTOP)
        return driver

    yield start
    for driver in drivers:
        driver.quit()


def open_page(driver: WebDriver, server: ServerProcess) -> None:
    driver.get(server.url + "/")
    WebDriverWait(driver, WAIT_SECONDS).until(
        lambda d: d.find_element(By.ID, "model").text.startswith("Model ")
    )


def wait_for_state(driver: WebDriver, *states: str) -> str:
    """Wait until the result section leaves idle/busy; return the state it reached."""
    WebDriverWait(driver, WAIT_SECONDS).until(
        lambda d: d.find_element(By.ID, "output").get_attribute("data-state") in states
    )
    return driver.find_element(By.ID, "output").get_attribute("data-state")


def upload(driver: WebDriver, path: Path) -> str:
    driver.execute_script("document.getElementById('output').dataset.state = 'idle'")
    driver.find_element(By.ID, "file").send_keys(str(path))
    return wait_for_state(driver, "done", "error")


def api_transcribe(server: ServerProcess, path: Path, **params: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/transcribe",
        params=params,
        content=path.read_bytes(),
        headers={"Content-Type": "audio/wav"},
        timeout=WAIT_SECONDS,
    )


@dataclass(frozen=True)
class ShownWord:
    """One word element of a transcript on the page, its data attributes as numbers."""

    word: str
    start: float
    end: float
    confidence: float
    marked_low: bool  # has the class low-confidence
    title: str


def shown_words(driver: WebDriver, container_id: str) -> list[ShownWord]:
    """The word elements of a transcript, waiting until there are some."""
    WebDriverWait(driver, WAIT_SECONDS).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, f"#{container_id} .word")
    )
    rows = driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map((w) => [w.textContent, "
        "w.dataset.start, w.dataset.end, w.dataset.confidence, "
        "w.classList.contains('low-confidence'), w.title, w.tabIndex, w.tagName]);",
        f"#{container_id} .word",
    )
    words = []
    for text, start, end, confidence, low, title, tab_index, tag in rows:
        assert tab_index == 0, f"{text!r} is not focusable (tabindex {tab_index}, <{tag}>)"
        words.append(ShownWord(text, float(start), float(end), float(confidence), low, title))
    return words


def audio_state(driver: WebDriver, audio_id: str) -> dict:
    return driver.execute_script(
        "const a = document.getElementById(arguments[0]); return {time: a.currentTime, "
        "paused: a.paused, played: a.played.length, duration: a.duration, src: a.src};",
        audio_id,
    )


def wait_for_audio_metadata(driver: WebDriver, audio_id: str) -> float:
    """The duration of what an <audio> element holds, once it has read the header."""
    WebDriverWait(driver, WAIT_SECONDS).until(
        lambda d: d.execute_script(
            "return document.getElementById(arguments[0]).readyState >= 1", audio_id
        )
    )
    return audio_state(driver, audio_id)["duration"]


def seconds_shown(driver: WebDriver) -> float:
    text = driver.find_element(By.ID, "duration").text
    match = re.fullmatch(r"(\d+\.\d+) s", text)
    assert match, f"duration shown as {text!r}"
    return float(match.group(1))


def test_upload_shows_the_api_transcript(
    browser: DriverFactory, server: ServerProcess, held_out_wav: Path, tmp_path: Path
) -> None:
    driver = browser()
    open_page(driver, server)
    info = httpx.get(f"{server.url}/v1/model").json()
    model_line = driver.find_element(By.ID, "model").text
    assert info["name"] in model_line and info["version"] in model_line, model_line

    # The drop zone is a real button: Enter opens the file picker (input.click()).
    driver.execute_script(
        "window.pickerOpened = 0;"
        "document.getElementById('file').click = () => { window.pickerOpened += 1; };"
    )
    zone = driver.find_element(By.ID, "drop-zone")
    assert zone.tag_name == "button"
    zone.send_keys(Keys.ENTER)
    zone.send_keys(Keys.SPACE)
    assert driver.execute_script("return window.pickerOpened") == 2

    assert upload(driver, held_out_wav) == "done", driver.find_element(By.ID, "error").text
    answer = api_transcribe(server, held_out_wav).json()
    assert driver.find_element(By.ID, "transcript").text == answer["text"].strip()
    assert seconds_shown(driver) == pytest.approx(answer["duration_s"], abs=0.01)
    assert driver.find_element(By.ID, "inference-ms").text.endswith(" ms")
    assert driver.find_element(By.ID, "result-model").text == answer["model"]
    assert not driver.find_element(By.ID, "error").is_displayed()
    driver.save_screenshot(str(tmp_path / "desktop-result.png"))


def test_bad_file_shows_the_server_detail(
    browser: DriverFactory, server: ServerProcess, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(bytes(range(256)) * 8)
    refused = api_transcribe(server, bad)
    assert refused.status_code == 400
    detail = refused.json()["detail"]

    driver = browser()
    open_page(driver, server)
    assert upload(driver, bad) == "error"
    error = driver.find_element(By.ID, "error")
    assert error.is_displayed() and detail in error.text, error.text
    assert not driver.find_element(By.ID, "result").is_displayed()
    driver.save_screenshot(str(tmp_path / "desktop-error.png"))


def test_narrow_screen_has_no_horizontal_scroll(
    browser: DriverFactory, server: ServerProcess, held_out_wav: Path, tmp_path: Path
) -> None:
    driver = browser()
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": PHONE_WIDTH, "height": 812, "deviceScaleFactor": 1, "mobile": True},
    )
    open_page(driver, server)
    assert upload(driver, held_out_wav) == "done"
    inner_width, scroll_width = driver.execute_script(
        "return [window.innerWidth, document.scrollingElement.scrollWidth]"
    )
    assert inner_width == PHONE_WIDTH
    assert scroll_width <= inner_width, f"page is {scroll_width} px wide at {inner_width} px"
    driver.save_screenshot(str(tmp_path / "phone-result.png"))


def test_microphone_recording_is_transcribed(
    browser: DriverFactory, server: ServerProcess, tmp_path: Path
) -> None:
    driver = browser(*FAKE_MICROPHONE_FLAGS)
    open_page(driver, server)
    driver.find_element(By.ID, "record").click()
    WebDriverWait(driver, WAIT_SECONDS).until(
        lambda d: d.find_element(By.ID, "recording").is_displayed()
    )
    assert driver.find_element(By.ID, "stop").is_enabled()
    time.sleep(RECORD_SECONDS)
    driver.save_screenshot(str(tmp_path / "recording.png"))
    driver.find_element(By.ID, "stop").click()
    assert wait_for_state(driver, "done", "error") == "done", driver.find_element(
        By.ID, "error"
    ).text
    assert not driver.find_element(By.ID, "recording").is_displayed()
    # At least the time waited: a loaded machine may take longer between the two clicks, so
    # an upper bound would be a wall-clock bound.
    assert seconds_shown(driver) >= RECORD_SECONDS - 0.25
    assert driver.find_element(By.ID, "record").is_enabled()
    # The recording that was sent is the one the words play (a WAV made in the page).
    assert wait_for_audio_metadata(driver, "playback") == pytest.approx(
        seconds_shown(driver), abs=0.01
    )
    driver.save_screenshot(str(tmp_path / "recording-result.png"))


def test_words_show_their_timing_and_confidence_and_play_from_a_click(
    browser: DriverFactory, server: ServerProcess, words_wav: Path, tmp_path: Path
) -> None:
    driver = browser()
    open_page(driver, server)
    assert upload(driver, words_wav) == "done", driver.find_element(By.ID, "error").text
    words = shown_words(driver, "transcript")
    answer = api_transcribe(server, words_wav, words="true").json()
    assert [(w.word, w.start, w.end, w.confidence) for w in words] == [
        (w["word"], w["start"], w["end"], w["confidence"]) for w in answer["words"]
    ]
    starts = [w.start for w in words]
    assert starts == sorted(starts)
    assert all(f"{w.start:.2f}–{w.end:.2f} s" in w.title for w in words), words[0].title

    threshold = driver.execute_script("return LOW_CONFIDENCE")
    assert 0 < threshold < 1
    assert [w.marked_low for w in words] == [w.confidence < threshold for w in words]
    assert any(w.marked_low for w in words), "random weights should leave some words unsure"
    legend = driver.find_element(By.ID, "legend")
    assert legend.is_displayed() and f"below {100 * threshold:.0f} %" in legend.text, legend.text

    # The player holds the uploaded file; a click on a word plays it from the word's start.
    assert wait_for_audio_metadata(driver, "playback") == pytest.approx(
        answer["duration_s"], abs=0.01
    )
    second = driver.find_elements(By.CSS_SELECTOR, "#transcript .word")[1]
    second.click()  # a user gesture: headless Chromium lets it start playback
    WebDriverWait(driver, WAIT_SECONDS).until(lambda d: audio_state(d, "playback")["played"])
    assert audio_state(driver, "playback")["time"] >= words[1].start - SEEK_TOLERANCE_SECONDS
    driver.save_screenshot(str(tmp_path / "words-playing.png"))

    # The keyboard does the same: Enter on a focused word.
    driver.execute_script("document.getElementById('playback').pause()")
    driver.find_elements(By.CSS_SELECTOR, "#transcript .word")[0].send_keys(Keys.ENTER)
    playing_from = audio_state(driver, "playback")["time"]
    assert words[0].start - SEEK_TOLERANCE_SECONDS <= playing_from < words[0].start + 0.5


def test_download_srt_saves_the_servers_subtitles(
    browser: DriverFactory, server: ServerProcess, words_wav: Path, tmp_path: Path
) -> None:
    driver = browser()
    open_page(driver, server)
    button = driver.find_element(By.ID, "download-srt")
    assert button.tag_name == "button" and not button.is_displayed()  # no transcript yet
    assert upload(driver, words_wav) == "done", driver.find_element(By.ID, "error").text
    assert button.is_displayed()
    button.click()
    saved = tmp_path / DOWNLOADS / f"{words_wav.stem}.srt"
    WebDriverWait(driver, WAIT_SECONDS).until(lambda d: saved.exists())
    subtitles = saved.read_bytes()
    assert subtitles.startswith(b"1\n"), subtitles[:200]
    assert subtitles == api_transcribe(server, words_wav, format="srt").content
    assert not driver.find_element(By.ID, "error").is_displayed()


def test_live_final_words_play_the_audio_that_was_streamed(
    browser: DriverFactory, stream_server: ServerProcess, held_out_wav: Path, tmp_path: Path
) -> None:
    driver = browser(*FAKE_MICROPHONE_FLAGS, f"--use-file-for-fake-audio-capture={held_out_wav}")
    open_page(driver, stream_server)
    driver.find_element(By.ID, "live-start").click()
    WebDriverWait(driver, WAIT_SECONDS).until(
        lambda d: d.find_element(By.ID, "live").get_attribute("data-state") != "connecting"
    )
    time.sleep(RECORD_SECONDS)
    driver.find_element(By.ID, "live-stop").click()
    WebDriverWait(driver, WAIT_SECONDS).until(
        lambda d: d.find_element(By.ID, "live").get_attribute("data-state") in ("done", "error")
    )
    status = driver.find_element(By.ID, "live-status").text
    match = re.fullmatch(r"Final text, (\d+\.\d+) s of audio\.", status)
    assert match, f"{status!r}: {driver.find_element(By.ID, 'live-error').text}"

    words = shown_words(driver, "live-text")
    starts = [w.start for w in words]
    assert starts == sorted(starts)
    threshold = driver.execute_script("return LOW_CONFIDENCE")
    assert [w.marked_low for w in words] == [w.confidence < threshold for w in words]
    assert driver.find_element(By.ID, "live-legend").is_displayed()
    # The page kept the PCM it streamed and made a WAV of it: as long as what the server heard.
    assert wait_for_audio_metadata(driver, "live-audio") == pytest.approx(
        float(match.group(1)), abs=0.01
    )
    driver.find_elements(By.CSS_SELECTOR, "#live-text .word")[-1].click()
    WebDriverWait(driver, WAIT_SECONDS).until(lambda d: audio_state(d, "live-audio")["played"])
    assert audio_state(driver, "live-audio")["time"] >= words[-1].start - SEEK_TOLERANCE_SECONDS
    driver.save_screenshot(str(tmp_path / "live-words.png"))

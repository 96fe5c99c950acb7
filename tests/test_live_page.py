"""The web page's live transcription (serving/static/live.js, pcm16-worklet.js) in a real headless
Chromium whose microphone plays a WAV (fake capture), against a real `deepspeech serve
--stream-model`: partial text while the audio plays, the final text after Stop."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from servers import ServerProcess, clean_server
from test_web_page import FAKE_MICROPHONE_FLAGS, WAIT_SECONDS, browser, open_page

from deepspeech.data.manifest import read_manifest

pytestmark = pytest.mark.slow

__all__ = ["browser"]  # the fixture, imported for the tests below

LISTEN_SECONDS = 2.0


@pytest.fixture(scope="module")
def stream_server(random_stream_onnx) -> Iterator[ServerProcess]:
    utterance_onnx, stream_onnx = random_stream_onnx
    with clean_server(utterance_onnx, "--device", "cpu", "--stream-model", str(stream_onnx)) as s:
        yield s


@pytest.fixture(scope="module")
def speech_wav(tiny_corpus: Path) -> Path:
    return read_manifest(tiny_corpus / "test.csv")[0].wav_path


def live_state(driver: WebDriver) -> str:
    return driver.find_element(By.ID, "live").get_attribute("data-state")


def wait_for_live(driver: WebDriver, *states: str) -> str:
    WebDriverWait(driver, WAIT_SECONDS).until(lambda d: live_state(d) in states)
    return live_state(driver)


def test_live_microphone_shows_partials_then_the_final_text(
    browser, stream_server: ServerProcess, speech_wav: Path, tmp_path: Path
) -> None:
    driver = browser(*FAKE_MICROPHONE_FLAGS, f"--use-file-for-fake-audio-capture={speech_wav}")
    open_page(driver, stream_server)
    text = driver.find_element(By.ID, "live-text")
    assert not text.is_displayed()  # nothing shown before anything is heard
    driver.find_element(By.ID, "live-start").click()
    assert wait_for_live(driver, "streaming", "error") == "streaming", driver.find_element(
        By.ID, "live-error"
    ).text
    WebDriverWait(driver, WAIT_SECONDS).until(lambda d: text.text != "")
    partial = text.text
    assert live_state(driver) == "streaming" and text.get_attribute("data-final") == "false"
    time.sleep(LISTEN_SECONDS)  # let more audio stream, as a speaker would
    driver.save_screenshot(str(tmp_path / "live-partial.png"))
    driver.find_element(By.ID, "live-stop").click()
    assert wait_for_live(driver, "done", "error") == "done", driver.find_element(
        By.ID, "live-error"
    ).text
    final = text.text
    assert text.get_attribute("data-final") == "true"
    assert final.startswith(partial) and len(final) > len(partial)
    assert "s of audio" in driver.find_element(By.ID, "live-status").text
    assert driver.find_element(By.ID, "live-start").is_enabled()
    with urllib.request.urlopen(f"{stream_server.url}/metrics") as response:
        assert 'deepspeech_streams_total{outcome="final"} 1.0' in response.read().decode()
    driver.save_screenshot(str(tmp_path / "live-final.png"))


def test_live_without_a_streaming_model_shows_the_server_detail(
    browser, random_onnx: Path, speech_wav: Path
) -> None:
    with clean_server(random_onnx, "--device", "cpu") as server:
        driver = browser(*FAKE_MICROPHONE_FLAGS, f"--use-file-for-fake-audio-capture={speech_wav}")
        open_page(driver, server)
        driver.find_element(By.ID, "live-start").click()
        assert wait_for_live(driver, "done", "error") == "error"
        error = driver.find_element(By.ID, "live-error")
        assert error.is_displayed() and "--stream-model" in error.text, error.text
        assert driver.find_element(By.ID, "live-start").is_enabled()
        driver.quit()

"""The web page at `/` in a real headless Chromium (Debian's `chromium` + `chromium-driver`),
against a real `deepspeech serve` process: file upload, server errors, a narrow screen and
the microphone (Chromium's fake capture device)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
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

DriverFactory = Callable[..., WebDriver]


@pytest.fixture(scope="module")
def server(random_onnx: Path) -> Iterator[ServerProcess]:
    with clean_server(random_onnx) as process:
        yield process


@pytest.fixture(scope="module")
def held_out_wav(tiny_corpus: Path) -> Path:
    return read_manifest(tiny_corpus / "test.csv")[0].wav_path


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[DriverFactory]:
    """Start headless Chromium with `browser(*extra_flags)`; every one started is quit."""
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


def api_transcribe(server: ServerProcess, path: Path) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/transcribe",
        content=path.read_bytes(),
        headers={"Content-Type": "audio/wav"},
        timeout=WAIT_SECONDS,
    )


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
    driver.save_screenshot(str(tmp_path / "recording-result.png"))

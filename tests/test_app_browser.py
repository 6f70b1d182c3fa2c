"""The web app in a real browser: headless Chromium (Debian's `chromium` and `chromium-driver`) driven by Selenium
uploads the demo video, waits for the result, checks the overlay video and the table of instances, and uploads a
file that is not a video. Chromium resolves no host but 127.0.0.1, so the page needs no remote asset.

A screenshot of the result goes to the test's folder, and also to `$M2F_VIDEO_APP_SCREENSHOT` when that is set
(`M2F_VIDEO_APP_SCREENSHOT=docs/app_screenshot.png pytest tests/test_app_browser.py` makes the README's picture).
"""

import os
import shutil
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait
from test_app import GRADIO_PANDAS_WARNINGS, demo_object_labels, not_a_video, running_app

from modeling_m2f_video.app import local
from modeling_m2f_video.app.defaults import DEFAULT_MAX_FRAMES

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
pytestmark = [
    pytest.mark.skipif(
        not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()),
        reason="needs Chromium and its driver (Debian: apt-get install chromium chromium-driver)",
    ),
    *GRADIO_PANDAS_WARNINGS,
]

RESULT_TIMEOUT = 120  # seconds for the first run: the model is loaded then (a few seconds on a free CPU)
SCREENSHOT_VARIABLE = "M2F_VIDEO_APP_SCREENSHOT"
OVERLAY_DURATION = "const video = document.querySelector('#overlay-video video'); return video ? video.duration : 0;"


@pytest.fixture(scope="module")
def app_url():
    with running_app(max_frames=DEFAULT_MAX_FRAMES) as url:  # as `m2f-video app` starts it, for the screenshot
        yield url


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1500",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # no remote host: the page must not need one
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()


def upload_and_run(browser, url: str, video: Path) -> str:
    """Open the page, upload `video`, press the run button and return the status line once the run is over."""
    browser.get(url)
    wait = WebDriverWait(browser, 30)
    wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "#input-video input[type=file]")))
    browser.find_element(By.CSS_SELECTOR, "#input-video input[type=file]").send_keys(str(video))
    wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "#input-video video")))
    browser.find_element(By.ID, "run-button").click()
    status = browser.find_element(By.ID, "status")
    WebDriverWait(browser, RESULT_TIMEOUT).until(lambda _: "instance" in status.text or "Error" in status.text)
    return status.text


def save_screenshot(browser, tmp_path: Path) -> None:
    browser.save_screenshot(str(tmp_path / "app.png"))
    if os.environ.get(SCREENSHOT_VARIABLE):
        browser.save_screenshot(os.environ[SCREENSHOT_VARIABLE])


def test_the_page_segments_the_demo_video(app_url, browser, tmp_path):
    video = local.write_example_video(tmp_path)
    status = upload_and_run(browser, app_url, video)
    assert status.startswith("demo_video.mp4:") and "instances in 24 frames" in status, status
    WebDriverWait(browser, 30).until(lambda driver: (driver.execute_script(OVERLAY_DURATION) or 0) > 0)
    table = browser.find_element(By.ID, "instances").text
    assert all(label in table for label in demo_object_labels()), table
    assert browser.find_elements(By.CSS_SELECTOR, "#contact-sheet img")
    links = [link.get_attribute("href") for link in browser.find_elements(By.CSS_SELECTOR, "#downloads a")]
    assert {"results.json", "demo_video_overlay.mp4"} <= {link.rpartition("/")[2] for link in links if link}, links
    save_screenshot(browser, tmp_path)


def test_a_bad_upload_is_a_message_in_the_page(app_url, browser, tmp_path):
    status = upload_and_run(browser, app_url, not_a_video(tmp_path))
    assert status.startswith("Error: not_a_video.mp4: not a readable video file"), status
    assert "Traceback" not in browser.find_element(By.TAG_NAME, "body").text

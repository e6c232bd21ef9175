"""The HTML report in headless Chromium: no console errors, the quiz works, `<script>` is text.

Needs the Debian packages `chromium` and `chromium-driver` and the pip package `selenium`;
skips with the reason when they are absent.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from clfbench.report import build_report

CHROMIUM = Path("/usr/bin/chromium")
DRIVER = Path("/usr/bin/chromedriver")


@pytest.fixture
def browser():
    if not CHROMIUM.exists() or not DRIVER.exists():
        pytest.skip("headless browser test needs /usr/bin/chromium and /usr/bin/chromedriver "
                    "(apt-get install -y chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="pip install selenium")
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="clfbench-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1400,1000"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=opts)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_report_in_headless_chromium(synthetic_dir, tmp_path, browser):
    from selenium.webdriver.common.by import By

    root, data = synthetic_dir
    out = build_report(root, tmp_path / "rep", n_boot=100)
    browser.get(out.html.as_uri())
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    # The injected <script> never ran, and it shows as text.
    assert browser.execute_script("return window.__pwned === undefined")
    quiz_text = browser.find_element(By.ID, "quiz-text").text
    assert quiz_text.startswith("<script>window.__pwned = 1</script>")  # hardest example comes first
    cells = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "td.text")]
    assert any(c.startswith("<script>window.__pwned") for c in cells)
    # The quiz: the result is hidden until an answer is clicked, then shows gold, models, score.
    result = browser.find_element(By.ID, "quiz-result")
    assert not result.is_displayed()
    options = browser.find_elements(By.CSS_SELECTOR, "#quiz-options button")
    assert [b.text for b in options] == data["labels"]
    gold = data["labels"][data["gold"][0]]
    next(b for b in options if b.text == gold).click()
    assert result.is_displayed()
    assert "Right!" in result.text and f"Gold label: {gold}" in result.text
    for model in ("encoder-ft/tiny", "tfidf-lr", "llm-api/gpt-4o"):
        assert model in result.text
    assert browser.find_element(By.ID, "quiz-score").text.startswith("You: 1/1")
    assert all(not b.is_enabled() for b in browser.find_elements(By.CSS_SELECTOR, "#quiz-options button"))
    browser.find_element(By.ID, "quiz-next").click()
    assert not browser.find_element(By.ID, "quiz-result").is_displayed()
    assert browser.find_element(By.ID, "quiz-progress").text.startswith("Example 2 of")
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []

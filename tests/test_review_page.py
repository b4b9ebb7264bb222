"""The review page in real headless Chromium against `moodcam review` on 127.0.0.1.

A reviewer accepts, relabels with the keyboard, marks a non-face, undoes, bulk-labels, filters,
sorts, reloads and finds everything kept, in the page and in the store; then exports.
A screenshot goes to artifacts/review.png.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from edge.contracts.labels import LABELS
from tests.review_support import ARTIFACTS, REPO, chromium, chromium_available, fill_store, review_server

pytestmark = [pytest.mark.slow,  # Chromium
              pytest.mark.skipif(not chromium_available(), reason="chromium-driver is not installed (apt install chromium-driver)")]

N = 21


def predicted(face_id: int) -> str:
    return LABELS[(face_id - 1) % len(LABELS)]  # as fill_store logs them


@pytest.fixture()
def state_dir(tmp_path):
    d = tmp_path / "state"
    assert fill_store(d, N) == list(range(1, N + 1))
    return d


class Page:
    """Small helpers over the Selenium driver, named after what a reviewer does."""

    def __init__(self, driver, base):
        from selenium.webdriver.support.ui import WebDriverWait

        self.d, self.base = driver, base
        self.wait = WebDriverWait(driver, 60)

    def open(self, hash_=""):
        self.d.get(self.base + "/" + hash_)
        self.wait.until(lambda d: d.execute_script("return document.querySelector('#progress-text').textContent.startsWith('Reviewed')"))

    def keys(self, *keys):
        from selenium.webdriver.common.action_chains import ActionChains

        ActionChains(self.d).send_keys(*keys).perform()

    def shift_keys(self, key, times=1):
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.keys import Keys

        chain = ActionChains(self.d).key_down(Keys.SHIFT)
        for _ in range(times):
            chain = chain.send_keys(key)
        chain.key_up(Keys.SHIFT).perform()

    def ids(self) -> list[int]:
        return [int(x) for x in self.d.execute_script("return [...document.querySelectorAll('#grid .card')].map(c => c.dataset.id)")]

    def verdicts(self) -> dict[int, str]:
        pairs = self.d.execute_script("return [...document.querySelectorAll('#grid .card')].map(c => [c.dataset.id, c.dataset.reviewed])")
        return {int(i): v for i, v in pairs}

    def focused(self) -> int:
        return int(self.d.execute_script("return document.querySelector('.card.focused').dataset.id"))

    def saved(self):
        self.wait.until(lambda d: d.execute_script("return document.querySelector('#saved').dataset.state") in ("saved", "error"))
        assert self.d.find_element("css selector", "#saved").get_attribute("data-state") == "saved"

    def until_verdict(self, face_id: int, verdict: str):
        self.wait.until(lambda _: self.verdicts().get(face_id) == verdict, f"face {face_id} never showed {verdict!r}: {self.verdicts()}")

    def until_count(self, n: int):
        self.wait.until(lambda _: len(self.ids()) == n, f"grid never showed {n} cards: {self.ids()}")

    def click(self, css):
        self.d.find_element("css selector", css).click()


def test_review_flow_in_chromium(state_dir, tmp_path):
    from edge.store.database import Store

    with review_server("--state", str(state_dir)) as (base, out), chromium() as driver:
        assert "127.0.0.1" in out and "token" not in out  # loopback: no token needed
        page = Page(driver, base)
        page.open()
        page.until_count(N)
        assert page.ids() == list(range(N, 0, -1))  # newest first
        page.wait.until(lambda d: "Reviewed 0 of 21" in d.find_element("css selector", "#progress-text").text)
        assert page.focused() == 21

        # Accept the prediction (Enter), relabel with a number key, mark a non-face, undo it.
        page.keys("\ue007")                           # Enter
        page.until_verdict(21, predicted(21))
        assert page.focused() == 20                   # focus moves on after each verdict
        page.keys("5")                                # 5 = sad
        page.until_verdict(20, "sad")
        assert predicted(20) != "sad"
        page.keys("x")
        page.until_verdict(19, "not_face")
        page.keys("u")
        page.until_verdict(19, "")
        assert page.focused() == 19                   # undo brings the face back into focus

        # Multi-select with Shift+Right and label all three at once (7 = neutral); Space accepts.
        from selenium.webdriver.common.keys import Keys

        page.shift_keys(Keys.ARROW_RIGHT, 2)
        assert driver.execute_script("return document.querySelectorAll('.card.selected').length") == 3
        page.keys("7")
        for face_id in (19, 18, 17):
            page.until_verdict(face_id, "neutral")
        assert driver.execute_script("return document.querySelectorAll('.card.selected').length") == 0
        page.keys(Keys.ARROW_RIGHT, "x")              # 16 is not a face, and stays so
        page.until_verdict(16, "not_face")
        page.keys(Keys.ARROW_DOWN)                    # down one row of the grid
        cols = driver.execute_script("return columns()")
        assert page.focused() == 15 - cols
        page.keys(" ")                                # Space accepts too
        page.until_verdict(15 - cols, predicted(15 - cols))
        page.saved()
        accepted = 15 - cols
        page.keys(Keys.HOME, "n")                     # jump to the first face still to review
        assert page.focused() == 15
        page.wait.until(lambda d: d.title == "moodcam review · 7/21")  # progress in the tab title

        # Filters: predicted label, then reviewed only, then confidence; sort hardest first.
        page.click(".chip[data-label='happy']")
        happy = [i for i in range(N, 0, -1) if predicted(i) == "happy"]
        page.wait.until(lambda _: page.ids() == happy)
        page.click("input[name='reviewed'][value='true'] + span")
        page.wait.until(lambda _: page.ids() == [18])
        assert page.verdicts()[18] == "neutral"
        page.click("#reset")
        page.wait.until(lambda _: len(page.ids()) == N)
        with Store(state_dir, readonly=True) as store:
            confident = [f.id for f in store.faces(min_confidence=0.6, order="time_desc")]
            hardest = [f.id for f in store.faces(order="confidence", limit=5)]
        conf_input = driver.find_element("css selector", "#min-conf")
        conf_input.send_keys("60", Keys.TAB)
        page.wait.until(lambda _: page.ids() == confident)
        conf_input.send_keys(Keys.ESCAPE)
        page.click("#reset")
        page.wait.until(lambda _: len(page.ids()) == N)
        from selenium.webdriver.support.select import Select

        Select(driver.find_element("css selector", "#order")).select_by_value("confidence")
        page.wait.until(lambda _: page.ids()[:5] == hardest)
        assert "order=confidence" in driver.current_url  # filters live in the address, so reload keeps them

        # Reload: every verdict is still there, counts and the accuracy estimate agree.
        page.click("#reset")
        driver.refresh()
        page.open()
        page.until_count(N)
        expected = {21: predicted(21), 20: "sad", 19: "neutral", 18: "neutral", 17: "neutral", 16: "not_face",
                    accepted: predicted(accepted)}
        assert {i: v for i, v in page.verdicts().items() if v} == expected
        page.wait.until(lambda d: "Reviewed 7 of 21" in d.find_element("css selector", "#progress-text").text)
        # judged = reviewed faces with a verdict label: 21 and `accepted` right, 20/19/18/17 wrong.
        page.wait.until(lambda d: d.find_element("css selector", "#accuracy .big").text == "33%")
        assert len(driver.find_elements("css selector", "#confusion tbody tr")) == len(LABELS)
        cell = driver.execute_script(
            "const t = document.querySelector('#confusion'); const cols = [...t.querySelectorAll('thead th')].map(th => th.textContent);"
            "const row = [...t.querySelectorAll('tbody tr')].find(r => r.querySelector('th').textContent === 'happy');"
            "return row.querySelectorAll('td')[cols.indexOf('neutr.') - 1].textContent")
        assert cell == "1"  # the model said happy, the reviewer said neutral, once

        # A screenshot for people: a few selected, one focused.
        page.keys(Keys.HOME, Keys.ARROW_RIGHT, Keys.ARROW_RIGHT, Keys.ARROW_DOWN)
        page.shift_keys(Keys.ARROW_RIGHT, 1)
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "review.png"))
        logs = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not logs, logs

    # The store holds exactly what the page showed.
    with Store(state_dir, readonly=True) as store:
        got = {f.id: ("not_face" if f.not_face else f.review_label) for f in store.faces(reviewed=True)}
    assert got == expected

    # ... and the export carries it: <label>/<id>.png for every reviewed face, not the non-face.
    out_dir = tmp_path / "reviewed"
    proc = subprocess.run([sys.executable, "-m", "edge", "dataset", "--state", str(state_dir), "--out", str(out_dir)],
                          cwd=REPO, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 0, proc.stderr
    files = sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*.png"))
    assert files == sorted(f"{label}/{i}.png" for i, label in expected.items() if label != "not_face")
    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert manifest["count"] == 6 and manifest["skipped"]["not_face"] == 1


def test_token_link_in_chromium(state_dir):
    """With a token, the printed link opens the page; crops load on the cookie; keys still save."""
    from edge.store.database import Store

    with review_server("--state", str(state_dir), "--token") as (base, out), chromium(1000, 700) as driver:
        link = out.split("open ", 1)[1].split()[0]
        assert "?token=" in link
        page = Page(driver, base)
        driver.get(base + "/")                                     # no token: nothing is shown
        assert "token is required" in driver.page_source
        driver.get(link.replace(link.split("/?")[0], base))
        page.until_count(N)
        assert driver.current_url.split("#")[0] == base + "/"     # the token left the address bar
        page.wait.until(lambda d: d.execute_script(
            "return [...document.querySelectorAll('#grid img')].slice(0, 4).every(i => i.complete && i.naturalWidth === 48)"))
        page.keys("3")                                             # 3 = fear
        page.until_verdict(21, "fear")
        page.saved()
    with Store(state_dir, readonly=True) as store:
        assert store.get(21).review_label == "fear"


def test_paging_select_all_and_bulk_accept(tmp_path):
    """More faces than one page: End loads the rest; Ctrl+A then Enter accepts every one."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    from edge.store.database import Store

    state = tmp_path / "state"
    fill_store(state, 130)
    with review_server("--state", str(state)) as (base, _), chromium(1280, 800) as driver:
        page = Page(driver, base)
        page.open()
        page.until_count(120)                                       # one page
        page.keys(Keys.END)
        page.until_count(130)                                       # the rest, on reaching the end
        assert page.ids() == list(range(130, 0, -1))
        ActionChains(driver).key_down(Keys.CONTROL).send_keys("a").key_up(Keys.CONTROL).perform()
        assert driver.execute_script("return document.querySelectorAll('.card.selected').length") == 130
        page.keys(Keys.ENTER)
        page.wait.until(lambda _: all(page.verdicts().values()))
        page.saved()
        page.wait.until(lambda d: d.title == "moodcam review · 130/130")
        page.wait.until(lambda d: d.find_element("css selector", "#accuracy .big").text == "100%")
        # The daemon logs two more faces meanwhile: the page says so, and r shows them.
        fill_store(state, 2, t0=1_796_000_000.0, seed=9)
        driver.execute_script("pollNew()")                          # the 15 s poll, now
        page.wait.until(lambda d: d.find_element("css selector", "#new-faces").text == "2 new · press r")
        assert len(page.ids()) == 130                               # the grid did not move by itself
        page.keys("r")
        page.wait.until(lambda _: page.ids()[:3] == [132, 131, 130])  # newest first, a fresh first page
        page.wait.until(lambda d: not d.find_element("css selector", "#new-faces").is_displayed())
    with Store(state, readonly=True) as store:
        assert store.count(reviewed=True) == 130
        assert all(f.review_label == f.label for f in store.faces(reviewed=True))
        assert store.count(reviewed=False) == 2


def test_tracks_scene_and_live_view_in_chromium(state_dir):
    """g groups the faces of a track into one card: Enter accepts the whole track, e opens it to
    judge one face; v shows a face in its scene; l shows the live view the server streams."""
    import threading

    import cv2
    import numpy as np

    from edge.service.live import FRAME_NAME
    from edge.store.database import Store
    from edge.store.records import FaceRecord, scene_thumbnail
    from tests.review_support import MODEL_SHA, synthetic_face

    frame = np.full((480, 640, 3), 90, np.uint8)
    with Store(state_dir) as store:
        probs = {label: 1 / len(LABELS) for label in LABELS}
        record = FaceRecord(ts=1_796_000_000.0, frame=1, track=99, box=(200, 150, 100, 100), label="happy",
                            confidence=0.6, probs=probs, model_sha256=MODEL_SHA, source="test")
        assert store.log_face(record, synthetic_face(99), scene_thumbnail(frame, 160, record.box)) == N + 1
    # What the daemon writes while a viewer is connected (edge.service.live), kept fresh meanwhile.
    live_jpeg = cv2.imencode(".jpg", frame)[1].tobytes()
    done = threading.Event()

    def daemon_side():
        while not done.wait(0.5):
            (state_dir / ".live.tmp").write_bytes(live_jpeg)
            (state_dir / ".live.tmp").rename(state_dir / FRAME_NAME)
    writer = threading.Thread(target=daemon_side, daemon=True)
    writer.start()
    shown = "return [...document.querySelectorAll('#grid .card')].filter(c => !c.hidden).map(c => Number(c.dataset.id))"
    try:
        with review_server("--state", str(state_dir)) as (base, _), chromium() as driver:
            from selenium.webdriver.common.keys import Keys

            page = Page(driver, base)
            page.open()
            page.until_count(N + 1)
            assert driver.execute_script(shown) == list(range(N + 1, 0, -1))   # not grouped until g
            page.keys("g")
            # fill_store: three faces a track (ids 1-3 are track 0, ...); the newest face heads each card.
            assert driver.execute_script(shown) == [22, 21, 18, 15, 12, 9, 6, 3]
            assert driver.execute_script("return document.querySelector('.card[data-id=\"21\"] .stack').textContent") == "×3"
            page.keys(Keys.ARROW_RIGHT)
            assert page.focused() == 21
            assert "track 6" in driver.find_element("css selector", "#target").text
            page.keys(Keys.ENTER)                                   # the whole track: 21, 20, 19
            for face_id in (21, 20, 19):
                page.until_verdict(face_id, predicted(face_id))
            assert page.focused() == 18
            page.keys("e")                                          # open track 5: its faces one by one
            assert driver.execute_script(shown) == [22, 21, 18, 17, 16, 15, 12, 9, 6, 3]
            page.keys(Keys.ARROW_RIGHT, "5")                        # 17 alone is sad
            page.until_verdict(17, "sad")
            page.keys("e")                                          # closed again: focus on its card
            assert page.focused() == 18 and driver.execute_script(shown) == [22, 21, 18, 15, 12, 9, 6, 3]
            page.saved()

            page.keys(Keys.HOME, "v")                               # face 22 in its scene
            page.wait.until(lambda d: d.execute_script(
                "const i = document.querySelector('#scene-img'); return !document.querySelector('#scene').hidden "
                "&& i.complete && i.naturalWidth === 160"))
            page.keys(Keys.ESCAPE)
            assert driver.execute_script("return document.querySelector('#scene').hidden")

            page.keys("l")                                          # the live view, streamed as MJPEG
            page.wait.until(lambda d: d.execute_script(
                "const i = document.querySelector('#live-img'); return i.naturalWidth === 640 && i.naturalHeight === 480"))
            page.wait.until(lambda d: "daemon sees" in d.find_element("css selector", "#live-status").text)
            page.keys("l")
            assert driver.execute_script("return document.querySelector('#live').hidden "
                                         "&& !document.querySelector('#live-img').hasAttribute('src')")
            page.keys("g")
            assert len(driver.execute_script(shown)) == N + 1
            logs = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            assert not logs, logs
    finally:
        done.set()
        writer.join()
    with Store(state_dir, readonly=True) as store:
        got = {f.id: f.review_label for f in store.faces(reviewed=True)}
    assert got == {21: predicted(21), 20: predicted(20), 19: predicted(19), 17: "sad"}

"""Label mode: a folder of face pictures, labels saved beside them in labels.csv."""
from __future__ import annotations

import csv
import os
import stat

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from edge.review.dataset import open_source, write_dataset
from edge.review.folder import FolderLabelsError, FolderSource
from edge.review.items import CannotApply, Filters, ReviewChange
from edge.review.server import create_app
from tests.review_support import chromium, chromium_available, review_server, synthetic_face


@pytest.fixture()
def faces(tmp_path):
    """A folder as the original notebook had it (loose pictures), plus a scraped-style sub-folder."""
    root = tmp_path / "faces"
    (root / "Happy+Human+Faces").mkdir(parents=True)
    for i in range(4):
        Image.fromarray(synthetic_face(i, 96, 0)).save(root / f"person{i}.jpg")
    for i in range(3):
        Image.fromarray(synthetic_face(10 + i, 120, 0)).convert("RGB").save(root / "Happy+Human+Faces" / f"web{i}.png")
    (root / "notes.txt").write_text("not a picture")
    (root / ".hidden").mkdir()
    Image.fromarray(synthetic_face(99)).save(root / ".hidden" / "skip.png")
    return root


def rows(folder):
    with open(folder / "labels.csv", newline="") as f:
        return {r["file"]: (r["label"], r["not_face"]) for r in csv.DictReader(f)}


def test_scan_label_and_keep_across_restarts(faces):
    src = FolderSource(faces)
    items, total = src.query(Filters(), "time", 100, 0)
    assert total == 7
    names = {it.name: it for it in items}
    assert set(names) == {*(f"person{i}.jpg" for i in range(4)), *(f"Happy+Human+Faces/web{i}.png" for i in range(3))}
    assert names["Happy+Human+Faces/web0.png"].label == "happy"     # the folder name is the "prediction"
    assert names["person0.jpg"].label is None
    by_name = {it.name: it.id for it in items}
    done = src.apply([ReviewChange(by_name["person0.jpg"], "label", "sad"),
                      ReviewChange(by_name["person1.jpg"], "not_face"),
                      ReviewChange(by_name["Happy+Human+Faces/web0.png"], "accept"),
                      ReviewChange(by_name["Happy+Human+Faces/web1.png"], "label", "angry")])
    assert [after.reviewed for _, after in done] == [True] * 4 and not any(b.reviewed for b, _ in done)
    with pytest.raises(CannotApply, match="no prediction"):
        src.apply([ReviewChange(by_name["person2.jpg"], "accept")])
    assert rows(faces) == {"person0.jpg": ("sad", "0"), "person1.jpg": ("", "1"),
                           "Happy+Human+Faces/web0.png": ("happy", "0"), "Happy+Human+Faces/web1.png": ("angry", "0")}
    assert stat.S_IMODE((faces / "labels.csv").stat().st_mode) == 0o600
    src.apply([ReviewChange(by_name["person1.jpg"], "clear")])      # undo = clear
    assert "person1.jpg" not in rows(faces)
    # A picture added while serving gets a new id; the ids the page holds stay valid.
    Image.fromarray(synthetic_face(50)).save(faces / "later.png")
    src.rescan()
    assert src.count(Filters()) == 8 and src.get(8).name == "later.png"
    assert src.get(by_name["person0.jpg"]).name == "person0.jpg"
    # A new server on the same folder sees the same labels (they are kept by file name).
    again = FolderSource(faces)
    items, total = again.query(Filters(reviewed=True), "time", 100, 0)
    assert {it.name: it.review_label for it in items} == {"person0.jpg": "sad", "Happy+Human+Faces/web0.png": "happy",
                                                          "Happy+Human+Faces/web1.png": "angry"}


def test_export_of_a_labelled_folder_feeds_the_trainer(faces, tmp_path):
    from trainer.data.datasets import load_dataset

    src = FolderSource(faces)
    ids = {it.name: it.id for it in src.query(Filters(), "time", 100, 0)[0]}
    src.apply([ReviewChange(ids["person0.jpg"], "label", "sad"), ReviewChange(ids["person2.jpg"], "label", "fear"),
               ReviewChange(ids["person3.jpg"], "not_face")])
    out = tmp_path / "out"
    manifest = write_dataset(open_source(faces), out)
    assert manifest["mode"] == "folder" and manifest["count"] == 2
    data = load_dataset(out)
    assert len(data) == 2 and data.faces.shape[1:] == (48, 48)


def test_bad_labels_csv_names_the_line(faces):
    (faces / "labels.csv").write_text("file,label,not_face,reviewed_at\nperson0.jpg,joyful,0,1\n")
    with pytest.raises(FolderLabelsError, match=r"labels.csv, line 2: label 'joyful'"):
        FolderSource(faces)
    (faces / "labels.csv").write_text("file,label,not_face,reviewed_at\n../../etc/passwd,sad,0,1\n")
    with pytest.raises(FolderLabelsError, match="inside the folder"):
        FolderSource(faces)
    (faces / "labels.csv").write_text("name;emotion\n")
    with pytest.raises(FolderLabelsError, match="header"):
        FolderSource(faces)


def test_pictures_served_by_id_only_and_never_outside(faces, tmp_path):
    outside = tmp_path / "private.png"
    Image.fromarray(synthetic_face(7)).save(outside)
    os.symlink(outside, faces / "link.png")                         # a link that leaves the folder
    (faces / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    src = FolderSource(faces)
    ids = {it.name: it.id for it in src.query(Filters(), "time", 100, 0)[0]}
    client = TestClient(create_app(src, check_host=False))
    r = client.get(f"/api/faces/{ids['person0.jpg']}/crop")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    with Image.open(__import__("io").BytesIO(r.content)) as im:
        assert max(im.size) <= 320                                  # re-encoded and bounded
    assert client.get(f"/api/faces/{ids['link.png']}/crop").status_code == 404
    assert client.get(f"/api/faces/{ids['broken.jpg']}/crop").status_code == 404
    assert client.get("/api/faces/person0.jpg/crop").status_code == 422
    assert client.get("/api/faces/999/crop").status_code == 404


@pytest.mark.skipif(not chromium_available(), reason="chromium-driver is not installed")
@pytest.mark.slow  # Chromium
def test_label_mode_in_chromium(faces):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import WebDriverWait

    with review_server("--folder", str(faces)) as (base, _), chromium(1200, 800) as driver:
        driver.get(base + "/#order=time")
        wait = WebDriverWait(driver, 60)
        wait.until(lambda d: len(d.find_elements("css selector", "#grid .card")) == 7)
        assert not driver.find_element("css selector", "#confidence-section").is_displayed()
        first = driver.execute_script("return document.querySelector('.card.focused .row2 span:last-child').textContent")
        ActionChains(driver).send_keys("4").perform()              # 4 = happy
        wait.until(lambda _: (faces / "labels.csv").exists() and rows(faces).get(first) == ("happy", "0"))
        ActionChains(driver).send_keys("x").perform()
        wait.until(lambda _: len(rows(faces)) == 2)
        ActionChains(driver).send_keys("u").perform()
        wait.until(lambda _: len(rows(faces)) == 1)
        # x then u at once, while the x is still being saved: the undo must undo the x, not the 4.
        ActionChains(driver).send_keys("x").send_keys("u").perform()
        wait.until(lambda d: d.execute_script("return state.pending") == 0)
        assert rows(faces) == {first: ("happy", "0")}
        # The labels file is saved before the page re-renders the card: wait for the card too.
        card = wait.until(lambda d: d.find_element("css selector", ".card[data-reviewed='happy'] .pred"))
        assert card.text == "happy"                                 # no prediction: the label shows instead
        wait.until(lambda d: "Reviewed 1 of 7" in d.find_element("css selector", "#progress-text").text)


def test_unwritable_folder_and_full_disk_are_clear_errors(faces, monkeypatch):
    if os.geteuid() != 0:
        faces.chmod(0o500)
        try:
            with pytest.raises(PermissionError, match="cannot write labels.csv"):
                FolderSource(faces)
        finally:
            faces.chmod(0o700)
    src = FolderSource(faces)
    client = TestClient(create_app(src, check_host=False))
    token = client.get("/api/info").json()["write_token"]

    def full(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("edge.review.folder.write_private", full)   # the disk fills up
    r = client.post("/api/reviews", json={"changes": [{"id": 1, "action": "label", "label": "sad"}]},
                    headers={"x-moodcam-token": token})
    assert r.status_code == 507 and "No space left" in r.json()["detail"]
    assert client.get("/api/faces/1").json()["reviewed"] is False   # not shown as saved when it was not

"""The ``visionserve`` command, run as a real process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from tests.conftest import PHOTOS


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "visionserve", *args], capture_output=True, text=True, timeout=120, check=False
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_detect_json_is_pure_json_on_stdout(photo_files: dict[str, str]) -> None:
    result = run("detect", *photo_files.values(), "--json")
    document = json.loads(result.stdout)
    assert document["model"] == "ssd-mobilenet-v2-coco"
    for item, (name, label) in zip(document["results"], PHOTOS.items(), strict=True):
        assert item["image"] == photo_files[name]
        top = item["detections"][0]
        assert top["label"] == label and 0 < top["score"] <= 1
        assert 0 <= top["box"]["x1"] < top["box"]["x2"] <= item["width"]


def test_detect_table_and_options(photo_files: dict[str, str]) -> None:
    table = run("detect", photo_files["coffee"]).stdout
    assert "cup" in table and "detections" in table
    only = json.loads(run("detect", photo_files["coffee"], "--json", "--classes", "bowl", "--conf", "0.3").stdout)
    assert {d["label"] for d in only["results"][0]["detections"]} == {"bowl"}
    one = json.loads(run("detect", photo_files["coffee"], "--json", "--max-det", "1").stdout)
    assert len(one["results"][0]["detections"]) == 1


def test_out_and_crops(photo_files: dict[str, str], tmp_path: Path) -> None:
    run("detect", photo_files["chelsea"], "--out", str(tmp_path), "--crops")
    annotated = cv2.imread(str(tmp_path / "chelsea.jpg"))
    assert annotated is not None and annotated.shape == (300, 451, 3)
    crops = sorted(tmp_path.glob("chelsea_*_cat.jpg"))
    assert crops and cv2.imread(str(crops[0])).shape[0] > 100


def test_folder_argument(photo_files: dict[str, str], tmp_path: Path) -> None:
    folder = Path(photo_files["astronaut"]).parent
    (folder / "notes.txt").write_text("not an image")
    document = json.loads(run("detect", str(folder), "--json").stdout)
    assert [Path(r["image"]).stem for r in document["results"]] == sorted(PHOTOS)


def test_bad_inputs_fail_clearly(tmp_path: Path, photo_files: dict[str, str]) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    result = run("detect", str(bad), photo_files["chelsea"], "--json", check=False)
    assert result.returncode == 1
    results = json.loads(result.stdout)["results"]
    assert "cannot decode image" in results[0]["error"] and results[1]["detections"]
    unknown = run("detect", photo_files["chelsea"], "--model", "nope", check=False)
    assert unknown.returncode == 1 and "unknown model 'nope'" in unknown.stderr
    bad_class = run("detect", photo_files["chelsea"], "--classes", "unicorn", check=False)
    assert bad_class.returncode == 1 and "unknown class" in bad_class.stderr
    assert run("detect", photo_files["chelsea"], "--conf", "3", check=False).returncode == 2


@pytest.mark.parametrize("as_json", [True, False])
def test_models_list_and_info(as_json: bool) -> None:
    if as_json:
        listed = {m["name"]: m for m in json.loads(run("models", "list", "--json", "--check").stdout)["models"]}
        assert set(listed) == {"ssd-mobilenet-v2-coco", "efficientnet-lite3", "movenet-lightning"}
        assert all(model["loads"] is True for model in listed.values())
        assert listed["movenet-lightning"]["task"] == "pose"
        info = json.loads(run("models", "info", "ssd-mobilenet-v2-coco").stdout)
        assert info["input"] == [300, 300] and info["labels"]["1"] == "person" and info["loads"] is True
        assert info["keypoints"] is None
        pose = json.loads(run("models", "info", "movenet-lightning").stdout)
        assert pose["keypoints"]["names"][:3] == ["nose", "left_eye", "right_eye"]
        assert [15, 13] in pose["keypoints"]["skeleton"]
    else:
        assert "ssd-mobilenet-v2-coco" in run("models", "list").stdout


def test_outputs_of_same_named_inputs_do_not_overwrite_each_other(tmp_path: Path, photo_files: dict[str, str]) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.jpg").write_bytes(Path(photo_files["chelsea"]).read_bytes())
    (tmp_path / "a" / "x.png").write_bytes(cv2.imencode(".png", cv2.imread(photo_files["coffee"]))[1].tobytes())
    out = tmp_path / "out"
    run(
        "detect",
        str(tmp_path / "a" / "x.jpg"),
        str(tmp_path / "a" / "x.png"),
        str(tmp_path / "b" / "x.jpg"),
        "--out",
        str(out),
    )
    assert sorted(p.name for p in out.iterdir()) == ["0000_x_jpg.jpg", "0002_x_jpg.jpg", "x_png.jpg"]

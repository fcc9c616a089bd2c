"""The hostile-uploads benchmark's pure parts (the measurement itself starts a server and runs by hand)."""

from __future__ import annotations

import io
from types import ModuleType

import pytest
from PIL import Image

from repo_files import load_module


def _bench() -> ModuleType:
    return load_module("bench/hostile_uploads.py")


def test_the_canvas_is_huge_in_pixels_and_holds_the_face_at_its_paste_box() -> None:
    bench = _bench()
    face = Image.new("RGB", (10, 10), (255, 0, 0))
    canvas = bench.hostile_canvas(face, 400)
    assert canvas.size == (400, 400)
    x, y = bench.paste_box(400, 100)
    assert canvas.getpixel((x + 50, y + 50)) == (255, 0, 0)  # the face, scaled to a quarter of the side
    assert canvas.getpixel((399, 399)) != (255, 0, 0)  # the background
    for fmt in ("png", "jpeg"):
        assert Image.open(io.BytesIO(bench.encoded(canvas, fmt))).size == (400, 400)
    with pytest.raises(ValueError, match="does not fit"):
        bench.paste_box(100, 101)
    with pytest.raises(ValueError, match="unknown format"):
        bench.encoded(canvas, "gif")


def test_peak_memory_is_read_from_proc_status_in_kib() -> None:
    bench = _bench()
    status = "Name:\tpython\nVmHWM:\t 1164288 kB\nVmRSS:\t  939008 kB\n"
    assert bench.vm_kib(status, "VmHWM") == 1164288
    assert bench.vm_kib(status, "VmRSS") == 939008
    with pytest.raises(ValueError, match="no VmPeak"):
        bench.vm_kib(status, "VmPeak")


def test_the_verdict_names_each_request_and_the_peak_that_miss_the_target() -> None:
    bench = _bench()
    ok = bench.Answer("png #1", 201, 2.0, "Ann", None)
    refused = bench.Answer("png #2", 413, 0.1, None, "image_too_large")  # a clear 4xx counts as answered
    assert bench.verdict([ok, refused], 1024**3) == []
    slow = bench.Answer("png #3", 201, 12.5, "Ann", None)
    limited = bench.Answer("jpeg #1", 429, 0.0, None, "rate_limited")
    failed = bench.Answer("jpeg #2", "ReadTimeout", 600.0, None, None)
    missed = bench.verdict([ok, slow, limited, failed], 3 * 1024**3)
    assert [m.split(":")[0] for m in missed] == ["png #3", "jpeg #1", "jpeg #2", "peak RSS 3.00 GB (target < 2 GB)"]

"""``check`` at given feature sizes: one for every input, one per input, or the image's,
from which each input's follows from the stride it declares."""

from __future__ import annotations

import subprocess
import sys

import pytest

import dpcdsl
from dpcdsl.lang import heads
from dpcdsl.lang.checker import ImageSize, PerInput

#: a decoder whose stride-8 path meets its stride-4 input after a 2x resize: a size
#: per input fits it only where the two agree
DECODER = """cell dec(low @ 4, high @ 8) {
  return sum(conv(low, kernel = 1, channels = 8), resize(conv(high, kernel = 1, channels = 8), scale = 2))
}
"""


def codes(text: str, size: object) -> list[str]:
    return [d.code for d in dpcdsl.check(dpcdsl.load_text(text), size)]  # type: ignore[arg-type]


def test_the_image_size_gives_each_input_its_strides_size() -> None:
    assert ImageSize((513, 512)).at(16) == (33, 32)
    assert codes(DECODER, ImageSize((64, 64))) == []
    # 66 / 4 = 17 rows at stride 4 and 9 at stride 8, which doubles to 18
    assert codes(DECODER, ImageSize((66, 64))) == ["DPC601"]


def test_sizes_per_input() -> None:
    assert codes(DECODER, PerInput.of({"low": (16, 16), "high": (8, 8)})) == []
    assert codes(DECODER, PerInput.of({"low": (16, 16), "high": (16, 16)})) == ["DPC601"]


def test_one_size_for_inputs_at_several_strides_is_refused_with_the_fix() -> None:
    [d] = dpcdsl.check(dpcdsl.load_text(DECODER), (16, 16))
    assert d.code == "DPC605" and (d.span.line, d.span.column) == (1, 1)
    assert "the inputs of 'dec' read strides 4, 8; one size cannot be each input's" in d.message
    assert "--image" in (d.hint or "")


def test_a_cell_of_one_input_reads_the_image_at_the_output_stride() -> None:
    text = "cell h(x) { return maxpool(x, window = 6) }"
    assert codes(text, ImageSize((96, 96))) == []  # 6x6 at stride 16
    assert codes(text, ImageSize((80, 80))) == ["DPC601"]  # 5x5


@pytest.mark.parametrize("name", heads.names())
def test_every_library_head_checks_at_a_typical_image_size(name: str) -> None:
    program = dpcdsl.load(heads.path(name))
    assert dpcdsl.check(program, ImageSize((512, 512))) == []


def test_on_the_command_line() -> None:
    def dpcc(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "dpcdsl.cli", "check", *args],
                              capture_output=True, text=True, timeout=120)

    assert dpcc("smp_fpn", "--image", "256x256").returncode == 0
    r = dpcc("lraspp", "--size", "low=8x8", "--size", "high=4x4")
    assert r.returncode == 0, r.stderr
    r = dpcc("lraspp", "--size", "low=8x8")
    assert r.returncode == 2 and "no size for input high" in r.stderr
    r = dpcc("lraspp", "--size", "16x16")
    assert r.returncode == 1 and "[DPC605]" in r.stderr

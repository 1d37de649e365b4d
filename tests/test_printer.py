import pytest
from hypothesis import HealthCheck, given, settings

from dpcdsl.lang.printer import format_module
from dpcdsl.lang.syntax import parse
from tests.conftest import EXAMPLES
from tests.strategies import modules

EXAMPLE_FILES = sorted(EXAMPLES.glob("*.dpc"))


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_examples_are_canonical(path):
    text = path.read_text()
    assert format_module(parse(text)) == text


def test_messy_text_formats_to_golden(golden):
    messy = (GOLDEN_IN := (EXAMPLES.parent / "tests" / "golden" / "format" / "messy.dpc"))
    out = format_module(parse(messy.read_text()))
    golden("format/messy.expected.dpc", out)
    assert format_module(parse(out)) == out
    assert parse(out) == parse(GOLDEN_IN.read_text())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(modules)
@pytest.mark.slow
def test_parse_print_round_trip(module):
    text = format_module(module)
    assert parse(text) == module
    assert format_module(parse(text)) == text


def test_comments_and_blank_lines_survive():
    text = "# head\nlet a = 1\n\n# about b\nlet b = {1, 2}\n\ncell c(x) {\n  # first\n" \
           "  y = conv(x)\n\n  return y\n}\n\n# tail\n"
    assert format_module(parse(text)) == text

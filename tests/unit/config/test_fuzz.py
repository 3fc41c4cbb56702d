"""Property: whatever the input, the loader returns a model or clean FILE:LINE problems, never raises.

Mutations of the reference samples (deleted, duplicated and swapped lines, dropped braces, random
bytes) go through the whole loader: lexer, tree, keyword tables, validation and the TOML round trip.
"""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from supervisor.config.diag import Diagnostics
from supervisor.config.load import load_text
from supervisor.config.toml_io import from_toml, to_toml
from tests.unit.config.samples import sample_files

SAMPLES = [p.read_text(errors="replace").splitlines() for p in sample_files()]
PROBLEM = re.compile(r"^[^\n]+:\d+: .+")


@st.composite
def mutated(draw: st.DrawFn) -> str:
    lines = list(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(1, 6))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["del", "dup", "swap", "brace", "junk", "cut"]))
        if op == "del":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "brace":
            lines[i] = lines[i].replace("{", "", 1) if "{" in lines[i] else lines[i] + " }"
        elif op == "junk":
            lines[i] = lines[i] + " " + draw(st.text(max_size=12))
        else:
            cut = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:cut]
    return "\n".join(lines)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_loader_never_raises(text: str) -> None:
    result = load_text(text, name="fuzz.conf", base_dir="/nonexistent")
    for problem in result.diag:
        assert PROBLEM.match(str(problem)), str(problem)
    if result.config is not None:
        diag = Diagnostics()
        assert from_toml(to_toml(result.config), diag) == result.config, [str(p) for p in diag]

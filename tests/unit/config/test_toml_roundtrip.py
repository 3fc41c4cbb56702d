"""The model as TOML: dump → load → dump is identical for every sample, and -d agrees on both forms."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.config.diag import Diagnostics
from supervisor.config.dump import dump_text
from supervisor.config.load import load_config
from supervisor.config.toml_io import from_toml, to_toml
from tests.unit.config.samples import config_id_for, sample_files


@pytest.mark.parametrize("path", sample_files(), ids=lambda p: p.name)
def test_sample_round_trips(path: Path, tmp_path: Path) -> None:
    result = load_config(str(path), config_id=config_id_for(path), check_host=False)
    assert result.config is not None
    first = to_toml(result.config)
    diag = Diagnostics()
    again = from_toml(first, diag)
    assert again is not None, [str(p) for p in diag]
    assert again == result.config
    assert to_toml(again) == first
    # -d prints the same configuration for the original file and for its TOML
    toml_file = tmp_path / "c.toml"
    toml_file.write_text(first)
    from_file = load_config(str(toml_file), check_host=False)
    assert from_file.config is not None
    assert dump_text(from_file.config) == dump_text(result.config)


def test_toml_errors_are_clean() -> None:
    diag = Diagnostics()
    assert from_toml("model_version = 1\nbogus = 3\n", diag, "x.toml") is None
    assert str(diag.problems[0]) == "x.toml:0: <top>: unknown key 'bogus'"
    diag = Diagnostics()
    assert from_toml("[global_defs]\nvrrp_version = 'two'\n", diag, "x.toml") is None
    assert "global_defs.vrrp_version: expected an integer" in str(diag.problems[0])
    diag = Diagnostics()
    assert from_toml("not toml [", diag, "x.toml") is None
    assert str(diag.problems[0]).startswith("x.toml:1: invalid TOML")

"""Load a configuration: keepalived.conf text (or our TOML) → validated model plus problems.

This is the one entry point every caller uses: ``pykeepalived -t``, the supervisor at start and on
reload, and the tests. It never raises for a mistake in the input; everything wrong is a Problem with
its FILE:LINE in ``LoadResult.diag``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from supervisor.config import host, scripts, validate_vrrp
from supervisor.config.diag import Diagnostics, Where
from supervisor.config.lexer import read_lines, read_text
from supervisor.config.model.config import Config
from supervisor.config.parse import lvs
from supervisor.config.parse.root import parse_tree
from supervisor.config.parse.table import Ctx
from supervisor.config.tree import build_tree


@dataclass
class LoadResult:
    config: Config | None
    diag: Diagnostics

    @property
    def ok(self) -> bool:
        """Usable for a (re)load: parsed, and nothing worse than a warning."""
        return self.config is not None and not self.diag.errors


def _finish(config: Config, ctx: Ctx, check_host: bool, top: Where) -> None:
    validate_vrrp.validate(config, ctx)
    lvs.validate(config, ctx)
    before = len(ctx.diag)
    if check_host:
        host.check_interfaces(config, ctx.diag, top=top)
    # keepalived stops its VRRP set-up at a missing interface, so it never gets to the script checks.
    if len(ctx.diag) == before:
        scripts.check_scripts(config, ctx.scripts, ctx.diag, top)


def load_config(
    path: str,
    *,
    config_id: str | None = None,
    check_host: bool = True,
    environ: Mapping[str, str] | None = None,
) -> LoadResult:
    """Read keepalived.conf (or a TOML dump of the model, by its .toml suffix) from path."""
    diag = Diagnostics()
    if path.endswith(".toml"):
        from supervisor.config.toml_io import load_toml_file

        config = load_toml_file(path, diag)
        if config is not None and check_host:
            host.check_interfaces(config, diag)
        return LoadResult(config, diag)
    if not os.path.exists(path):
        diag.fatal(Where(path, 0), f"Configuration file '{path}' not found")
        return LoadResult(None, diag)
    lines = read_lines(path, diag, config_id=config_id, environ=environ)
    ctx = Ctx(diag)
    config = parse_tree(build_tree(lines, diag), ctx)
    _finish(config, ctx, check_host, Where(path, 0))
    return LoadResult(config, diag)


def load_text(
    text: str,
    *,
    name: str = "keepalived.conf",
    base_dir: str = ".",
    config_id: str | None = None,
    check_host: bool = False,
) -> LoadResult:
    """Parse configuration text (tests, and reloads from a snapshot)."""
    diag = Diagnostics()
    lines = read_text(text, diag, name=name, base_dir=base_dir, config_id=config_id)
    ctx = Ctx(diag)
    config = parse_tree(build_tree(lines, diag), ctx)
    _finish(config, ctx, check_host, Where(name, 0))
    return LoadResult(config, diag)

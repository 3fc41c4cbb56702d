"""The top level of keepalived.conf: which family of blocks each top-level keyword belongs to."""

from __future__ import annotations

from supervisor.config.model.config import Config
from supervisor.config.parse import globals as globals_
from supervisor.config.parse import lvs, vrrp
from supervisor.config.parse.table import Ctx, Table
from supervisor.config.tree import Node

ROOT = Table("the top level", {**globals_.ROOT_HANDLERS, **vrrp.ROOT_HANDLERS, **lvs.ROOT_HANDLERS})


def parse_tree(nodes: list[Node], ctx: Ctx) -> Config:
    config = Config()
    ROOT.apply(nodes, config, ctx)
    for check in ctx.deferred:
        check()
    return config

"""build_tree: braces anywhere, blocks, raw text and quoting of statements, and brace errors.

Also checks that every reference sample configuration reads and builds without an error.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from supervisor.config.diag import Diagnostics, Severity, Where
from supervisor.config.lexer import Line, Token, read_lines, read_text
from supervisor.config.tree import Node, build_tree


def tree(text: str) -> tuple[list[Node], Diagnostics]:
    diag = Diagnostics()
    return build_tree(read_text(text, diag, name="t.conf"), diag), diag


def shape(nodes: list[Node]) -> list[object]:
    """A compact picture of a tree: [keyword, *args] for a statement, plus a list for its block."""
    out: list[object] = []
    for n in nodes:
        out.append([n.keyword, *n.args] if n.children is None else [n.keyword, *n.args, shape(n.children)])
    return out


SPREAD = """
virtual_server 10.0.0.1 80
{
    real_server 192.0.2.1 80
    {
        weight 2
    }
}
"""


def test_braces_anywhere_give_the_same_tree() -> None:
    expected = [["virtual_server", "10.0.0.1", "80", [["real_server", "192.0.2.1", "80", [["weight", "2"]]]]]]
    for text in (
        SPREAD,
        "virtual_server 10.0.0.1 80 { real_server 192.0.2.1 80 { weight 2 } }",
        "virtual_server 10.0.0.1 80{\nreal_server 192.0.2.1 80{weight 2}}\n",
        "virtual_server 10.0.0.1 80 {\n  real_server 192.0.2.1 80 {\n    weight 2 }\n}\n",
    ):
        nodes, diag = tree(text)
        assert shape(nodes) == expected, text
        assert not diag.problems


def test_words_after_braces_are_further_statements() -> None:
    nodes, _ = tree("a { b 1 } c 2 { d } e\n")
    assert shape(nodes) == [["a", [["b", "1"]]], ["c", "2", [["d"]]], ["e"]]


def test_empty_block_and_list_block() -> None:
    nodes, _ = tree("virtual_ipaddress {\n  10.0.0.1/24 dev eth0\n  10.0.0.2\n}\nnopreempt\nx {}\n")
    assert shape(nodes) == [["virtual_ipaddress", [["10.0.0.1/24", "dev", "eth0"], ["10.0.0.2"]]], ["nopreempt"],
                            ["x", []]]  # fmt: skip
    assert nodes[0].is_block and not nodes[1].is_block and nodes[2].block() == []


def test_where_raw_and_quoted() -> None:
    nodes, _ = tree("vrrp_script chk {\n  script \"/bin/check 'a b'\"  root  # run it\n}\n"
                    'x { notify_master "/bin/n  m" user } y "{" z\n')  # fmt: skip
    script = nodes[0].block()[0]
    assert (str(script.where), script.args, script.raw) == ("t.conf:2", ["/bin/check 'a b'", "root"],
                                                            "\"/bin/check 'a b'\"  root")  # fmt: skip
    assert script.quoted == frozenset({0})
    notify = nodes[1].block()[0]
    assert (notify.raw, notify.quoted, str(notify.where)) == ('"/bin/n  m" user', frozenset({0}), "t.conf:4")
    assert nodes[0].raw == "chk" and nodes[1].raw == ""
    assert (nodes[2].keyword, nodes[2].args, nodes[2].quoted, nodes[2].is_block) == (
        "y",
        ["{", "z"],
        {0},
        False,
    )


def test_raw_of_lines_built_by_hand() -> None:
    lines = [Line(Where("h.conf", 1), (Token("k", False), Token("a b", True), Token("{", False)), 'k "a b" {'),
             Line(Where("h.conf", 2), (Token("}", False),), "}")]  # fmt: skip
    diag = Diagnostics()
    (node,) = build_tree(lines, diag)
    assert (node.raw, node.args, node.quoted, node.block()) == ("a b", ["a b"], {0}, [])
    assert not diag.problems


def test_open_brace_alone_opens_the_previous_statement() -> None:
    nodes, diag = tree("global_defs\n{\n  router_id r1\n}\n")
    assert shape(nodes) == [["global_defs", [["router_id", "r1"]]]]
    assert not diag.problems


def test_missing_close_brace_is_reported_at_each_open_header() -> None:
    nodes, diag = tree("global_defs {\n  router_id r1\n}\nvrrp_instance VI_1 {\n  state MASTER\n"
                       "  virtual_ipaddress {\n    10.0.0.1\n")  # fmt: skip
    assert [str(p) for p in diag] == [
        "t.conf:4: missing '}' for the 'vrrp_instance' block opened here",
        "t.conf:6: missing '}' for the 'virtual_ipaddress' block opened here",
    ]
    assert shape(nodes)[1] == [
        "vrrp_instance",
        "VI_1",
        [["state", "MASTER"], ["virtual_ipaddress", [["10.0.0.1"]]]],
    ]


def test_stray_close_brace_is_reported_at_its_line() -> None:
    nodes, diag = tree("global_defs {\n  router_id r1\n}\n}\nnext\n")
    assert [str(p) for p in diag] == ["t.conf:4: '}' closes no block; ignored"]
    assert [p.severity for p in diag] == [Severity.ERROR]
    assert shape(nodes) == [["global_defs", [["router_id", "r1"]]], ["next"]]


def test_open_brace_without_statement_is_reported() -> None:
    nodes, diag = tree("a { }\n{\n  lost 1\n}\nb\n")
    assert [str(p) for p in diag] == ["t.conf:2: '{' does not follow a statement; its block is ignored"]
    assert shape(nodes) == [["a", []], ["b"]]


def test_quoted_brace_is_not_a_brace() -> None:
    nodes, diag = tree("a \"{\"\nb '}'\n")
    assert shape(nodes) == [["a", "{"], ["b", "}"]]
    assert not diag.problems


# -- reference samples --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def samples_dir() -> Path:
    """shared/reference/samples beside the repository (this checkout or another clone next to shared/)."""
    repo = Path(__file__).resolve().parents[3]
    for candidate in (repo.parent / "shared", repo / "../shared", Path("/work/shared")):
        d = candidate / "reference" / "samples"
        if d.is_dir():
            return d.resolve()
    pytest.skip("reference samples not found beside the repository")


def test_every_sample_reads_and_builds_without_errors(samples_dir: Path, tmp_path: Path) -> None:
    samples = sorted(p for p in samples_dir.iterdir() if p.is_file() and p.suffix != ".sh")
    assert len(samples) >= 20
    for sample in samples:
        for config_id in ("high", "low", "main"):
            diag = Diagnostics()
            nodes = build_tree(read_lines(str(sample), diag, config_id=config_id), diag)
            assert nodes, sample.name
            assert not diag.errors, [str(p) for p in diag.errors]

    # The same samples pulled in through include from elsewhere give the same statements.
    (tmp_path / "conf.d").mkdir()
    for sample in samples:
        (tmp_path / "conf.d" / f"{sample.name}.conf").write_bytes(sample.read_bytes())
    main = tmp_path / "keepalived.conf"
    main.write_text("include conf.d/*.conf\n")
    diag = Diagnostics()
    included = build_tree(read_lines(str(main), diag, config_id="high"), diag)
    direct = [
        n for s in samples for n in build_tree(read_lines(str(s), Diagnostics(), config_id="high"), diag)
    ]
    assert shape(included) == shape(direct)
    assert not diag.errors


def test_large_generated_configuration_is_fast() -> None:
    parts = ["global_defs {\n  router_id gen\n}\n"]
    for i in range(1000):
        parts.append(f"vrrp_instance VI_{i} {{\n  state BACKUP\n  interface eth0\n  virtual_router_id {i % 255 + 1}\n"
                     f"  priority 100\n  virtual_ipaddress {{\n    10.{i // 250}.{i % 250}.1/24\n  }}\n"
                     '  notify_master "/etc/keepalived/notify.sh master"  # note\n}\n')  # fmt: skip
    for v in range(100):
        parts.append(f"virtual_server 192.168.{v}.1 80 {{\n  lb_algo rr\n")
        for r in range(100):
            parts.append(f"  real_server 10.1.{v}.{r} 80 {{\n    weight 1\n    TCP_CHECK {{\n      connect_timeout 3\n"
                         "    }\n  }\n")  # fmt: skip
        parts.append("}\n")
    text = "".join(parts)
    diag = Diagnostics()
    start = time.perf_counter()
    nodes = build_tree(read_text(text, diag, name="gen.conf"), diag)
    elapsed = time.perf_counter() - start
    assert len(nodes) == 1101 and not diag.problems
    assert text.count("\n") > 70_000
    # About 0.3 s on a development machine; the bound leaves room for slow CI runners.
    assert elapsed < 5.0

"""The keepalived.conf preprocessor and lexer: one test per language feature and per input error.

Every problem is checked by its exact ``FILE:LINE:`` prefix, the form operators see.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from supervisor.config.diag import Diagnostics, Severity
from supervisor.config.lexer import (
    MAX_EXPANDED_LINES,
    Line,
    Token,
    read_lines,
    read_text,
    split_escaped,
    split_plain,
)
from supervisor.config.tree import build_tree


def lex(text: str, **kwargs: object) -> tuple[list[list[str]], Diagnostics]:
    diag = Diagnostics()
    lines = read_text(text, diag, name="t.conf", **kwargs)  # type: ignore[arg-type]
    return [[t.text for t in line.tokens] for line in lines], diag


def problems(diag: Diagnostics, severity: Severity | None = None) -> list[str]:
    return [str(p) for p in diag if severity is None or p.severity is severity]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# -- comments -----------------------------------------------------------------------------------------


def test_comments_start_anywhere_outside_double_quotes() -> None:
    words, diag = lex('# whole line\n! also\nrouter_id r1 # tail\nauth_pass ab!cd\nnotify "/bin/x #1 !2"\n')
    assert words == [["router_id", "r1"], ["auth_pass", "ab"], ["notify", "/bin/x #1 !2"]]
    assert not diag.problems


def test_escaped_comment_characters_are_kept() -> None:
    words, _ = lex("auth_pass a\\#b\\!c\n")
    assert words == [["auth_pass", "a#b!c"]]


def test_no_block_comments() -> None:
    words, _ = lex("/* not a comment */\n")
    assert words == [["/*", "not", "a", "comment", "*/"]]


# -- quoting ------------------------------------------------------------------------------------------


def test_quoted_strings_keep_whitespace_and_concatenate() -> None:
    diag = Diagnostics()
    (line,) = read_text('kw "a  b" \'c d\' x"y z"w\n', diag)
    assert line.tokens == (Token("kw", False), Token("a  b", True), Token("c d", True), Token("xy zw", True))
    assert line.raw == 'kw "a  b" \'c d\' x"y z"w'


def test_escapes() -> None:
    words, _ = lex(r'kw "\a\b\E\f\n\r\t\v" "\101\x41\x4a\cA" "\q\\\"" ' + "\n")
    assert words == [["kw", "\a\b\x1b\f\n\r\t\v", "AAJ\x01", 'q\\"']]


def test_man_page_script_example_splits_in_two_levels() -> None:
    text = (
        "$SG_NAME=SG1\n$INST=low\n$USER=user\n"
        "notify_master \"/etc/keepalived/notify_event.sh ' spaces\\\\x20f\\x69le ' '\\\"s p a c e \\\"'"
        ' ${SG_NAME}.$INST master" $USER group\n'
    )
    words, diag = lex(text)
    assert not diag.problems
    (line,) = words
    assert line[0] == "notify_master" and line[2:] == ["user", "group"]
    assert split_escaped(line[1]) == [
        "/etc/keepalived/notify_event.sh",
        " spaces file ",  # keepalived 2.2.7 applies \x20 at this level too (the man page says otherwise)
        '"s p a c e "',
        "SG1.low",
        "master",
    ]


def test_split_plain_is_keepalived_generic_split() -> None:
    assert split_plain(r'regex "^OK\d" it\'s') == ["regex", r"^OK\d", "it\\'s"]


def test_unmatched_quote_is_an_error_at_its_line() -> None:
    words, diag = lex('global_defs {\n  router_id "r1\n}\n')
    assert problems(diag) == ['t.conf:2: unmatched " quote in: router_id "r1']
    assert words[1] == ["router_id", "r1"]


def test_unmatched_single_quote_is_an_error() -> None:
    _, diag = lex("a\nnotify_master '/bin/x\n")
    assert [str(p).split(" quote")[0] for p in diag] == ["t.conf:2: unmatched '"]


# -- braces -------------------------------------------------------------------------------------------


def test_braces_are_tokens_anywhere_unless_quoted() -> None:
    diag = Diagnostics()
    (line,) = read_text("real_server 1.2.3.4 80{weight 2}x \"{\" '}'\n", diag)
    assert [(t.text, t.quoted) for t in line.tokens] == [
        ("real_server", False),
        ("1.2.3.4", False),
        ("80", False),
        ("{", False),
        ("weight", False),
        ("2", False),
        ("}", False),
        ("x", False),
        ("{", True),
        ("}", True),
    ]


# -- conditional lines --------------------------------------------------------------------------------


def test_conditional_lines_follow_the_config_id() -> None:
    text = "@main a 1\n@backup a 2\n@^main b 1\n@^backup b 2\n@main\n"
    assert lex(text, config_id="main")[0] == [["a", "1"], ["b", "2"]]
    assert lex(text, config_id="backup")[0] == [["a", "2"], ["b", "1"]]
    assert lex(text, config_id="other")[0] == [["b", "1"], ["b", "2"]]


def test_default_config_id_is_first_host_label(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "lb1.example.com")
    assert lex("@lb1 x\n@example y\n")[0] == [["x"]]


# -- definitions --------------------------------------------------------------------------------------


def test_definitions_are_substituted_at_use_time_and_recursively() -> None:
    text = (
        "$ADDRESS_BASE=10.2.${ADDRESS_BASE_SUB}\n$ADDRESS_BASE_SUB=0\n${ADDRESS_BASE}.100/32\n"
        "$ADDRESS_BASE_SUB=10\n${ADDRESS_BASE}.100/32\n"
    )
    assert lex(text)[0] == [["10.2.0.100/32"], ["10.2.10.100/32"]]


def test_bare_reference_needs_a_separator_after_it() -> None:
    assert lex("$A=x\nk $A $A, ($A) $Ab ${A}b\n")[0] == [["k", "x", "x,", "(x)", "$Ab", "xb"]]


def test_undefined_names_stay_as_written() -> None:
    words, diag = lex('notify "/bin/echo $HOME ${UNDEF}"\n')
    assert words == [["notify", "/bin/echo $HOME ${UNDEF}"]]
    assert not diag.problems


def test_definitions_combine_with_conditionals() -> None:
    text = (
        "@main $PRIORITY=240\n@backup $PRIORITY=200\npriority $PRIORITY\n$IF_MAIN=@main\n$IF_MAIN weight 3\n"
    )
    assert lex(text, config_id="main")[0] == [["priority", "240"], ["weight", "3"]]
    assert lex(text, config_id="backup")[0] == [["priority", "200"]]


def test_multiline_definition() -> None:
    text = (
        "$INSTANCE= \\\n"
        "vrrp_instance VI_${NUM} { \\\n"
        "    # a comment line does not end it\n"
        "    interface eth0.${NUM} \\\n"
        "    @high priority 130 \\\n"
        "}\n"
        "$NUM=0\n$INSTANCE\n$NUM=1\n$INSTANCE\n"
    )
    diag = Diagnostics()
    lines = read_text(text, diag, name="t.conf", config_id="high")
    assert [[t.text for t in ln.tokens] for ln in lines] == [
        ["vrrp_instance", "VI_0", "{"],
        ["interface", "eth0.0"],
        ["priority", "130"],
        ["}"],
        ["vrrp_instance", "VI_1", "{"],
        ["interface", "eth0.1"],
        ["priority", "130"],
        ["}"],
    ]
    assert {str(ln.where) for ln in lines[:4]} == {"t.conf:8"}
    assert not diag.problems


def test_multiline_definition_ends_at_an_empty_line() -> None:
    assert lex("$B=one \\\n  two \\\n\n${B}\nnext\n")[0] == [["one"], ["two"], ["next"]]


def test_multiline_definitions_nest() -> None:
    text = (
        "$RS= \\\nreal_server ${N} \\\nweight 1\n$VS= \\\nvs { \\\n$N=1 \\\n$RS \\\n$N=2 \\\n$RS \\\n}\n$VS\n"
    )
    assert lex(text)[0] == [["vs", "{"], ["real_server", "1"], ["weight", "1"], ["real_server", "2"],
                            ["weight", "1"], ["}"]]  # fmt: skip


def test_multiline_definition_is_only_used_at_end_of_line() -> None:
    assert lex("$M= \\\na \\\nb\nx $M y\n")[0] == [["x", "$M", "y"]]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("$NAME =1", "no space is allowed before '='"),
        ("$1NAME=1", "a name is letters, digits and '_', not starting with a digit"),
        ("$A-B=1", "a name is letters, digits and '_', not starting with a digit"),
        ("$=1", "no name before '='"),
    ],
)
def test_bad_definition_is_an_error_at_its_line(line: str, message: str) -> None:
    words, diag = lex(f"ok\n{line}\n")
    assert problems(diag) == [f"t.conf:2: bad definition '{line}': {message}"]
    assert words == [["ok"]]


def test_recursive_definition_is_bounded() -> None:
    words, diag = lex("$A=x${A}\n\nk $A\n")
    assert problems(diag) == ["t.conf:3: substituting $A does not terminate (recursive definition?)"]
    assert words == []


def test_self_referencing_multiline_definition_is_bounded() -> None:
    _, diag = lex("$M= \\\nline \\\n$M\n$M\n")
    assert diag.errors and all(str(p.where) == "t.conf:4" for p in diag.errors)


# -- pre-defined definitions --------------------------------------------------------------------------


def test_pwd_is_the_directory_of_the_current_file(tmp_path: Path) -> None:
    write(tmp_path / "sub" / "inc.conf", "script ${_PWD}/check.sh\n")
    main = write(tmp_path / "main.conf", "script ${_PWD}/x\ninclude sub/inc.conf\n")
    diag = Diagnostics()
    lines = read_lines(str(main), diag)
    assert [ln.tokens[1].text for ln in lines] == [f"{tmp_path}/x", f"{tmp_path}/sub/check.sh"]


def test_instance_and_env_and_hash_bang() -> None:
    text = 'a ${_INSTANCE}\nb ${_ENV FOO} ${_ENV NOPE}.\nc "${_HASH}${_BANG}"\nd x${_HASH}y\n'
    words, _ = lex(text, config_id="cid", environ={"FOO": "bar"})
    # Outside double quotes a substituted '#' starts a comment, as in keepalived 2.2.7.
    assert words == [["a", "cid"], ["b", "bar", "."], ["c", "#!"], ["d", "x"]]
    assert lex("a ${_INSTANCE}\n", config_id="cid", instance="inst")[0] == [["a", "inst"]]


def test_random_is_in_range_and_deterministic_with_a_seed() -> None:
    text = "".join("r ${_RANDOM} ${_RANDOM 5 9} ${_RANDOM 3}\n" for _ in range(50))
    first, _ = lex(text, random_seed=7)
    assert first == lex(text, random_seed=7)[0]
    for _, default, bounded, low in first:
        assert 0 <= int(default) <= 32767 and 5 <= int(bounded) <= 9 and 3 <= int(low) <= 32767


def test_random_with_reversed_bounds_is_an_error() -> None:
    words, diag = lex("x\nr ${_RANDOM 9 5}\n")
    assert problems(diag) == ["t.conf:2: ${_RANDOM}: min 9 exceeds max 5, using 9"]
    assert words[1] == ["r", "9"]


# -- ~SEQ and ~LST ------------------------------------------------------------------------------------


def test_seq_forms() -> None:
    text = (
        "~SEQ(S, 0, 3) ip 10.0.${S}.1\n~SEQ(N, 3) n$N\n~SEQ(M, 0) m${M}\n~SEQ(D, 3, 1) d${D}\n"
        "~SEQ(O, 010, 4, 0x10) o${O}\n"
    )
    assert lex(text)[0] == [
        ["ip", "10.0.0.1"], ["ip", "10.0.1.1"], ["ip", "10.0.2.1"], ["ip", "10.0.3.1"],
        ["n1"], ["n2"], ["n3"], ["m1"], ["m0"], ["d3"], ["d2"], ["d1"], ["o8"], ["o12"], ["o16"],
    ]  # fmt: skip


def test_seqx_nested_and_several_per_line() -> None:
    words, _ = lex("~SEQx(A, 0x90, 0x10, 0xb0) ~SEQx(B, 0x12, -1, 0x11) fe81::${A}:${B}\n")
    assert words == [["fe81::90:12"], ["fe81::90:11"], ["fe81::a0:12"], ["fe81::a0:11"], ["fe81::b0:12"],
                     ["fe81::b0:11"]]  # fmt: skip


def test_seq_parameters_may_be_definitions_and_expand_multiline_definitions() -> None:
    text = "$LAST=2\n$VI= \\\nvi ${ID} { \\\n}\n~SEQ(ID, 1, $LAST) $VI\n"
    assert lex(text)[0] == [["vi", "1", "{"], ["}"], ["vi", "2", "{"], ["}"]]


def test_lst_forms() -> None:
    text = "~LST(IP, 1, 2) ~LST(IP1, 5,6) 192.169.${IP}.${IP1}\n~LST({A, B}, {10,1},{20}) a${A}.b${B}.\n"
    assert lex(text)[0] == [
        ["192.169.1.5"], ["192.169.1.6"], ["192.169.2.5"], ["192.169.2.6"], ["a10.b1."], ["a20.b."],
    ]  # fmt: skip


@pytest.mark.parametrize("spec", ["~SEQ(A, 1, 0, 5) x", "~SEQ(A) x", "~SEQ A, 1) x", "~SEQ(A, 9, 1, 5) x"])
def test_invalid_seq_is_an_error(spec: str) -> None:
    words, diag = lex(f"ok\n{spec}\n")
    assert problems(diag) == [f"t.conf:2: invalid ~SEQ specification '{spec}'"]
    assert words == [["ok"]]


def test_invalid_lst_is_an_error() -> None:
    _, diag = lex("~LST({A}, {1,2}) x\n")
    assert problems(diag) == ["t.conf:1: invalid ~LST specification '~LST({A}, {1,2}) x'"]


def test_seq_expansion_is_bounded() -> None:
    words, diag = lex("a\n~SEQ(I, 1, 2000000) x$I\nb\n")
    assert problems(diag) == [
        "t.conf:2: '~SEQ(I, 1, 2000000) x$I' would expand to 2000000 lines, taking ~SEQ/~LST and multi-line"
        f" definition expansion past its limit of {MAX_EXPANDED_LINES} lines; not expanded"
    ]
    assert words == [["a"], ["b"]]


def test_nested_seq_expansion_is_bounded_in_total(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("supervisor.config.lexer.MAX_EXPANDED_LINES", 1000)
    words, diag = lex("~SEQ(I, 1, 200) ~SEQ(J, 1, 10) x\nb\n")
    assert [str(p.where) for p in diag] == ["t.conf:1"]
    assert 800 < len(words) <= 1001 and words[-1] == ["b"]


def test_multiline_expansion_counts_towards_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("supervisor.config.lexer.MAX_EXPANDED_LINES", 100)
    words, diag = lex("$M= \\\na \\\nb\n~SEQ(I, 1, 40) $M\n~SEQ(I, 1, 40) $M\n")
    assert [str(p) for p in diag] == [
        "t.conf:5: '~SEQ(I, 1, 40) $M' would expand to 40 lines, taking ~SEQ/~LST and multi-line definition"
        " expansion past its limit of 100 lines; not expanded"
    ]
    assert len(words) == 40 * 2


# -- include ------------------------------------------------------------------------------------------


def test_include_relative_to_including_file_with_globs_and_braces(tmp_path: Path) -> None:
    write(tmp_path / "conf.d" / "b.conf", "b_kw 1\ninclude ../more/*.conf\n")
    write(tmp_path / "conf.d" / "a.conf", "a_kw 1\n")
    write(tmp_path / "conf.d" / ".hidden.conf", "hidden 1\n")
    write(tmp_path / "more" / "z.conf", "z_kw 1\n")
    write(tmp_path / "extra" / "x.conf", "x_kw\n")
    write(tmp_path / "extra" / "y.conf", "y_kw\n")
    main = write(tmp_path / "main.conf", "top 1\ninclude conf.d/*.conf\nincludea extra/{y,x}.conf\nend\n")
    diag = Diagnostics()
    lines = read_lines(str(main), diag)
    assert [(str(ln.where).removeprefix(f"{tmp_path}/"), ln.tokens[0].text) for ln in lines] == [
        ("main.conf:1", "top"),
        ("conf.d/a.conf:1", "a_kw"),
        ("conf.d/b.conf:1", "b_kw"),
        ("conf.d/../more/z.conf:1", "z_kw"),
        ("extra/y.conf:1", "y_kw"),
        ("extra/x.conf:1", "x_kw"),
        ("main.conf:4", "end"),
    ]
    assert not diag.problems


def test_include_after_substitution_and_conditional(tmp_path: Path) -> None:
    write(tmp_path / "inc.conf", "inc\n")
    main = write(tmp_path / "main.conf", "$F=inc.conf\n@main include $F\n@other include nothing\n")
    assert [ln.raw for ln in read_lines(str(main), Diagnostics(), config_id="main")] == ["inc"]


def test_missing_plain_include_is_not_an_error(tmp_path: Path) -> None:
    main = write(tmp_path / "main.conf", "a\ninclude nope/*.conf\nb\n")
    diag = Diagnostics()
    assert len(read_lines(str(main), diag)) == 2
    assert [str(p) for p in diag] == [f"{main}:2: warning: include 'nope/*.conf': no file matches"]
    assert not diag.errors


@pytest.mark.parametrize("keyword", ["includea", "includew", "includem"])
def test_missing_checked_include_is_an_error(tmp_path: Path, keyword: str) -> None:
    main = write(tmp_path / "main.conf", f"a\n{keyword} nope/*.conf\n")
    diag = Diagnostics()
    read_lines(str(main), diag)
    assert problems(diag, Severity.ERROR) == [f"{main}:2: include 'nope/*.conf': no file matches"]


def test_strict_includes_makes_plain_include_checked(tmp_path: Path) -> None:
    main = write(tmp_path / "main.conf", "include nope.conf\n")
    diag = Diagnostics()
    read_lines(str(main), diag, strict_includes=True)
    assert problems(diag, Severity.ERROR) == [f"{main}:1: include 'nope.conf': no file matches"]


def test_unreadable_include_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    main = write(tmp_path / "main.conf", "a\ninclude sub\n")
    diag = Diagnostics()
    read_lines(str(main), diag)
    assert problems(diag) == [f"{main}:2: included '{tmp_path}/sub' is a directory, not a file"]


def test_include_without_permission_is_an_error(tmp_path: Path) -> None:
    """As root every file is readable: the read runs in a child without CAP_DAC_OVERRIDE/READ_SEARCH."""
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="pka-perm-") as tmp:
        base = Path(tmp)
        secret = write(base / "secret.conf", "x\n")
        secret.chmod(0)
        main = write(base / "main.conf", "a\n\ninclude secret.conf\n")
        code = (
            "from supervisor.config.diag import Diagnostics\n"
            "from supervisor.config.lexer import read_lines\n"
            "d = Diagnostics()\n"
            f"read_lines({str(main)!r}, d)\n"
            "print('\\n'.join(str(p) for p in d))\n"
        )
        caps = "-dac_override,-dac_read_search"
        drop = ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}"] if os.geteuid() == 0 else []
        out = subprocess.run(
            [*drop, sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True,
            cwd=str(Path(__file__).resolve().parents[3]),
        )
        assert out.stdout.splitlines() == [f"{main}:3: cannot read included file '{secret}': Permission denied"]


def test_include_loop_is_an_error_naming_the_chain(tmp_path: Path) -> None:
    main = tmp_path / "main.conf"
    write(tmp_path / "b.conf", "b\ninclude main.conf\n")
    write(main, "a\ninclude b.conf\ninclude main.conf\n")
    diag = Diagnostics()
    lines = read_lines(str(main), diag)
    assert [ln.raw for ln in lines] == ["a", "b"]
    assert problems(diag) == [
        f"{tmp_path}/b.conf:2: include loop: {main} -> {tmp_path}/b.conf -> {tmp_path}/main.conf;"
        " not included again",
        f"{main}:3: include loop: {main} -> {tmp_path}/main.conf; not included again",
    ]


def test_include_depth_is_capped(tmp_path: Path) -> None:
    for i in range(40):
        write(tmp_path / f"f{i}.conf", f"include f{i + 1}.conf\n")
    diag = Diagnostics()
    read_lines(str(tmp_path / "f0.conf"), diag)
    assert problems(diag) == [
        f"{tmp_path}/f31.conf:1: includes nest deeper than 32 files; '{tmp_path}/f32.conf' not included"
    ]


def test_missing_top_level_file_is_fatal_at_line_0(tmp_path: Path) -> None:
    diag = Diagnostics()
    assert read_lines(str(tmp_path / "none.conf"), diag) == []
    assert problems(diag, Severity.FATAL) == [
        f"{tmp_path}/none.conf:0: configuration file '{tmp_path}/none.conf' not found"
    ]


def test_top_level_directory_is_fatal(tmp_path: Path) -> None:
    diag = Diagnostics()
    read_lines(str(tmp_path), diag)
    assert [p.severity for p in diag] == [Severity.FATAL] and str(diag.problems[0].where) == f"{tmp_path}:0"


# -- robustness ---------------------------------------------------------------------------------------


def test_trailing_backslash_outside_definitions_is_a_warning() -> None:
    words, diag = lex("router_id r1 \\\nnext\n")
    assert words == [["router_id", "r1", "\\"], ["next"]]
    assert problems(diag, Severity.WARNING) == [
        "t.conf:1: warning: a trailing '\\' continues only a $NAME= definition; kept as a character"
    ]


def test_crlf_and_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "w.conf"
    path.write_bytes(b"router_id r1\r\nname \xff\r\n")
    diag = Diagnostics()
    lines = read_lines(str(path), diag)
    assert [ln.raw for ln in lines] == ["router_id r1", "name \ufffd"]
    assert problems(diag) == [f"{path}:2: warning: text is not valid UTF-8; undecodable bytes replaced"]


def test_random_input_never_raises() -> None:
    rng = random.Random(1234)
    alphabet = ["{", "}", '"', "'", "\\", "$", "${", "~SEQ(", "~LST(", "@", "@^", "#", "!", " ", "\n", "a",
                "X", "=", ",", ")", "(", "1", "0x", "include ", "_RANDOM", "_ENV", "\t", "\\\n"]  # fmt: skip
    for _ in range(400):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        diag = Diagnostics()
        lines = read_text(text, diag, base_dir="/nonexistent")
        assert all(isinstance(ln, Line) for ln in lines)
        build_tree(lines, diag)

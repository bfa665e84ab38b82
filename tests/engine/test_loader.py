"""loader: YAML rule files -> Ruleset; every problem it reports, by text, with the did-you-mean hints."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from logoutguard.engine import loader
from logoutguard.engine.engine import Engine
from logoutguard.engine.loader import DEFAULT_RULES_DIR, Problem, RulesetError, lint, load_ruleset
from logoutguard.engine.rules import SEVERITY_SCORES, Action, Phase
from logoutguard.engine.transaction import build_transaction

RULE = """
category: sqli
rules:
  - id: 1
    msg: one
    targets: [ARGS]
    operator: rx
    argument: "a"
    examples: {match: ["a"], no_match: ["b"]}
"""


def write(folder: Path, text: str, name: str = "r.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def rule_file(folder: Path, fields: str, top: str = "category: sqli", name: str = "r.yaml") -> Path:
    """A file with one rule: id 7 plus `fields` (YAML lines of the rule)."""
    body = textwrap.indent(textwrap.dedent(fields).strip(), "    ")
    return write(folder, f"{top}\nrules:\n  - id: 7\n{body}\n", name)


def problems_of(*paths: Path | str) -> list[str]:
    ruleset, problems = lint(list(paths))
    assert (ruleset is None) == bool(problems)
    return [str(p) for p in problems]


BASE = """
msg: m
targets: [ARGS]
operator: rx
argument: "a"
examples: {match: ["a"], no_match: ["b"]}
"""


def variant(**replace: str) -> str:
    """BASE with some fields replaced (value: the YAML text after `field: `) or removed (value "")."""
    lines = [line for line in textwrap.dedent(BASE).strip().splitlines() if line.split(":")[0] not in replace]
    lines += [f"{k}: {v}" for k, v in replace.items() if v]
    return "\n".join(lines)


# --- a good file ------------------------------------------------------------------------------------


def test_a_rule_takes_file_defaults_and_its_own_fields(tmp_path: Path) -> None:
    write(
        tmp_path,
        """
        category: xss
        paranoia: 2
        phase: 1
        rules:
          - id: 10
            msg: defaults
            targets: [ARGS, "!ARGS:safe", REQUEST_HEADERS:User-Agent]
            transforms: [lowercase, url_decode]
            operator: contains
            argument: x
            examples: {match: ["x"], no_match: ["y"]}
          - id: 11
            msg: own
            phase: 4
            paranoia: 3
            category: leak
            severity: warning
            tags: [a, b]
            scoring: false
            multi_match: true
            capture: true
            negate: true
            setvar: ["tx.n=+1"]
            targets: [RESPONSE_BODY]
            operator: streq
            argument: 5
            chain:
              - targets: [RESPONSE_STATUS]
                operator: eq
                argument: 200
            examples: {match: ["a"], no_match: ["5"]}
          - id: 12
            msg: disabled
            disabled: true
            targets: [ARGS]
            operator: rx
            argument: "("
            examples: {match: ["a"], no_match: ["b"]}
        """,
    )
    ruleset = load_ruleset([tmp_path])
    first, second = ruleset.rules
    assert (first.id, first.phase, first.paranoia, first.category) == (10, Phase.REQUEST_HEADERS, 2, "xss")
    assert (first.severity, first.score, first.scoring) == ("critical", 5, True)
    assert [str(t) for t in first.head.targets] == ["ARGS", "REQUEST_HEADERS:User-Agent"]
    assert [str(t) for t in first.head.exclusions] == ["ARGS:safe"]
    assert first.head.transforms == ("lowercase", "url_decode") and len(first.head.transform_fns) == 2
    assert (second.phase, second.paranoia, second.category, second.tags) == (
        Phase.RESPONSE_BODY,
        3,
        "leak",
        ("a", "b"),
    )
    assert (second.severity, second.score, second.scoring) == ("warning", 3, False)
    assert second.head.multi_match and second.head.capture and second.head.operator.negated
    assert second.head.operator.argument == "5"  # a number argument is text
    assert second.head.actions == (Action("setvar", "tx.n=+1"),)
    assert [link.operator.name for link in second.chain] == ["eq"]
    assert second.source == str(tmp_path / "r.yaml")
    assert ruleset.sources == (str(tmp_path / "r.yaml"),)


@pytest.mark.parametrize(("severity", "score"), sorted(SEVERITY_SCORES.items()))
def test_every_severity_of_the_one_table_loads_with_its_score(
    tmp_path: Path, severity: str, score: int
) -> None:
    rule_file(tmp_path, variant(severity=severity))
    (rule,) = load_ruleset([tmp_path]).rules
    assert (rule.severity, rule.score) == (severity, score)


def test_the_schema_accepts_exactly_the_severities_of_the_table() -> None:
    enum = loader._schema()["$defs"]["rule"]["properties"]["severity"]["enum"]
    assert enum == list(SEVERITY_SCORES)


def test_an_explicit_score_wins_over_the_severity(tmp_path: Path) -> None:
    rule_file(tmp_path, variant(severity="notice", score="9"))
    assert load_ruleset([tmp_path]).rules[0].score == 9


def test_folders_give_their_yaml_files_sorted_and_files_are_taken_as_given(tmp_path: Path) -> None:
    write(tmp_path, RULE.replace("id: 1", "id: 2"), "b.yml")
    write(tmp_path, RULE, "a.yaml")
    write(tmp_path, "not a rule file", "notes.txt")
    single = write(tmp_path / "..", RULE.replace("id: 1", "id: 3"), f"{tmp_path.name}-single.yaml")
    ruleset = load_ruleset([tmp_path, single])
    assert [r.id for r in ruleset.rules] == [1, 2, 3]


def test_the_shipped_rules_load() -> None:
    assert len(load_ruleset([DEFAULT_RULES_DIR])) > 200


# --- one PCRE dialect: what the CRS importer accepts, a YAML rule accepts -----------------------------


def judge(folder: Path, uri: str) -> list[int]:
    engine = Engine(load_ruleset([folder]), paranoia=4)
    return engine.inspect(build_transaction(method="GET", uri=uri, headers=[("Host", "x")])).rule_ids


def test_inline_flags_mid_pattern_load_and_behave_as_in_pcre(tmp_path: Path) -> None:
    # PCRE: (?i) set inside an alternative applies to the rest of it and to every later alternative of
    # the group, not to what came before it: "aB" and "C" match, "Ab" does not.
    rule_file(tmp_path, variant(targets="[ARGS:q]", argument='"^(?:a(?i)b|c)$"'))
    assert judge(tmp_path, "/?q=aB") == [7]
    assert judge(tmp_path, "/?q=C") == [7]
    assert judge(tmp_path, "/?q=Ab") == []
    assert judge(tmp_path, "/?q=ab") == [7]


def test_a_look_behind_with_alternatives_of_different_widths_loads_and_behaves_as_in_pcre(
    tmp_path: Path,
) -> None:
    # PCRE: (?<!ab|c)x is an x preceded neither by "ab" nor by "c".
    rule_file(tmp_path, variant(targets="[ARGS:q]", argument='"(?<!ab|c)x"'))
    assert judge(tmp_path, "/?q=zx") == [7]
    assert judge(tmp_path, "/?q=bx") == [7]
    assert judge(tmp_path, "/?q=abx") == []
    assert judge(tmp_path, "/?q=cx") == []


def test_dollar_is_the_very_end_as_modsecurity_compiles_it(tmp_path: Path) -> None:
    rule_file(tmp_path, variant(targets="[ARGS:q]", argument='"^a$"'))
    assert judge(tmp_path, "/?q=a") == [7]
    assert judge(tmp_path, "/?q=a%0a") == []  # PCRE_DOLLAR_ENDONLY


def test_key_regexes_are_pcre_too(tmp_path: Path) -> None:
    rule_file(tmp_path, variant(targets='["ARGS:/^id$/"]', argument='"x"'))
    assert judge(tmp_path, "/?ID=x") == [7]  # key regexes ignore case
    assert judge(tmp_path, "/?id%0a=x") == []  # `$` is the very end in a key regex too


def test_non_ascii_rule_text_is_matched_as_its_utf8_bytes(tmp_path: Path) -> None:
    rule_file(tmp_path, variant(targets='["REQUEST_HEADERS:X-Caf\u00e9"]', argument='"^caf\u00e9$"'))
    (rule,) = load_ruleset([tmp_path]).rules
    assert rule.head.operator.argument == "^caf\xc3\xa9$"
    assert rule.head.targets[0].key == "X-Caf\xc3\xa9"
    engine = Engine(load_ruleset([tmp_path]))
    tx = build_transaction(
        method="GET", uri="/", headers=[("Host", "x"), ("X-Caf\u00e9".encode(), "caf\u00e9".encode())]
    )
    assert engine.inspect(tx).rule_ids == [7]


# --- every problem the loader reports ---------------------------------------------------------------

# (rule fields, top of the file, the problems as printed after "<file> ")
RULE_PROBLEMS = [
    (variant(msg=""), "category: sqli", ["rule 7: 'msg' is a required property"]),
    (variant(bogus="1"), "category: sqli", ["rule 7: unknown field(s): 'bogus' was unexpected"]),
    (
        variant(paranoia="5"),
        "category: sqli",
        ["rule 7 field 'paranoia': 5 is greater than the maximum of 4"],
    ),
    (
        variant(severity="severe"),
        "category: sqli",
        [
            "rule 7 field 'severity': 'severe' is not one of "
            "['emergency', 'alert', 'critical', 'error', 'warning', 'notice', 'info', 'debug']"
        ],
    ),
    (
        variant(targets="[args]"),
        "category: sqli",
        ["rule 7 field 'targets[0]': 'args' does not match '^[!&]?[A-Z_]+(:.+)?$'"],
    ),
    (
        variant(examples='{match: [], no_match: ["b"]}'),
        "category: sqli",
        ["rule 7 field 'examples.match': [] should be non-empty"],
    ),
    (
        variant(),
        "description: no category",
        ["rule 7 field 'category': missing (set it on the rule or at the top of the file)"],
    ),
    (
        variant(targets='["!ARGS:a"]'),
        "category: sqli",
        ["rule 7 field 'targets': needs at least one target that is not an exclusion"],
    ),
    (
        variant(targets="[ARGZ]"),
        "category: sqli",
        ["rule 7 field 'targets[0]': unknown collection 'ARGZ' (did you mean 'ARGS'?)"],
    ),
    (
        variant(targets="[ZZZZZZ]"),
        "category: sqli",
        ["rule 7 field 'targets[0]': unknown collection 'ZZZZZZ'"],
    ),
    (
        variant(targets='["ARGS:/(/"]'),
        "category: sqli",
        [
            "rule 7 field 'targets[0]': bad key regex '/(/': bad regex '(': missing ), unterminated subpattern at position 0"
        ],
    ),
    (
        variant(transforms="[urldecod]"),
        "category: sqli",
        ["rule 7 field 'transforms[0]': unknown transformation 'urldecod' (did you mean 'url_decode'?)"],
    ),
    (
        variant(transforms="[none, qqqqqq]"),
        "category: sqli",
        ["rule 7 field 'transforms[1]': unknown transformation 'qqqqqq'"],
    ),
    (
        variant(operator="rxx"),
        "category: sqli",
        ["rule 7 field 'operator': unknown operator 'rxx' (did you mean 'rx'?)"],
    ),
    (variant(operator="zzzzzz"), "category: sqli", ["rule 7 field 'operator': unknown operator 'zzzzzz'"]),
    (
        variant(argument='"a(b"'),
        "category: sqli",
        ["rule 7 field 'argument': bad regex 'a(b': missing ), unterminated subpattern at position 1"],
    ),
    (
        variant(argument='"\\\\x{100}"'),
        "category: sqli",
        ["rule 7 field 'argument': bad regex '\\\\x{100}': \\x{100} is above 0xff (patterns match bytes)"],
    ),
    (
        variant(operator="eq", argument="x"),
        "category: sqli",
        ["rule 7 field 'argument': eq needs an integer or a %{macro}, not 'x'"],
    ),
    (
        variant() + "\nchain:\n  - targets: [ARGS]\n    operator: pm\n    argument: ' '",
        "category: sqli",
        ["rule 7 field 'chain[0].argument': pm needs at least one phrase (space-separated)"],
    ),
    (
        variant() + "\nchain:\n  - targets: [ARGZ]\n    transforms: [lowercas]\n    operator: rx",
        "category: sqli",
        [
            "rule 7 field 'chain[0].targets[0]': unknown collection 'ARGZ' (did you mean 'ARGS'?)",
            "rule 7 field 'chain[0].transforms[0]': unknown transformation 'lowercas' (did you mean 'lowercase'?)",
        ],
    ),
    (
        variant(examples='{target: "REQUEST_HEADERZ:x", match: ["a"], no_match: ["b"]}'),
        "category: sqli",
        [
            "rule 7 field 'examples.target': unknown collection 'REQUEST_HEADERZ' (did you mean 'REQUEST_HEADERS'?)"
        ],
    ),
]


@pytest.mark.parametrize(("fields", "top", "expected"), RULE_PROBLEMS)
def test_each_rule_problem_names_file_rule_field_and_reason(
    tmp_path: Path, fields: str, top: str, expected: list[str]
) -> None:
    file = rule_file(tmp_path, fields, top)
    assert problems_of(tmp_path) == [f"{file} {text}" for text in expected]


def test_a_phrase_file_that_is_missing_names_the_paths_tried(tmp_path: Path) -> None:
    file = rule_file(tmp_path, variant(operator="pm_from_file", argument="words.data"))
    tried = f"{tmp_path / 'words.data'}, {tmp_path / 'data' / 'words.data'}"
    assert problems_of(file) == [
        f"{file} rule 7 field 'argument': phrase file 'words.data' not found (tried {tried})"
    ]


def test_a_rule_whose_optional_operator_is_not_installed_is_left_out_saying_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not a problem (a plain `pip install logoutguard` must load the shipped rules): the rule is off."""
    monkeypatch.delitem(loader.OPERATORS, "detect_sqli", raising=False)
    file = rule_file(tmp_path, variant(operator="detect_sqli"))
    write(
        tmp_path,
        "category: sqli\nrules:\n  - id: 8\n" + textwrap.indent(BASE.strip(), "    ") + "\n",
        "s.yaml",
    )
    ruleset, problems = lint([tmp_path])
    assert problems == [] and ruleset is not None
    assert [r.id for r in ruleset.rules] == [8]
    assert ruleset.off == (
        (
            7,
            f"{file} rule 7 field 'operator': operator 'detect_sqli' needs logoutguard[libinjection] "
            "(pip install 'logoutguard[libinjection]'): rule off",
        ),
    )
    # with another problem the rule is a problem as before (and not also off)
    bad = rule_file(tmp_path, variant(operator="detect_sqli", transforms="[lowercas]"))
    assert problems_of(bad) == [
        f"{bad} rule 7 field 'transforms[0]': unknown transformation 'lowercas' (did you mean 'lowercase'?)"
    ]


def test_file_level_problems(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    bad_yaml = write(tmp_path, "rules: [\n", "a.yaml")
    not_mapping = write(tmp_path, "- 1\n- 2\n", "b.yaml")
    not_utf8 = tmp_path / "c.yaml"
    not_utf8.write_bytes(b"rules: []\n# \xff\xfe\n")
    unknown_top = write(tmp_path, "rules: []\nversion: 2\n", "d.yaml")
    no_rules = write(tmp_path, "category: sqli\n", "e.yaml")
    found = problems_of(missing, bad_yaml, not_mapping, not_utf8, unknown_top, no_rules)
    assert found[0] == f"{missing}: no such file or folder"
    assert found[1].startswith(f"{bad_yaml}: not valid YAML: while parsing a flow")
    assert "\n" not in found[1]
    assert found[2] == f"{not_mapping}: a rule file is a mapping with a 'rules' list"
    assert found[3].startswith(f"{not_utf8}: cannot read: 'utf-8' codec can't decode byte 0xff")
    assert found[4] == f"{unknown_top}: Additional properties are not allowed ('version' was unexpected)"
    assert found[5] == f"{no_rules}: 'rules' is a required property"
    assert len(found) == 6


def test_no_rule_files_at_all(tmp_path: Path) -> None:
    assert problems_of(tmp_path) == [f"{tmp_path}: no rule files found"]
    assert problems_of() == ["(none): no rule files found"]


def test_a_duplicate_id_names_both_files(tmp_path: Path) -> None:
    first = write(tmp_path, RULE, "a.yaml")
    second = write(tmp_path, RULE, "b.yaml")
    assert problems_of(tmp_path) == [f"{second} rule 1 field 'id': duplicate id: already defined in {first}"]


def test_lint_collects_the_problems_of_every_rule(tmp_path: Path) -> None:
    write(
        tmp_path,
        """
        category: sqli
        rules:
          - {id: 1, msg: a, targets: [ARGZ], operator: rx, argument: a, examples: {match: [a], no_match: [b]}}
          - {id: 2, msg: b, targets: [ARGS], operator: rx, argument: a, examples: {match: [a], no_match: [b]}}
          - {id: 3, msg: c, targets: [ARGS], operator: rxx, argument: a, examples: {match: [a], no_match: [b]}}
        """,
    )
    file = tmp_path / "r.yaml"
    assert problems_of(tmp_path) == [
        f"{file} rule 1 field 'targets[0]': unknown collection 'ARGZ' (did you mean 'ARGS'?)",
        f"{file} rule 3 field 'operator': unknown operator 'rxx' (did you mean 'rx'?)",
    ]


def test_rulesets_error_carries_every_problem_and_shows_twenty() -> None:
    problems = [Problem("f.yaml", n, "msg", "bad") for n in range(25)]
    error = RulesetError(problems)
    text = str(error)
    assert error.problems == problems
    assert text.startswith("25 problem(s) in rule files:\nf.yaml rule 0 field 'msg': bad\n")
    assert "f.yaml rule 19 field 'msg': bad" in text and "rule 20 " not in text
    assert text.endswith("\n... and 5 more")


def test_load_ruleset_raises_with_the_problems(tmp_path: Path) -> None:
    file = rule_file(tmp_path, variant(operator="rxx"))
    with pytest.raises(RulesetError) as excinfo:
        load_ruleset([file])
    assert [str(p) for p in excinfo.value.problems] == [
        f"{file} rule 7 field 'operator': unknown operator 'rxx' (did you mean 'rx'?)"
    ]


@pytest.mark.parametrize(
    ("problem", "text"),
    [
        (Problem("f.yaml", None, "", "r"), "f.yaml: r"),
        (Problem("f.yaml", 5, "", "r"), "f.yaml rule 5: r"),
        (Problem("f.yaml", None, "x", "r"), "f.yaml field 'x': r"),
        (Problem("f.yaml", 5, "chain[0].argument", "r"), "f.yaml rule 5 field 'chain[0].argument': r"),
    ],
)
def test_a_problem_reads_file_rule_field_reason(problem: Problem, text: str) -> None:
    assert str(problem) == text

"""The README and docs/ stay true: links resolve, named targets and tests exist.

A fresh clone is the reader's view: every relative link in README.md and
docs/*.md must reach a file in the repository (and a heading, when it names
an anchor), every ``make X`` shown in code must be a target of the Makefile,
every test named must exist, and the README stays short enough to read in
a few minutes. The checkers are tested on broken samples too, so a check
that passes vacuously is caught.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench import page

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 220

_FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)
_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:[ \t]*<?([^\s>]+)>?", re.MULTILINE)  # [name]: target
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
# `make` at the start of a command: after a line start, a prompt, a pipe or
# `&&`, or variable assignments (`N=20 make soak-subscriber`).
_MAKE = re.compile(
    r"(?:^|[$;&|(]\s*|\s)(?:[A-Z_][A-Z0-9_]*=\S*\s+)*make\s+([a-z](?:[a-z0-9_-]*[a-z0-9])?)"
    r"(?![\w*-])",  # `make chaos-*` stands for several targets, not one
    re.MULTILINE,
)
_TEST_NAME = re.compile(r"(?<![/\w])(test_[a-z0-9_]+)(?!\w|\.py)")  # not a test file's name
_TARGET = re.compile(r"^([A-Za-z0-9_.-]+)[ \t]*:(?!=)", re.MULTILINE)


@dataclass(frozen=True)
class Broken:
    """One thing a reader would find broken: where, and what."""

    source: str
    what: str

    def __str__(self) -> str:
        return f"{self.source} {self.what}"


def code_of(text: str) -> list[str]:
    """The fenced blocks and inline code spans: where commands are shown."""
    blocks = [m.group(0) for m in _FENCE.finditer(text)]
    prose = _FENCE.sub("", text)
    return blocks + [m.group(2) for m in _CODE_SPAN.finditer(prose)]


def prose_of(text: str) -> str:
    """The text with code removed, so a link shown as code is not taken for one."""
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text, lower case, punctuation dropped."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = text.replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading's anchor, duplicates numbered as GitHub numbers them."""
    seen: dict[str, int] = {}
    found = set()
    for m in _HEADING.finditer(_FENCE.sub("", text)):
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def broken_links(path: Path, text: str, root: Path = ROOT) -> list[Broken]:
    """Relative links in ``text`` (the file ``path``) that reach no file or heading."""
    broken = []
    prose = prose_of(text)
    for target in [m.group(1) for m in (*_LINK.finditer(prose), *_REFERENCE.finditer(prose))]:
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(root)}: link {target!r}"
        if not resolved.is_relative_to(root.resolve()) or not resolved.exists():
            broken.append(Broken(where, "reaches no file in the repository"))
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved.read_text()):
            broken.append(Broken(where, f"names no heading of {resolved.name}"))
    return broken


def make_targets(makefile: str) -> set[str]:
    """Every target a Makefile defines."""
    return {m.group(1) for m in _TARGET.finditer(makefile)}


def missing_targets(path: Path, text: str, targets: set[str], root: Path = ROOT) -> list[Broken]:
    """``make X`` shown in code where the Makefile has no target X."""
    named = {t for code in code_of(text) for t in _MAKE.findall(code)}
    return [
        Broken(f"{path.relative_to(root)}: make {t}", "is not a target of the Makefile")
        for t in sorted(named - targets)
    ]


def missing_tests(path: Path, text: str, tests: set[str], root: Path = ROOT) -> list[Broken]:
    """Tests named in code (a name, or the start of one ending in …) that do not exist."""
    named = {t for code in code_of(text) for t in _TEST_NAME.findall(code)}
    return [
        Broken(f"{path.relative_to(root)}: {t}", "is not the name (or start) of any test")
        for t in sorted(named)
        if not any(test.startswith(t) for test in tests)
    ]


def _test_functions() -> set[str]:
    return {
        name
        for source in (ROOT / "tests").rglob("test_*.py")
        for name in re.findall(r"^\s*(?:async )?def (test_\w+)", source.read_text(), re.MULTILINE)
    }


def _none(broken: list[Broken]) -> None:
    """Fail naming every broken thing, one a line (pytest would cut a list short)."""
    assert not broken, "\n" + "\n".join(map(str, broken))


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(ROOT)) for p in paths]


@pytest.mark.parametrize("doc", DOCS, ids=_ids(DOCS))
def test_every_relative_link_reaches_a_file_and_heading(doc: Path) -> None:
    _none(broken_links(doc, doc.read_text()))


@pytest.mark.parametrize("doc", DOCS, ids=_ids(DOCS))
def test_every_make_target_shown_exists(doc: Path) -> None:
    targets = make_targets((ROOT / "Makefile").read_text())
    _none(missing_targets(doc, doc.read_text(), targets))


@pytest.mark.parametrize("doc", DOCS, ids=_ids(DOCS))
def test_every_test_named_exists(doc: Path) -> None:
    _none(missing_tests(doc, doc.read_text(), _test_functions()))


def test_the_readme_reads_in_five_minutes() -> None:
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail into docs/"


def test_the_docs_index_lists_every_page() -> None:
    index = (ROOT / "docs" / "README.md").read_text()
    linked = {(ROOT / "docs" / m.group(1)).resolve() for m in _LINK.finditer(prose_of(index))}
    pages = {p.resolve() for p in DOCS if p.parent.name == "docs" and p.name != "README.md"}
    assert sorted(p.name for p in pages - linked) == []


def test_the_checkers_catch_what_a_reader_would(tmp_path: Path) -> None:
    """Each checker on a broken sample: a dead file, a dead anchor, a gone target, a gone test."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "there.md").write_text("# A heading: with `code`\n\n## Twice\n## Twice\n")
    doc = tmp_path / "README.md"
    text = (
        "[ok](docs/there.md#a-heading-with-code) [ok](docs/there.md#twice-1) [web](https://x.y)\n"
        "[gone](docs/missing.md) [bad anchor](docs/there.md#nowhere) [up](../outside.md)\n"
        "`[not a link](nowhere.md)`\n\n[ref]: docs/there.md\n[dead ref]: docs/gone.md#x\n\n"
        "```console\n$ make up\n$ N=3 make soak && make gone\n```\n"
        "Run `make chaos` or `make up` or `make chaos-*`; `test_exists_fully` and `test_exists…`"
        " but `test_gone`, in `tests/test_file.py` and `test_file.py`.\n"
    )
    links = broken_links(doc, text, root=tmp_path)
    assert [b.source.split("link ")[1] for b in links] == [
        "'docs/missing.md'",
        "'docs/there.md#nowhere'",
        "'../outside.md'",
        "'docs/gone.md#x'",
    ]
    targets = make_targets("up:  ## start\nsoak: x\n.PHONY: up\nVAR := 1\nX ?= 2\n")
    assert targets == {"up", "soak", ".PHONY"}
    assert [b.source for b in missing_targets(doc, text, targets, root=tmp_path)] == [
        "README.md: make chaos",
        "README.md: make gone",
    ]
    tests = {"test_exists_fully"}
    assert [b.source for b in missing_tests(doc, text, tests, root=tmp_path)] == [
        "README.md: test_gone"
    ]


def test_the_benchmarks_page_has_one_figures_section_that_make_bench_rewrites(
    tmp_path: Path,
) -> None:
    """What `make bench` writes lands between the markers, and the prose around them stays."""
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    head, tail = text.split(page.START)[0], text.split(page.END)[1]
    figures = json.loads(
        json.dumps(
            {
                "machine": {
                    "date": "2031-01-02T03:04:05+00:00",
                    "cpu": "a test CPU",
                    "cores": 2,
                    "memory_gib": 1.0,
                    "kernel": "6.1",
                    "python": "3.13.0",
                    "temporalio": "1.35.0",
                    "temporal_cli": "temporal version 1.9.1",
                },
                "command": "BENCH_SCALE=1 make bench",
                "scale": 1.0,
                "minutes": 11.6,
                "tables": [{"title": "a table", "rows": ["p50 p99", "18 ms 23 ms"]}],
            }
        )
    )
    copy = tmp_path / "benchmarks.md"
    copy.write_text(text)
    page.write_page(figures, copy)
    written = copy.read_text()
    assert written.startswith(head) and written.endswith(tail)
    section = written.split(page.START)[1].split(page.END)[0]
    for shown in ("`BENCH_SCALE=1 make bench`", "2031-01-02", "a test CPU", "18 ms 23 ms"):
        assert shown in section
    assert "2026-11-26" not in section  # the old figures are gone, not appended to
    page.write_page(figures, copy)
    assert copy.read_text() == written  # a second run replaces, never duplicates

    copy.write_text(text.replace(page.END, ""))
    with pytest.raises(page.PageError, match="marker lines"):
        page.write_page(figures, copy)

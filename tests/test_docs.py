"""Every figure in README.md and the docs names its results file, and the file holds the figure.

The project's rule: a number in the README or the docs comes from a results file in ``benchmarks/results/``,
written by a benchmark script in the repository. No file, no figure. These checks read the Markdown and the JSON
only (no imports of the library, well under a second):

- every results file cited (``benchmarks/results/X.json``, ``results/X.json`` or a bare ``X.json`` that looks
  like one) exists; templates such as ``serve_load_<date>.json`` are allowed;
- every paragraph, list item or table row that holds a measured figure (:data:`FIGURE_PATTERNS`) cites a results
  file in the same unit. A list item also counts the citations of its parent items and of the paragraph that leads
  into its list; a table row those of its table's header row and of the paragraph or item right above the table.
  A few settings that look like figures are allowed by name (:data:`ALLOWED_PHRASES`);
- every number in a table row is found in the results files that row cites (or, failing that, its header or the
  line above its table), rounded to the precision shown; percentages also as fractions, and in a cell with ``×`` or
  ``%`` also as the ratio of two values stored under the same key (the row label's whole numbers are settings and
  are not looked up);
- relative links between the README and the docs resolve, anchors included.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]

# --- what counts as a measured figure ------------------------------------------------------------------------

_NUMBER = r"\d[\d,]*(?:\.\d+)?"
#: A number with one of these shapes is a measurement: a speed, a ratio, a share, a difference in points, a memory
#: size, a duration, or a score written as 0.xx (accuracy, F1, agreement, p-value).
FIGURE_PATTERNS = {
    "speed": re.compile(_NUMBER + r"\s?(?:samples/s|texts/s|tokens/s|reviews/s|[GT]FLOP/s)"),
    "ratio": re.compile(r"\d(?:\.\d+)?[×x](?![\w\d])"),
    "percent": re.compile(_NUMBER + r"\s?%"),
    "points": re.compile(_NUMBER + r"\s+points?\b"),
    "memory": re.compile(_NUMBER + r"\s?(?:[KMG]B|[MG]iB)\b"),
    "duration": re.compile(_NUMBER + r"\s?(?:µs|ms|s|seconds?|minutes?|min|hours?)(?![\w/])"),
    "score": re.compile(r"(?<![\d.])0\.\d{2,4}(?!\d)"),
}
#: Durations in code-block comments (``# about 25 minutes``) are claims about the machine as well.
COMMENT_DURATION = re.compile(_NUMBER + r"\s?(?:seconds?|minutes?|hours?)\b")

#: Numbers that look like figures but are settings, defaults or quotes from elsewhere. Each entry is
#: (file, a regex of the phrase, why); the phrase is taken out of its unit before the figure check, and every
#: entry must still match something (a stale entry fails the test).
ALLOWED_PHRASES: list[tuple[str, str, str]] = [
    # Statistics settings: confidence levels, test levels and the accuracy margin, in any file.
    ("*", r"\b(?:90|95)% (?:t )?(?:interval|CI|bound)s?\b", "a confidence level, not a measurement"),
    ("*", r"at (?:the )?5%(?: level)?", "a significance level"),
    ("*", r"default 0\.5 points", "a setting: the default equivalence margin"),
    ("docs/compare.md", r"cross 5% by chance", "a significance level"),
    # Settings and defaults that carry a unit.
    ("README.md", r"validation_fraction` \(10%\)", "the default validation share"),
    ("docs/performance.md", r"every 50 ms", "the RSS sampling interval"),
    ("docs/methods.md", r"every 50 ms", "the RSS sampling interval"),
    ("docs/serving.md", r"\| 30 s \|", "the default --graceful-timeout"),
    ("docs/serving.md", r"over the last 10 s", "the window of a Prometheus rate"),
    ("docs/serving.md", r"\| 75 s \(nginx's\) \|", "the default --keep-alive"),
    ("docs/serving.md", r"\(httpx 5 s, AWS ALB 60 s\)", "other tools' documented idle timeouts"),
    ("docs/serving.md", r"uvicorn's default of 5 s", "uvicorn's documented default"),
    ("docs/real-world-text.md", r"mean ECE of at most 1\.0% after scaling", "the issue's calibration target"),
    ("docs/tune.md", r"every 60 s, 3 minutes' grace", "Optuna's heartbeat settings"),
    ("docs/performance.md", r"default 0\.99 for fp32, 0\.98 for int8", "the parity thresholds"),
    ("README.md", r"default 0\.99, int8 0\.98", "the parity thresholds"),
    ("docs/performance.md", r"at least 1\.3× faster", "the bf16 threshold"),
    ("docs/performance.md", r"speed-up of 1\.3× or more", "the bf16 threshold"),
    ("docs/performance.md", r"6% warmup and\s+weight decay 0\.01", "distiltune's training defaults"),
    ("docs/compare.md", r"near 50% on a\s+balanced binary task", "chance level, not a measurement"),
    # Not ours.
    ("docs/methods.md", r"0\.60–0\.66 in the literature", "published figures"),
]

# --- what counts as a citation -------------------------------------------------------------------------------

_NAME = r"[\w.<>*…{}-]+"
CITED_PATH = re.compile(r"(?:benchmarks/)?results/(" + _NAME + r")")
BARE_JSON = re.compile(r"(?<![\w/.<>*…{}-])(" + _NAME + r"\.jsonl?)\b")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@cache
def results_prefixes() -> tuple[str, ...]:
    """Name prefixes of results files: a benchmark script's name, or an existing file's name up to its date."""
    stems = {path.stem for path in (ROOT / "benchmarks").glob("*.py")}
    for path in RESULTS.iterdir():
        match = re.match(r"([a-z_]+?)_(?=\d|[a-z]+_\d)", path.name)
        if match:
            stems.add(match.group(1))
    return tuple(sorted(f"{stem}_" for stem in stems))


def looks_like_results_file(name: str) -> bool:
    return bool(DATE.search(name)) or "<" in name or name.startswith(results_prefixes())


def is_template(name: str) -> bool:
    return any(mark in name for mark in "<>*{}")


def citations(text: str) -> set[str]:
    """Results-file names cited in ``text`` (templates included)."""
    names = {match.group(1).rstrip(".") for match in CITED_PATH.finditer(text)}
    names |= {match.group(1) for match in BARE_JSON.finditer(text) if looks_like_results_file(match.group(1))}
    return {name for name in names if name.endswith((".json", ".jsonl")) or is_template(name)}


# --- Markdown as units ---------------------------------------------------------------------------------------


@dataclass
class Unit:
    """A paragraph, list item, table row or code-block comment of a doc file."""

    path: Path
    line: int
    kind: str  # paragraph | item | row | header | comment
    text: str
    indent: int = 0
    parents: list[Unit] = field(default_factory=list)  # enclosing list items
    above: Unit | None = None  # table rows: the paragraph or item above the table; list items: the lead-in
    header: Unit | None = None  # for table rows: the table's header row

    @property
    def where(self) -> str:
        return f"{relative(self.path)}:{self.line}"

    def cited(self) -> set[str]:
        own = citations(self.text)
        for parent in self.parents:
            own |= citations(parent.text)
        if self.above is not None:
            own |= self.above.cited()
        if self.header is not None:
            own |= citations(self.header.text)
        return own


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


LIST_ITEM = re.compile(r"^(\s*)(?:[-*]|\d+\.)\s+")
FENCE = re.compile(r"^\s*(```|~~~)")


def parse(path: Path) -> list[Unit]:
    """Split a Markdown file into units. Block quotes are read as if unquoted."""
    lines = [re.sub(r"^\s*> ?", "", line) for line in path.read_text(encoding="utf-8").splitlines()]
    units: list[Unit] = []
    current: Unit | None = None
    open_items: list[Unit] = []
    last_block: Unit | None = None  # the last paragraph or item, for the table that follows it
    table_above: Unit | None = None
    table_header: Unit | None = None
    list_lead: Unit | None = None  # the paragraph right before the current top-level list
    in_table = False
    in_fence = False
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if FENCE.match(line):
            in_fence = not in_fence
            current = None
            continue
        if in_fence:
            if "#" in line:
                comment = line.split("#", 1)[1]
                units.append(Unit(path, number, "comment", comment))
            continue
        if stripped.startswith("|"):
            if not in_table:
                in_table, table_above, table_header = True, last_block, None
                kind = "header"
            elif re.fullmatch(r"\|[\s:|-]+\|?", stripped):
                continue
            else:
                kind = "row"
            indent = len(line) - len(line.lstrip())
            parents = [item for item in open_items if item.indent < indent] if indent else []
            row = Unit(path, number, kind, stripped, indent, parents, table_above, table_header)
            table_header = table_header or row
            units.append(row)
            current = None
            continue
        if in_table:  # the next table needs a line of its own above it
            in_table, last_block = False, None
        if not stripped:
            current = None
            continue
        if stripped.startswith("#"):
            current, open_items, last_block, list_lead = None, [], None, None
            continue
        item = LIST_ITEM.match(line)
        indent = len(line) - len(line.lstrip())
        if item:
            open_items = [parent for parent in open_items if parent.indent < indent]
            if not open_items and (last_block is None or (last_block.kind == "paragraph" and not last_block.indent)):
                list_lead = last_block
            current = Unit(path, number, "item", stripped, indent, list(open_items), list_lead)
            open_items.append(current)
            units.append(current)
            last_block = current
        elif current is not None:
            current.text += " " + stripped
        else:
            if indent == 0:
                open_items = []
            parents = [parent for parent in open_items if parent.indent < indent]
            current = Unit(path, number, "paragraph", stripped, indent, parents)
            units.append(current)
            last_block = current
    return units


@cache
def all_units() -> tuple[Unit, ...]:
    return tuple(unit for path in DOC_FILES for unit in parse(path))


# --- figures in a unit ---------------------------------------------------------------------------------------

CODE_SPAN = re.compile(r"`[^`]*`")
LINK_TARGET = re.compile(r"\]\([^)]*\)")


def prose(text: str) -> str:
    """The text a reader takes as claims: without code spans, link targets and dates."""
    return DATE.sub(" ", LINK_TARGET.sub("]", CODE_SPAN.sub(" ", text)))


def allowed_phrases(path: Path) -> list[re.Pattern[str]]:
    name = relative(path)
    return [re.compile(phrase) for file, phrase, _ in ALLOWED_PHRASES if file in ("*", name)]


def figures(unit: Unit) -> list[str]:
    """The measured figures in a unit (after taking out its allowed phrases)."""
    text = unit.text
    for phrase in allowed_phrases(unit.path):
        text = phrase.sub(" ", text)
    if unit.kind == "comment":
        return [match.group(0) for match in COMMENT_DURATION.finditer(text)]
    if unit.kind == "header":
        return []
    text = prose(text)
    return [match.group(0) for pattern in FIGURE_PATTERNS.values() for match in pattern.finditer(text)]


# --- numbers in results files --------------------------------------------------------------------------------


@cache
def stored_values(name: str) -> tuple[frozenset[float], dict[str, tuple[float, ...]]]:
    """Every number in a results file (values, numeric keys, numbers inside strings), and the values by key."""
    path = RESULTS / name
    text = path.read_text(encoding="utf-8")
    documents = [json.loads(line) for line in text.splitlines() if line.strip()] if name.endswith(".jsonl") else []
    if not documents:
        documents = [json.loads(text)]
    values: set[float] = set()
    by_key: dict[str, list[float]] = {}

    def walk(node: Any, key: str) -> None:
        if isinstance(node, bool) or node is None:
            return
        if isinstance(node, int | float):
            values.add(abs(float(node)))
            by_key.setdefault(key, []).append(abs(float(node)))
        elif isinstance(node, str):
            values.update(abs(float(n)) for n in re.findall(r"\d+(?:\.\d+)?", node))
        elif isinstance(node, dict):
            for child_key, child in node.items():
                values.update(float(n) for n in re.findall(r"\d+(?:\.\d+)?", str(child_key)))
                walk(child, str(child_key))
        elif isinstance(node, list):
            for child in node:
                walk(child, key)

    for document in documents:
        walk(document, "")
    return frozenset(values), {key: tuple(sorted(set(v))) for key, v in by_key.items()}


TABLE_NUMBER = re.compile(r"(?<![\w.,])[+−-]?(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?![\w.]|\d)")
SCIENTIFIC = re.compile(r"\d+(?:\.\d+)?e[+-]?\d+")


def table_numbers(cell: str) -> Iterator[tuple[float, int]]:
    """The numbers shown in a table cell, with their decimals; settings in code spans left out."""
    text = SCIENTIFIC.sub(" ", prose(cell))
    for match in TABLE_NUMBER.finditer(text):
        whole, fraction = match.group(1), match.group(2) or ""
        yield float(whole.replace(",", "") + fraction), max(0, len(fraction) - 1)


def shown(value: float, shown_value: float, decimals: int) -> bool:
    return abs(value - shown_value) <= 0.5 * 10**-decimals + 1e-9


def found_in(number: float, decimals: int, names: set[str], derived: bool) -> bool:
    """Whether a shown number is in one of the files: as stored, as a percentage of a stored fraction, or (for a
    ratio or a share, ``derived``) as one stored value over another stored under the same key, or its percentage."""
    for name in names:
        values, by_key = stored_values(name)
        if any(shown(v, number, decimals) or shown(100 * v, number, decimals) for v in values):
            return True
        if derived:
            for group in by_key.values():
                for a in group:
                    for b in group:
                        if b and (shown(a / b, number, decimals) or shown(100 * a / b, number, decimals)):
                            return True
    return False


def unmatched_table_numbers(unit: Unit) -> list[str]:
    sources = citations(unit.text) or unit.cited()  # a row that names its own files is checked against those
    names = {name for name in sources if not is_template(name) and (RESULTS / name).is_file()}
    if unit.kind != "row" or not names:
        return []
    missing = []
    for column, cell in enumerate(unit.text.strip().strip("|").split("|")):
        derived = "×" in cell or "%" in cell
        for number, decimals in table_numbers(cell):
            if column == 0 and decimals == 0:
                continue  # the row's label: its whole numbers are settings (r 8, 20 tokens, 50 steps, seed 42)
            if not found_in(number, decimals, names, derived):
                missing.append(f"{number:.{decimals}f}")
    return missing


# --- the checks ----------------------------------------------------------------------------------------------


def cited_files_that_do_not_exist(units: tuple[Unit, ...]) -> list[str]:
    problems = []
    for unit in units:
        for name in sorted(citations(unit.text)):
            if not is_template(name) and not (RESULTS / name).is_file():
                problems.append(f"{unit.where}: cites {name}, which is not in benchmarks/results/")
    return problems


def uncited_figures(units: tuple[Unit, ...]) -> list[str]:
    problems = []
    for unit in units:
        found = figures(unit)
        if found and not unit.cited():
            problems.append(f"{unit.where}: {', '.join(found[:4])} without a results file ({unit.text[:70]}...)")
    return problems


def wrong_table_numbers(units: tuple[Unit, ...]) -> list[str]:
    problems = []
    for unit in units:
        missing = unmatched_table_numbers(unit)
        if missing:
            cited = ", ".join(sorted(unit.cited()))
            problems.append(f"{unit.where}: {', '.join(missing)} not in {cited} ({unit.text[:60]}...)")
    return problems


def test_every_cited_results_file_exists() -> None:
    assert cited_files_that_do_not_exist(all_units()) == []


def test_every_figure_names_its_results_file() -> None:
    assert uncited_figures(all_units()) == []


def test_table_figures_are_in_the_files_they_cite() -> None:
    assert wrong_table_numbers(all_units()) == []


def test_every_allowed_phrase_is_still_used() -> None:
    texts = {relative(path): " ".join(path.read_text(encoding="utf-8").split()) for path in DOC_FILES}
    stale = [
        (file, phrase)
        for file, phrase, _ in ALLOWED_PHRASES
        if not any(re.search(phrase, text) for name, text in texts.items() if file in ("*", name))
    ]
    assert stale == []


# --- links ---------------------------------------------------------------------------------------------------

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
#: Links that are right where they stand although they do not resolve from their file: (file, target, why).
ALLOWED_LINKS = [("docs/serving.md", "docs/serving.md", "a quoted README section: relative to the repository root")]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    found = set()
    in_fence = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
        if in_fence or not line.startswith("#"):
            continue
        base = slug(line.lstrip("#"))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return frozenset(found)


def broken_links(paths: list[Path]) -> list[str]:
    problems = []
    for path in paths:
        name = relative(path)
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for match in LINK.finditer(line):
                target = match.group(1)
                if re.match(r"[a-z]+:", target) or (name, target) in {(f, t) for f, t, _ in ALLOWED_LINKS}:
                    continue
                file_part, _, anchor = target.partition("#")
                resolved = (path.parent / file_part).resolve() if file_part else path
                if not resolved.exists():
                    problems.append(f"{name}:{number}: {target} does not exist")
                elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                    problems.append(f"{name}:{number}: {target}: no heading with anchor #{anchor}")
    return problems


def test_relative_links_resolve() -> None:
    assert broken_links(DOC_FILES) == []


# --- the checks can fail -------------------------------------------------------------------------------------


def units_of(tmp_path: Path, markdown: str) -> tuple[Unit, ...]:
    path = tmp_path / "probe.md"
    path.write_text(markdown, encoding="utf-8")
    return tuple(parse(path))


def test_checks_catch_a_made_up_file_an_uncited_figure_and_a_wrong_number(tmp_path: Path) -> None:
    made_up = units_of(tmp_path, "Training ran at 10.1 samples/s (`benchmarks/results/2026-13-01_nowhere.json`).\n")
    assert cited_files_that_do_not_exist(made_up) and not uncited_figures(made_up)
    uncited = units_of(tmp_path, "Training ran at 10.1 samples/s on a quiet machine.\n\n- int8 is 4.1× faster\n")
    assert len(uncited_figures(uncited)) == 2
    table = (
        "Raw figures: `benchmarks/results/2026-11-30_vm-amx-rounds5.json`.\n\n"
        "| | naive | distiltune | ratio |\n|---|---|---|---|\n"
        "| train samples/s | 1.58 | {value} | 6.4× |\n"
    )
    assert wrong_table_numbers(units_of(tmp_path, table.format(value="10.1"))) == []
    assert wrong_table_numbers(units_of(tmp_path, table.format(value="11.1")))
    docs = ROOT / "docs"
    link = tmp_path / "probe.md"
    link.write_text(f"[x]({docs}/performance.md#no-such-heading) [y](nowhere.md) [z]({docs}/performance.md#results)\n")
    assert len(broken_links([link])) == 2


@pytest.mark.parametrize("name", ["serve_load_<date>.json", "tune_*.json", "demo_<date>_<host>.json"])
def test_templated_names_are_not_required_to_exist(name: str) -> None:
    assert is_template(name) and looks_like_results_file(name)

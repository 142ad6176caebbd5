#!/usr/bin/env python3
"""Keeps docs/conformance.md, the coverage table of asyncio 3.13's names
(issue 27), true to itself and to the README.

Checks, printing every mismatch before failing:
  - every row of the table has one of the four statuses, and no name has
    two rows;
  - the totals at the top match the rows;
  - a "different" row links the paragraph of docs/semantics.md that explains
    it, a "not applicable" row says why, and every link into semantics.md
    leads to one of its headings;
  - every name of the running Python's `asyncio.__all__` (plus 3.12's and
    3.13's additions) has a row;
  - what a "same" or "different" row names in Rust exists: `asyncio::X` in
    the facade's re-exports, `Type::method` as a facade type and a `fn method`
    in some crate (a rename that forgets the table fails here);
  - the README's "What is there" section states the same totals and links
    the table, and says nothing is missing only when no row is missing;
    docs/README.md links the table.

`--update` first rewrites the totals (the table's and the README's) from the
rows, for after rows were added or changed.

Python 3.11+, standard library only; ci/check-docs.sh runs it.
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "docs" / "conformance.md"
SEMANTICS = ROOT / "docs" / "semantics.md"
README = ROOT / "README.md"
DOCS_README = ROOT / "docs" / "README.md"

STATUSES = ("same", "different", "not applicable", "missing")
HEADER = ["asyncio 3.13", "asyncio-rs", "status", "notes"]
# Names asyncio gained after 3.11 (the Python installed here): 3.12's
# factories, 3.13's QueueShutDown and EventLoop.
ADDED_AFTER_311 = [
    "eager_task_factory",
    "create_eager_task_factory",
    "QueueShutDown",
    "EventLoop",
]

errors = []


def fail(msg):
    errors.append(msg)


def cells(line):
    """The cells of a Markdown table row; `\\|` is a literal bar."""
    line = line.strip()
    if not (line.startswith("|") and line.endswith("|")):
        return None
    parts = re.split(r"(?<!\\)\|", line[1:-1])
    return [p.strip().replace("\\|", "|") for p in parts]


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped,
    spaces to hyphens."""
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def semantics_anchors():
    anchors = set()
    for line in SEMANTICS.read_text().splitlines():
        m = re.match(r"^#{1,6}\s+(.*)$", line)
        if m:
            anchors.add(slug(m.group(1)))
    return anchors


def parse_table(text):
    """Rows of the name tables (those with HEADER), as (line, name, status, notes)."""
    rows = []
    in_table = False
    for n, line in enumerate(text.splitlines(), 1):
        c = cells(line)
        if c is None:
            in_table = False
            continue
        if c == HEADER:
            in_table = True
            continue
        if not in_table or all(re.fullmatch(r":?-+:?", x) for x in c):
            continue
        if len(c) != 4:
            fail(f"conformance.md:{n}: a row with {len(c)} cells, not 4")
            continue
        rows.append((n, c[0], c[1], c[2], c[3]))
    return rows


def parse_totals(text):
    """The totals table under "## Totals": {status: count}, and "all"."""
    m = re.search(r"^## Totals\n(.*?)(?=^## )", text, re.S | re.M)
    if not m:
        fail('conformance.md: no "## Totals" section')
        return {}
    totals = {}
    for line in m.group(1).splitlines():
        c = cells(line)
        if c and len(c) == 2 and re.fullmatch(r"\d+", c[1]):
            totals[c[0]] = int(c[1])
    return totals


def check_table():
    text = TABLE.read_text()
    rows = parse_table(text)
    if not rows:
        fail("conformance.md: no rows found")
    anchors = semantics_anchors()
    refs = dict(re.findall(r"^\[([^\]]+)\]:\s*(\S+)\s*$", text, re.M))
    for label, target in refs.items():
        if target.startswith("semantics.md#"):
            if target.split("#", 1)[1] not in anchors:
                fail(f"conformance.md: [{label}] points to {target}, no such heading in semantics.md")

    counts = {s: 0 for s in STATUSES}
    seen = {}
    for n, name, rust, status, notes in rows:
        if status not in STATUSES:
            fail(f"conformance.md:{n}: {name}: status {status!r} is none of {', '.join(STATUSES)}")
            continue
        counts[status] += 1
        if name in seen:
            fail(f"conformance.md:{n}: {name} has a row already (line {seen[name]})")
        seen[name] = n
        inline = re.findall(r"\]\((semantics\.md#[^)]*)\)", notes)
        used = re.findall(r"\]\[([^\]]+)\]", notes)
        for target in inline:
            if target.split("#", 1)[1] not in anchors:
                fail(f"conformance.md:{n}: {name} links {target}, no such heading in semantics.md")
        for label in used:
            if label not in refs:
                fail(f"conformance.md:{n}: {name} uses the link [{label}], which is not defined")
        sem_links = inline + [refs[l] for l in used if refs.get(l, "").startswith("semantics.md")]
        if status == "different" and not sem_links:
            fail(f"conformance.md:{n}: {name} is \"different\" without a link into semantics.md")
        if status == "not applicable" and not notes:
            fail(f"conformance.md:{n}: {name} is \"not applicable\" without saying why")
        if status in ("same", "different") and rust in ("", "—", "-"):
            fail(f"conformance.md:{n}: {name} is \"{status}\" but names no asyncio-rs equivalent")

    totals = parse_totals(text)
    for s in STATUSES:
        if totals.get(s) != counts[s]:
            fail(f"conformance.md: the totals say {totals.get(s)} {s}, the rows have {counts[s]}")
    if totals.get("all") != len(rows):
        fail(f"conformance.md: the totals say {totals.get('all')} in all, the table has {len(rows)} rows")
    return counts, seen


def facade_names():
    """The names the facade crate re-exports or defines."""
    text = (ROOT / "crates" / "asyncio" / "src" / "lib.rs").read_text()
    names = set()
    for body in re.findall(r"^pub use [\w:]*?\{([^}]*)\}", text, re.M):
        names.update(re.findall(r"\b(\w+)\b", body))
    for name, alias in re.findall(r"^pub use [\w:]*?(\w+)(?: as (\w+))?;", text, re.M):
        names.add(alias or name)
    names.update(re.findall(r"^pub (?:mod|fn|struct|enum|trait|type|const) (\w+)", text, re.M))
    return names


def defined_fns():
    """Every `fn` name in the crates' sources."""
    fns = set()
    for path in (ROOT / "crates").glob("*/src/**/*.rs"):
        fns.update(re.findall(r"\bfn (\w+)", path.read_text()))
    return fns


def check_rust_names(rows):
    """The Rust column names things that exist: `asyncio::X` is in the facade,
    `Type::method` is a type of the facade with a `fn method` somewhere."""
    facade = facade_names()
    fns = defined_fns()
    for n, name, rust, status, notes in rows:
        if status not in ("same", "different"):
            continue
        for code in re.findall(r"`([^`]*)`", rust):
            for first in re.findall(r"\basyncio::(\w+)", code):
                if first not in facade:
                    fail(f"conformance.md:{n}: {name}: asyncio::{first} is not in the facade (crates/asyncio/src/lib.rs)")
            for ty, method in re.findall(r"(?<![\w:])([A-Z]\w*)::([a-z_]\w*)\b", code):
                if ty not in facade:
                    fail(f"conformance.md:{n}: {name}: {ty} is not a type of the facade")
                elif method not in fns:
                    fail(f"conformance.md:{n}: {name}: no crate defines fn {method} (for {ty}::{method})")


def check_all_names(names):
    """Every name of asyncio's __all__ has a row ("asyncio.NAME...")."""
    if sys.version_info >= (3, 14):
        # 3.14 adds and removes names; the table is 3.13's.
        return
    try:
        import asyncio
    except ImportError:
        return
    wanted = sorted(set(asyncio.__all__) | set(ADDED_AFTER_311))
    have = set()
    for name in names:
        m = re.match(r"`asyncio\.([A-Za-z_][A-Za-z0-9_]*)", name)
        if m:
            have.add(m.group(1))
    for name in wanted:
        if name not in have:
            fail(f"conformance.md: asyncio.{name} (in asyncio.__all__) has no row")


def readme_section():
    text = README.read_text()
    m = re.search(r"^## What is there.*?\n(.*?)(?=^## )", text, re.S | re.M)
    if not m:
        fail('README.md: no "## What is there" section')
        return ""
    return m.group(1)


def check_readme(counts):
    section = readme_section()
    flat = " ".join(section.split())
    if "docs/conformance.md" not in flat:
        fail('README.md: "What is there" does not link docs/conformance.md')
    # "N same, N different (a remark), N not applicable and N missing": a
    # remark in parentheses may follow each count; links count as their text.
    flat = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", flat)
    paren = r"(?: \([^)]*\))?"
    pattern = (
        rf"(\d+) same{paren}, (\d+) different{paren}, (\d+) not applicable{paren},? "
        rf"and (\d+) missing"
    )
    m = re.search(pattern, flat)
    if not m:
        fail(
            'README.md: "What is there" does not state the coverage totals as '
            '"N same, N different, N not applicable and N missing"'
        )
    else:
        said = dict(zip(STATUSES, map(int, m.groups())))
        for s in STATUSES:
            if said[s] != counts[s]:
                fail(f"README.md says {said[s]} {s}; docs/conformance.md has {counts[s]}")
    if counts["missing"] and re.search(
        r"nothing (of asyncio )?is missing|all of asyncio('s)? (public )?(api|names)", flat, re.I
    ):
        fail(f"README.md says nothing is missing; docs/conformance.md has {counts['missing']} missing rows")
    if "conformance.md" not in DOCS_README.read_text():
        fail("docs/README.md does not link conformance.md")


def update_totals():
    """Rewrites the totals table and the README's numbers from the rows."""
    text = TABLE.read_text()
    rows = parse_table(text)
    counts = {s: sum(1 for r in rows if r[3] == s) for s in STATUSES}
    lines = ["| status | names |", "| --- | ---: |"]
    lines += [f"| {s} | {counts[s]} |" for s in STATUSES]
    lines.append(f"| all | {len(rows)} |")
    text = re.sub(
        r"(^## Totals\n\n)(?:\|.*\|\n)+", lambda m: m.group(1) + "\n".join(lines) + "\n", text, count=1, flags=re.M
    )
    TABLE.write_text(text)
    readme = README.read_text()
    m = re.search(r"^## What is there.*?\n(.*?)(?=^## )", readme, re.S | re.M)
    if m:
        section = m.group(1)
        for s in STATUSES:
            # The number right before each status (a line break may sit between).
            words = r"\s+".join(map(re.escape, s.split()))
            section = re.sub(r"\d+(?=\s+" + words + r"\b)", str(counts[s]), section, count=1)
        readme = readme[: m.start(1)] + section + readme[m.end(1) :]
        README.write_text(readme)


def main():
    if "--update" in sys.argv[1:]:
        update_totals()
    counts, names = check_table()
    check_all_names(names)
    check_rust_names(parse_table(TABLE.read_text()))
    check_readme(counts)
    for e in errors:
        print(f"check-conformance: {e}", file=sys.stderr)
    if errors:
        return 1
    summary = ", ".join(f"{counts[s]} {s}" for s in STATUSES)
    print(f"check-conformance: the coverage table agrees with itself and the README ({summary})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

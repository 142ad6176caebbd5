#!/usr/bin/env bash
# Keeps the countable facts of the documentation true (issue 28): the number
# of tutorial chapters, the example names the docs mention, the examples the
# README lists, the range of examples the tutorial names, and the README's
# "what is there, and what is not yet", and (ci/check-conformance.py) the
# coverage table docs/conformance.md. Plain bash, grep and python3, no build needed;
# .ci/run calls it. Prints every mismatch, then fails if there was one.
set -euo pipefail
cd "$(dirname "$0")/.."

failed=0
fail() {
    echo "check-docs: $*" >&2
    failed=1
}

# --- Tutorial chapters -------------------------------------------------------
mapfile -t chapters < <(cd docs/tutorial && ls [0-9][0-9]-*.md | sort)
n=${#chapters[@]}
words=(zero one two three four five six seven eight nine ten eleven twelve thirteen
    fourteen fifteen sixteen seventeen eighteen nineteen twenty)
word=${words[$n]:-$n}
grep -q "$word chapters" docs/README.md ||
    fail "docs/README.md does not say \"$word chapters\" (docs/tutorial has $n)"
for other in "${words[@]}"; do
    if [ "$other" != "$word" ] && grep -q "\b$other chapters" docs/README.md README.md; then
        fail "a README says \"$other chapters\"; docs/tutorial has $n"
    fi
done
listed=$(grep -cE '^[0-9]+\. \[' docs/tutorial/README.md || true)
[ "$listed" = "$n" ] ||
    fail "docs/tutorial/README.md lists $listed chapters; docs/tutorial has $n"
for chapter in "${chapters[@]}"; do
    grep -q "]($chapter)" docs/tutorial/README.md ||
        fail "docs/tutorial/README.md does not link $chapter"
    grep -q "docs/tutorial/$chapter" crates/asyncio/src/lib.rs ||
        fail "the facade's rustdoc (crates/asyncio/src/lib.rs) does not carry $chapter"
done

# --- Example names -----------------------------------------------------------
mapfile -t examples < <(cd crates/asyncio/examples && ls *.rs | sed 's/\.rs$//' | sort)
# The showdown's scenario names and some tests' names share the ex_ prefix;
# they are names too.
mapfile -t scenarios < <(
    {
        grep -ohE '"ex_[0-9a-z_]+"' -r benches/src | tr -d '"'
        grep -ohE 'fn ex_[0-9a-z_]+' -r crates/*/tests crates/*/src | sed 's/^fn //'
    } | sort -u
)
known() {
    local name=$1 e
    for e in "${examples[@]}" "${scenarios[@]}"; do
        # An example by its full name, or by its short name (ex_2_3 for
        # ex_2_3_gather).
        if [ "$e" = "$name" ] || [[ "$e" == "${name}_"* ]]; then
            return 0
        fi
    done
    return 1
}
docs=(README.md docs/*.md docs/tutorial/*.md crates/asyncio/src/lib.rs)
for name in $(grep -ohE '\bex_[0-9]+_[0-9]+[a-z0-9_]*' "${docs[@]}" | sort -u); do
    known "$name" || fail "the docs name $name, which is neither an example nor a showdown scenario"
done
for e in "${examples[@]}"; do
    case "$e" in
    ex_*) grep -q "\b$e\b" README.md || fail "README.md does not list the example $e" ;;
    esac
done
# The tutorial names the range of the examples: its ends must be the first and
# the last example.
first=$(printf '%s\n' "${examples[@]}" | grep -oE '^ex_[0-9]+_[0-9]+' | sort -V | head -1)
last=$(printf '%s\n' "${examples[@]}" | grep -oE '^ex_[0-9]+_[0-9]+' | sort -V | tail -1)
grep -q "$first to $last" docs/tutorial/README.md ||
    fail "docs/tutorial/README.md does not say \"$first to $last\" (the examples' range)"

# --- The README's "what is there, and what is not yet" ----------------------
section=$(awk '/^## What is there/ {on=1; next} /^## / {on=0} on' README.md | tr '\n' ' ')
there=${section%%Not yet:*}
not_yet=${section#*Not yet:}
[ "$there" != "$section" ] || fail "README.md: no \"Not yet:\" in \"What is there\""
# A name in backticks is an item of the API: the "There" ones must exist, the
# "Not yet" ones must not (once they exist, the README must say so).
defined() {
    grep -rqE "pub (async )?(fn|struct|enum|trait|type|const|mod) $1\b" crates/*/src
}
for name in $(grep -oE '`[A-Za-z_]+`' <<<"$there" | tr -d '`' | sort -u); do
    defined "$name" || fail "README.md says \`$name\` is there, but no crate defines it"
done
for name in $(grep -oE '`[A-Za-z_]+`' <<<"$not_yet" | tr -d '`' | sort -u); do
    defined "$name" && fail "README.md says \`$name\` is not there yet, but a crate defines it"
done
# What a crate provides is not "planned" or "not yet" anywhere: phrases that
# described the loop pool before asyncio-pool existed.
if [ -d crates/asyncio-pool ]; then
    for doc in README.md docs/README.md; do
        grep -qiE 'loops across cores \(planned|pool of loops.*is planned|today one loop is one core' "$doc" &&
            fail "$doc calls the loop pool planned; crates/asyncio-pool provides it"
    done
fi

# --- The coverage table of asyncio 3.13's names (issue 27) -------------------
# Its rows, its totals, its links into semantics.md, and the README's totals.
python3 ci/check-conformance.py || failed=1

[ "$failed" = 0 ] && echo "check-docs: the docs agree with the code"
exit "$failed"

"""Odd file names never stop a run: trees of names that are not UTF-8, hold newlines, are as long as the file
system allows, or differ only in Unicode normalisation go through curate, and every file ends in documents or
rejects under a source that is valid UTF-8 and maps back to the file's bytes."""

from __future__ import annotations

import json
import os
import shutil
import unicodedata

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curate.readers import source_bytes, source_name

# Name pieces: plain, Latin-1 bytes (not UTF-8), a newline, a backslash, a literal "\xe9" text, NFC and NFD forms.
_pieces = st.sampled_from(
    [b"notes", b"caf\xe9", b"\xff\xfe", b"line\nbreak", b"back\\slash", b"\\xe9", b" ", b"-", b"\xe2\x82\xac"]
    + [unicodedata.normalize(form, "café").encode() for form in ("NFC", "NFD")]
)
_stems = st.one_of(st.lists(_pieces, min_size=1, max_size=4).map(b"".join), st.just(b"L" * 240))
_names = st.tuples(_stems, st.sampled_from([b".md", b".txt", b"", b".bin"])).map(b"".join)
_trees = st.lists(
    st.tuples(st.sampled_from([b"", b"sub\xe9/", b"caf\xc3\xa9/"]), _names), min_size=1, max_size=6, unique=True
)

TEXT = "# Returns\n\nReturns are accepted within {} days of purchase when the receipt is shown at the front desk.\n"
NUMBERS = ["ten", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety", "hundred"]


def _jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=_trees)
def test_every_odd_file_name_is_read_or_rejected_under_a_reversible_utf8_source(tree, tmp_path):
    from curate.pipeline import curate
    from curate.recipe import validate_recipe

    root = tmp_path / "case"
    shutil.rmtree(root, ignore_errors=True)
    docs = root / "docs"
    written: set[bytes] = set()
    for n, (folder, name) in enumerate(tree):
        relative = folder + name
        path = os.path.join(os.fsencode(docs), relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(TEXT.format(NUMBERS[n]).encode())
        written.add(relative)
    recipe = validate_recipe({"name": "names", "input": {"paths": [str(docs)]}, "output": {"dir": str(root / "run")}})
    result = curate(recipe)
    documents = _jsonl(result.dataset_dir / "documents" / "documents.jsonl")
    rejects = [r for r in _jsonl(result.dataset_dir / "rejects" / "rejects.jsonl") if r["stage"] == "read"]
    sources = [d["source"] for d in documents] + [r["source"] for r in rejects]
    assert sorted(source_bytes(s) for s in set(sources)) == sorted(written)
    assert all(source_name(os.fsdecode(source_bytes(s))) == s for s in sources)
    assert {source_bytes(d["source"]) for d in documents} == {w for w in written if w.endswith((b".md", b".txt"))}
    assert all(d["title"] == "Returns" for d in documents if d["source"].endswith(".md"))
    assert {r["reason"] for r in rejects} <= {"unsupported_format"}


def test_a_latin1_name_without_a_heading_is_read_with_its_name_as_title(tmp_path):
    from curate.pipeline import curate
    from curate.recipe import validate_recipe

    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    with open(os.path.join(os.fsencode(docs), b"sub/caf\xe9-notes.txt"), "wb") as f:
        f.write(b"Returns are accepted within thirty days of purchase when the receipt is shown at the desk.\n")
    recipe = validate_recipe({"name": "n", "input": {"paths": [str(docs)]}, "output": {"dir": str(tmp_path / "run")}})
    [doc] = _jsonl(curate(recipe).dataset_dir / "documents" / "documents.jsonl")
    assert (doc["source"], doc["title"]) == ("sub/caf\\xe9-notes.txt", "Café notes")
    assert source_bytes(doc["source"]) == b"sub/caf\xe9-notes.txt"

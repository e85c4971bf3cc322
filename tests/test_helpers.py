"""The shared helpers: JSON writing (engine.jsonio) and ISO 8601 times (engine.timeutil)."""

from __future__ import annotations

import json
import math
import os
import stat

import numpy as np
import pandas as pd
import pytest

from engine.jsonio import clean, clean_deep, dumps, dumps_with_lines, encode, write_json, write_text_atomic
from engine.timeutil import iso_time, iso_times


def test_clean_makes_scalars_json_values():
    assert clean(np.int64(3)) == 3 and type(clean(np.int64(3))) is int
    assert clean(np.float32(0.5)) == 0.5 and type(clean(np.float32(0.5))) is float
    assert clean(np.bool_(True)) is True
    assert [clean(v) for v in (math.nan, math.inf, -np.inf, pd.NA, None)] == [None] * 5
    assert clean("x") == "x"


def test_json_is_finite_indented_and_ends_with_a_newline():
    assert dumps({"a": [1, 2]}) == '{\n "a": [\n  1,\n  2\n ]\n}\n'
    # never NaN or Infinity in a file: a non-finite number anywhere is written null (issue 22: a
    # trade's return of inf in runs/*.json once failed the run after the sweep)
    assert dumps({"a": math.nan, "b": [np.float64(np.inf), (-math.inf, 1.5)]}) == \
        '{\n "a": null,\n "b": [\n  null,\n  [\n   null,\n   1.5\n  ]\n ]\n}\n'
    text = dumps_with_lines({"m": {"x": math.inf}, "trades": [{"r": math.nan}, {"r": 2.0}]}, "trades")
    assert json.loads(text) == {"m": {"x": None}, "trades": [{"r": None}, {"r": 2.0}]}
    with pytest.raises(TypeError):
        dumps({"a": object()})  # nothing that is not JSON


def test_records_one_compact_line_each_and_the_document_reads_back():
    doc = {"id": "x", "trades": [{"p": 1.5, "q": None}, {"p": 2, "q": "b"}], "tail": 1}
    text = dumps_with_lines(doc, "trades")
    assert '  {"p":1.5,"q":null},\n  {"p":2,"q":"b"}\n' in text and text.endswith("}\n")
    assert json.loads(text) == doc
    assert dumps_with_lines({"id": "x", "trades": []}, "trades") == dumps({"id": "x", "trades": []})


def test_atomic_write_leaves_no_temporary_file_and_keeps_the_usual_permissions(tmp_path):
    path = tmp_path / "index.html"
    write_text_atomic(path, "one")
    (tmp_path / "planted").write_text("target")
    write_text_atomic(path, "two")
    assert path.read_text() == "two" and sorted(p.name for p in tmp_path.iterdir()) == ["index.html", "planted"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    write_json(tmp_path / "d.json", {"trades": [{"a": 1}]}, lines="trades")
    assert json.loads((tmp_path / "d.json").read_text()) == {"trades": [{"a": 1}]}


def test_iso_times_by_hand():
    assert iso_times([1704067200000, 1704068100000]) == ["2024-01-01T00:00:00Z", "2024-01-01T00:15:00Z"]
    assert iso_times([1704067200123, 1704067200000]) == ["2024-01-01T00:00:00.123Z", "2024-01-01T00:00:00.000Z"]
    assert iso_time(0) == "1970-01-01T00:00:00Z" and iso_times([]) == []


def test_encode_skips_cleaning_only_when_cleaning_changes_nothing():
    """encode() tries the document as it is and cleans it only when the encoder refuses it: the text is
    always that of the cleaned document."""
    def cleaned(doc, **kw):
        return json.dumps(clean_deep(doc), allow_nan=False, **kw)

    clean_doc = {"b": [1, 2.5, np.float64(0.1), -0.0, None, "x", (3, 4.0)], "a": {"c": True}}
    needs = [{"x": math.nan}, {"x": [1.0, np.float32(0.5)]}, {"x": np.int64(3)}, [np.float64(np.inf)]]
    for doc in [clean_doc, *needs]:
        for kw in ({}, {"indent": 1}, {"sort_keys": True, "separators": (",", ":")}):
            try:
                expected = cleaned(doc, **kw)
            except TypeError:  # np.int64 is not JSON, cleaned or not
                with pytest.raises(TypeError):
                    encode(doc, **kw)
                continue
            assert encode(doc, **kw) == expected
    assert encode(clean_doc, sort_keys=True) == '{"a": {"c": true}, "b": [1, 2.5, 0.1, -0.0, null, "x", [3, 4.0]]}'
    assert encode({"x": [math.nan, np.float32(0.5)]}) == '{"x": [null, 0.5]}'

"""Random YAML configs through the CLI's validation path: exit 0 or 2, never a traceback.

Configs are built from a valid one by replacing, dropping and adding sections, keys
and values of every YAML type (with nesting, anchors, aliases, tags, dates, huge and
non-finite numbers), then written as YAML text and given to ``backtest validate-config``
in-process: ``backtest_cli.main`` is the console script's code path (same parsing, same
error handling), only without a new interpreter per example.
"""

from __future__ import annotations

import io
import json
import re
from contextlib import redirect_stderr, redirect_stdout

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtest_cli import main
from conftest import examples

SECTIONS = {
    "experiment": ["name"],
    "data": ["source", "path", "symbol", "interval", "start", "end", "synthetic_bars", "seed"],
    "execution": ["commission", "slippage", "fill"],
    "portfolio": ["capital"],
    "risk": ["stop_loss"],
    "parallel": ["workers"],
    "report": ["top_k", "rank_by"],
    "limits": ["max_combinations"],
    "validation": ["holdout", "walk_forward", "cscv", "trials", "train", "test", "step", "anchored", "blocks"],
}
STRATEGIES = {
    "ma_crossover": ["short_window", "long_window", "ema_period", "momentum_spread"],
    "rsi_reversion": ["rsi_period", "oversold", "overbought"],
    "donchian_breakout": ["entry_window", "exit_window"],
}
VALID = {
    "experiment": {"name": "fuzz"},
    "data": {"source": "synthetic", "synthetic_bars": 3000, "seed": 1},
    "execution": {"commission": 0.001, "slippage": 0.0005, "fill": "close"},
    "portfolio": {"capital": 100000},
    "risk": {"stop_loss": [0.01, None]},
    "parallel": {"workers": 2},
    "report": {"top_k": 3, "rank_by": "sharpe"},
    "limits": {"max_combinations": 20000},
    "validation": {"holdout": 0.3, "walk_forward": {"train": "2d", "test": 96, "anchored": True},
                   "cscv": {"blocks": 8}, "trials": 100},
    "strategies": {"ma_crossover": {"short_window": [5, 10], "long_window": {"start": 20, "stop": 40, "step": 10}}},
}
TOKENS = ["~", "null", "true", "no", "on", "yes", "2024-01-01", "2024-13-45", "2024-02-30T10:00", "1970-01-01",
          "1969-12-31", "2100-01-01", "1e308", "-1e400", "1e-400", ".nan", ".inf", "-.inf", "0x1F", "0o17", "0b101",
          "1_000", "12:30", "190:20:30", "''", '""', "!!int abc", "!!int 0x", "!!float x", "!!binary Zm9v",
          "!!binary '@@'", "!!timestamp 2024-02-30", "!!set {a, b}", "!!omap [{a: 1}]", "!!str 5", "!!null ''",
          "!!python/name:os.system", "!!python/object/apply:os.getcwd []", "synthetic", "close", "next_open",
          "sharpe", "psr", "dsr", "30d", "0d", "90x", "15m", "1h", "0m", "-5m", "ma_crossover", "1704067200000", "99999999999999999999999",
          "9223372036854775808", "-9223372036854775809", "1e15", "1.0e+15", "1e16", "20000001", "0", "-1",
          "0.5", "1", "2", "*undefined", "&dup x", "[]", "{}", "{start: 1, stop: 1e300, step: 1e-300}",
          "{start: 5, stop: 1}", "{start: 1, stop: 3, step: 0}", "{start: .nan, stop: 3}", "'a:b'",
          "'tests.timed_exit_strategy:TimedExit'", "'engine.strategies:Strategy'", "'engine:__version__'",
          "':X'", "'../x:Y'", "'nonexistent_fuzz_module:X'", "\"\\u0000\"", "\"\\ud800\"", "\"line\\nbreak\""]
KEYS = (list(SECTIONS) + [k for ks in SECTIONS.values() for k in ks] + list(STRATEGIES)
        + [k for ks in STRATEGIES.values() for k in ks] + ["start", "stop", "step", "strategies", "<<"])


def scalars():
    return st.one_of(
        st.sampled_from(TOKENS),
        st.integers(min_value=-1000, max_value=1000).map(str),
        st.sampled_from([2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 10**30, -(10**30)]).map(str),
        st.floats(allow_nan=False, allow_infinity=False, width=64).map(repr),
        st.text(max_size=12).map(json.dumps),
    )


def keys():
    return st.one_of(st.sampled_from(KEYS), st.text(alphabet="abcdefghijklmnopqrstuvwxyz_.", min_size=1,
                                                    max_size=10), st.sampled_from(["1", "~", "true", "[1]", "0.5"]))


def trees():
    return st.recursive(
        scalars().map(lambda t: ("raw", t)),
        lambda kids: st.one_of(st.lists(kids, max_size=4).map(lambda v: ("list", v)),
                               st.lists(st.tuples(keys(), kids), max_size=4).map(lambda v: ("map", v))),
        max_leaves=20)


# Built once: a strategy made anew inside every example (st.recursive above all) was validated anew each
# time, which took about half of this file's CPU. Same strategies, same distribution.
TREES = trees()
ANY_KEY = keys()
SECTION_CHOICE = st.sampled_from(["keep"] * 12 + ["drop", "tree", "mutate"])
ENTRY = st.tuples(ANY_KEY, TREES)


def from_python(value):
    if isinstance(value, dict):
        return ("map", [(k, from_python(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [from_python(v) for v in value])
    return ("raw", json.dumps(value))


@st.composite
def documents(draw):
    """A valid config, mutated section by section and key by key."""
    doc = []
    for section, value in VALID.items():
        choice = draw(SECTION_CHOICE)
        if choice == "drop":
            continue
        if choice == "tree":
            doc.append((section, draw(TREES)))
            continue
        node = from_python(value)
        if choice == "mutate":
            items = list(node[1])
            for i in range(len(items)):
                if draw(st.integers(0, 2)) == 0:
                    items[i] = (items[i][0], draw(TREES))
            if draw(st.integers(0, 2)) == 0:
                items.append(draw(ENTRY))
            node = ("map", items)
        doc.append((section, node))
    if draw(st.integers(0, 5)) == 0:
        doc.append(draw(ENTRY))
    return ("map", doc)


def key(k: str) -> str:
    """Plain when YAML reads it as intended (``<<`` merges, ``1`` is an int, ``[1]`` a list), else quoted."""
    return k if re.fullmatch(r"[A-Za-z0-9_.~<\[\]]+", k) else json.dumps(k)


def emit(node, draw, anchors: list[str], counter: list[int] | None = None) -> str:
    """Flow-style YAML; collections may carry anchors, and any value may be an alias of an earlier one."""
    counter = [0] if counter is None else counter
    if anchors and draw(st.integers(0, 9)) == 0:
        return "*" + draw(st.sampled_from(anchors))
    kind, value = node
    if kind == "raw":
        return value
    anchor = ""
    if draw(st.integers(0, 4)) == 0:
        counter[0] += 1
        anchor = f"&a{counter[0]} "
    if kind == "list":
        text = "[" + ", ".join(emit(v, draw, anchors, counter) for v in value) + "]"
    else:
        text = "{" + ", ".join(f"{key(k)}: {emit(v, draw, anchors, counter)}" for k, v in value) + "}"
    if anchor:
        anchors.append(anchor[1:-1])  # usable only after its collection is complete (else a cycle: also tested)
    return anchor + text


@settings(max_examples=examples(ci=800, local=300), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(doc=documents(), data=st.data())
def test_random_configs_exit_0_or_2_never_a_traceback(tmp_path_factory, doc, data):
    if data.draw(st.booleans()):
        text = emit(doc, data.draw, [])
    else:  # block style at the top level, flow inside
        anchors, counter = [], [0]
        text = "\n".join(f"{key(k)}: {emit(v, data.draw, anchors, counter)}" for k, v in doc[1]) + "\n"
    path = tmp_path_factory.getbasetemp() / "fuzz.yaml"
    path.write_text(text, errors="surrogatepass")
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["validate-config", str(path)])
    assert code in (0, 2), (code, text, err.getvalue())
    assert "Traceback" not in err.getvalue()
    if code == 2:
        lines = err.getvalue().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (text, err.getvalue())
    else:
        assert "OK," in out.getvalue() and err.getvalue() == ""


def test_the_unmutated_config_is_valid(tmp_path, capsys):
    path = tmp_path / "valid.yaml"
    path.write_text(emit(from_python(VALID), lambda s: 1, []))
    assert main(["validate-config", str(path)]) == 0
    assert "OK, 12 combination(s)" in capsys.readouterr().out

"""The config's YAML loader: bounded size, nesting and alias expansion; text keys; every failure a ConfigError."""

from __future__ import annotations

import tracemalloc

import pytest

from engine.config import safe_yaml
from engine.errors import ConfigError
from engine.config.safe_yaml import MAX_DEPTH, MAX_NODES, load_yaml


def bomb(levels: int, width: int = 9) -> str:
    """``levels`` lists of ``width`` aliases each: width**levels strings once expanded."""
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def refused(text: str, *fragments: str) -> str:
    with pytest.raises(ConfigError) as exc:
        load_yaml(text, "cfg.yaml")
    msg = str(exc.value)
    assert msg.startswith("cfg.yaml: ") and "\n" not in msg
    for f in fragments:
        assert f in msg, msg
    return msg


def test_alias_bomb_is_refused_while_composing_before_anything_is_constructed(monkeypatch):
    def never(*_):
        raise AssertionError("a document over the limit must not be constructed")

    monkeypatch.setattr(safe_yaml._Loader, "construct_document", never)
    text = bomb(9)  # 9**9 = 387,420,489 strings
    assert len(text) <= 500
    tracemalloc.start()
    try:
        refused(text, "expands to more than 100,000 values")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000  # bytes: the ~100 composed nodes, not the expansion


def test_alias_expansion_counts_every_use():
    # 1 root + 1 key "l0" + list (1 + 9) ... computed by hand: level k list = 1 + 9 * size(k-1)
    sizes = [10]
    for _ in range(4):
        sizes.append(1 + 9 * sizes[-1])
    assert sizes[-1] == 66_430  # five levels: l4 alone; the whole document stays under 100,000
    doc = load_yaml(bomb(5))
    assert len(doc["l4"]) == 9 and doc["l4"][0][0][0][0] == ["lol"] * 9
    assert 1 + 9 * sizes[-1] > MAX_NODES
    refused(bomb(6), "expands to more than")


def test_nesting_depth():
    assert load_yaml("a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)) is not None
    refused("a: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH, f"nested more than {MAX_DEPTH} levels deep")
    refused("a: " + "[" * 100_000 + "]" * 100_000, "nested more than")  # no RecursionError


def test_nesting_through_aliases_counts_the_expanded_depth():
    inner = "[" * 20 + "]" * 20
    ok = f"a: &a {inner}\nb: [[[*a]]]\n"
    assert load_yaml(ok)["b"][0][0][0] == load_yaml(ok)["a"]
    text = f"a: &a {inner}\nb: &b {'[' * 10}*a{']' * 10}\nc: {'[' * 5}*b{']' * 5}\n"
    refused(text, "nested more than 32 levels deep once aliases are expanded")


@pytest.mark.parametrize("text,fragment", [
    ("a: &a [*a]", "an alias refers to a collection that contains it"),
    ("a: &a {b: *a}", "an alias refers to a collection that contains it"),
    ("a: &a {<<: *a}", "an alias refers to a collection that contains it"),
    ("1: x", "a key must be text, got '1' (quote it)"),
    ("true: x", "a key must be text, got 'true' (quote it)"),
    ("~: x", "a key must be text, got '~'"),
    ("[1]: x", "a key must be text, got a list"),
    ("{a: 1}: x", "a key must be text, got a mapping"),
    ("c: {<<: {1: 2}}", "a key must be text, got 1"),
    ("a: 1\nb: 2\na: 3", "line 3: key 'a' is given twice"),
    ("a: !!int abc", "invalid literal for int()"),
    ("a: !!timestamp 2024-13-45", "month must be in 1..12"),
    ("a: !!float x", "could not convert string to float"),
    ("a: 1" + "0" * 200, "an integer of 201 characters"),
    ("a: !!python/object/apply:os.system [ls]", "could not determine a constructor"),
    ("a: *nowhere", "found undefined alias 'nowhere'"),
    ("a: &x 1\nb: &x 2", "found duplicate anchor 'x'"),
    ("a: 1\n---\nb: 2", "but found another document"),
    ("a: [1, 2", "line 1"),
    ("a:\n\t- b", "found character '\\t' that cannot start any token"),
])
def test_refusals(text, fragment):
    refused(text, "invalid YAML", fragment)


def test_size_limit():
    refused("#" * (safe_yaml.MAX_BYTES + 1), "a config may hold at most 1,048,576")


def test_values():
    doc = load_yaml("d: 2024-01-01\nt: 2024-01-01T10:00:00Z\nbad: 2024-13-45\ne: 1e6\nf: 1.5e3\ng: -2E-3\n"
                    "h: 1e400\ni: .5e1\nj: 1_000\nk: 0x10\nl: 1.5\nm: 12\nn: null\no: true\n"
                    "base: &b {x: 1, y: 2}\nmerged: {<<: *b, y: 3}\n")
    assert doc["d"] == "2024-01-01" and doc["t"] == "2024-01-01T10:00:00Z" and doc["bad"] == "2024-13-45"
    assert (doc["e"], doc["f"], doc["g"], doc["i"]) == (1e6, 1500.0, -0.002, 5.0)
    assert doc["h"] == float("inf")
    assert (doc["j"], doc["k"], doc["l"], doc["m"], doc["n"], doc["o"]) == (1000, 16, 1.5, 12, None, True)
    assert doc["merged"] == {"x": 1, "y": 3}
    assert load_yaml("") is None

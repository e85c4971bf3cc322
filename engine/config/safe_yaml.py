"""YAML for configs: bounded in size, nesting and alias expansion, every failure a ``ConfigError``.

``yaml.safe_load`` builds whatever a document describes. Nine nested aliases of
nine items each are a 450-byte file that expands to 43 million nodes, and every
later pass over the result (an error message's ``repr``, the config hash) walks
all of them; ten thousand nested brackets overflow Python's recursion limit. This
loader composes the document into nodes as PyYAML does, but measures each node's
*expanded* size and height (an alias counts as a full copy of what it names) as
soon as the node is composed, and refuses the document before anything is
constructed when either is over its limit.

It also refuses what a config never means: a key that is not text, a key given
twice in one mapping, and a value PyYAML cannot construct (``!!int abc``). Dates
stay text (the config parser checks them with the key's name, so ``2024-13-45``
is reported as a bad ``data.start`` rather than as a crash), and a number with an
exponent but no dot (``1e6``, which YAML 1.1 reads as a string) is a float, as in
YAML 1.2.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, ScalarNode

from ..errors import ConfigError

#: Largest config text, in bytes.
MAX_BYTES = 1 << 20
#: Most nodes the document may hold once every alias is expanded.
MAX_NODES = 100_000
#: Deepest nesting of sequences and mappings, aliases expanded.
MAX_DEPTH = 32

_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
_MAX_INT_CHARS = 100  # far beyond int64; Python refuses above 4,300 digits with a message about sys
_EXP_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")


class _Refused(yaml.YAMLError):
    """A limit or rule of this loader; carries the position where it was found."""

    def __init__(self, problem: str, mark) -> None:
        super().__init__(problem)
        self.problem, self.problem_mark = problem, mark


class _Loader(yaml.SafeLoader):
    def __init__(self, stream) -> None:
        super().__init__(stream)
        self._depth = 0
        self._sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded nodes, expanded height)

    def compose_node(self, parent, index):
        alias = self.check_event(AliasEvent)
        mark = self.peek_event().start_mark
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Refused(f"nested more than {MAX_DEPTH} levels deep", mark)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        known = self._sizes.get(id(node))
        if alias:
            if known is None:  # an alias to a collection still being composed: a cycle
                raise _Refused("an alias refers to a collection that contains it", mark)
            return node
        if isinstance(node, ScalarNode):
            self._sizes[id(node)] = (1, 0)
            return node
        children = [n for pair in node.value for n in pair] if isinstance(node, MappingNode) else node.value
        size, height = 1, 0
        for child in children:
            s, h = self._sizes[id(child)]
            size, height = size + s, max(height, h + 1)
        if size > MAX_NODES:
            raise _Refused(f"expands to more than {MAX_NODES:,} values (aliases count once per use)", mark)
        if height > MAX_DEPTH:
            raise _Refused(f"nested more than {MAX_DEPTH} levels deep once aliases are expanded", mark)
        self._sizes[id(node)] = (size, height)
        return node

    def construct_mapping(self, node, deep=False):
        if isinstance(node, MappingNode):
            seen: set[str] = set()
            for key_node, _ in node.value:
                if key_node.tag == _MERGE:
                    continue
                if not isinstance(key_node, ScalarNode) or key_node.tag != _STR:
                    raise _Refused(f"a key must be text, got {_describe(key_node)}"
                                   + (" (quote it)" if isinstance(key_node, ScalarNode) else ""), key_node.start_mark)
                if key_node.value in seen:
                    raise _Refused(f"key {key_node.value!r} is given twice", key_node.start_mark)
                seen.add(key_node.value)
        mapping = super().construct_mapping(node, deep=deep)
        bad = next((k for k in mapping if not isinstance(k, str)), None)
        if bad is not None:  # a key merged in with << from an inline mapping
            raise _Refused(f"a key must be text, got {bad!r}"[:120], node.start_mark)
        return mapping


    def construct_yaml_int(self, node):
        if len(node.value) > _MAX_INT_CHARS:
            raise _Refused(f"an integer of {len(node.value):,} characters", node.start_mark)
        return super().construct_yaml_int(node)


def _describe(node) -> str:
    if isinstance(node, ScalarNode):
        return repr(node.value[:40])
    return "a list" if node.id == "sequence" else "a mapping"


# Dates stay strings; "1e6" is a float (YAML 1.2); only true and false are booleans (YAML 1.2):
# yes/no/on/off stay text, which a boolean key refuses with a hint (``checks.boolean``).
_BOOL = "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_TIMESTAMP, _BOOL)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _EXP_FLOAT, list("-+0123456789."))


def load_yaml(text: str, source: str = "config") -> Any:
    """Parse ``text`` (one YAML document) within the limits above; any failure is a one-line ConfigError."""
    if len(text) > MAX_BYTES:
        raise ConfigError(f"{source}: {len(text):,} characters; a config may hold at most {MAX_BYTES:,}")
    loader = None
    try:
        loader = _Loader(text)  # the reader refuses NUL and other control characters here
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        if context and problem == "second occurrence":  # PyYAML's duplicate anchor: the useful part is the context
            problem = context.replace("; first occurrence", "")
        elif context:
            problem = f"{context}: {problem}"
        raise ConfigError(f"{source}: invalid YAML{at}: {_one_line(problem)}") from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:  # a constructor on a bad value
        raise ConfigError(f"{source}: invalid YAML: {_one_line(str(exc)) or type(exc).__name__}") from None
    finally:
        if loader is not None:
            loader.dispose()


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"

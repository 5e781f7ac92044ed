"""Load a network file (YAML) into a validated ``Network``.

Every problem is reported as ``<file>:<line>: <what is wrong>``, with the 1-based line of the YAML
node at fault, and all problems found in one pass are reported together (like a compiler), so that
a maintainer fixing a network file does not have to rerun the loader once per mistake.

The pipeline has three phases: parse (ruamel.yaml round-trip, which keeps line numbers), validate
each entry (pydantic), then validate across entries (``Network``'s validator). A later phase runs
only when the earlier ones found nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from sco_settle.network.model import Loc, Network, NetworkProblems, entry_label, loc_text

SHIPPED_PACKAGE = "sco_settle.reference_data"


class NetworkError(ValueError):
    """A network file cannot be read or is invalid; ``problems`` lists (line, message) pairs.

    ``line`` is 1-based, or ``None`` when a problem concerns the whole file (e.g. it is missing).
    """

    def __init__(self, source: str, problems: list[tuple[int | None, str]]) -> None:
        assert problems, source
        self.source = source
        self.problems = sorted(problems, key=lambda problem: problem[0] or 0)
        super().__init__("\n".join(_format(source, line, text) for line, text in self.problems))

    @property
    def line(self) -> int | None:
        """The line of the first problem."""
        return self.problems[0][0]


def _format(source: str, line: int | None, text: str) -> str:
    return f"{source}: {text}" if line is None else f"{source}:{line}: {text}"


def load_network(name_or_path: str | Path) -> Network:
    """Load a shipped network by name ("sco") or a network file by path.

    A bare name (a ``str`` with no directory part and no suffix) names a file shipped in
    ``sco_settle/reference_data/``; anything else, and every ``Path``, is a path. Use "./sco"
    for a local file that happens to be called "sco".
    """
    if isinstance(name_or_path, str) and _is_shipped_name(name_or_path):
        resource = resources.files(SHIPPED_PACKAGE).joinpath(f"{name_or_path}.yaml")
        source = f"reference_data/{name_or_path}.yaml"
        if not resource.is_file():
            raise NetworkError(source, [(None, f"no shipped network called {name_or_path!r}")])
        return parse_network(resource.read_text(encoding="utf-8"), source=source)
    path = Path(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise NetworkError(str(path), [(None, f"cannot read the network file: {error}")]) from None
    return parse_network(text, source=str(path))


def _is_shipped_name(name: str) -> bool:
    return bool(name) and "/" not in name and "\\" not in name and "." not in name


def parse_network(text: str, source: str = "<network>") -> Network:
    """Parse and validate the text of a network file; ``source`` names it in error messages."""
    root = _parse_yaml(text, source)
    document = _plain(root)
    try:
        network = Network.model_validate(document)
    except ValidationError as error:
        raise NetworkError(source, _problems(error, root, document)) from None
    assert isinstance(network, Network)
    return network


def _parse_yaml(text: str, source: str) -> CommentedMap:
    yaml = YAML(typ="rt")
    try:
        root = yaml.load(text)
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = None if mark is None else mark.line + 1
        problem = error.problem or error.context or "invalid YAML"
        raise NetworkError(source, [(line, f"invalid YAML: {problem}")]) from None
    except YAMLError as error:
        raise NetworkError(source, [(None, f"invalid YAML: {error}")]) from None
    except ValueError as error:  # A scalar ruamel cannot construct, e.g. the date 2014-12-94.
        raise NetworkError(source, [(None, f"invalid YAML value: {error}")]) from None
    except TypeError as error:  # A complex key ruamel cannot hash (``? - {a: 1}``).
        raise NetworkError(source, [(None, f"invalid YAML key: {error}")]) from None
    except IndexError:  # ruamel.yaml 0.19 on a sign or radix prefix and underscores: ``-_``.
        raise NetworkError(source, [(None, "invalid YAML: a number with no digits")]) from None
    except RecursionError:  # Nesting deeper than the interpreter's stack.
        raise NetworkError(source, [(None, "invalid YAML: nested too deeply")]) from None
    if not isinstance(root, CommentedMap):
        raise NetworkError(source, [(1, "a network file must be a YAML mapping")])
    return root


def _plain(node: Any) -> Any:
    """ruamel's round-trip nodes as plain values (a ScalarFloat stays a float, to be refused)."""
    if isinstance(node, Mapping):
        return {_plain_key(key): _plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_plain(item) for item in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    if isinstance(node, dt.date):
        return node
    return node  # Left for pydantic to refuse with a type error.


def _plain_key(key: Any) -> Any:
    """A mapping key: a scalar as ``_plain`` makes it; a collection (YAML's complex keys, such as
    ``? {a: 1}``, which would be an unhashable dict) as its text, which pydantic refuses."""
    if isinstance(key, Mapping | list | tuple):
        return str(key)
    return _plain(key)


def _problems(
    error: ValidationError, root: CommentedMap, document: dict[str, Any]
) -> list[tuple[int | None, str]]:
    problems: list[tuple[int | None, str]] = []
    for detail in error.errors():
        cause = detail.get("ctx", {}).get("error")
        if isinstance(cause, NetworkProblems):
            problems.extend((line_of(root, loc), text) for loc, text in cause.problems)
        else:
            problems.append((line_of(root, detail["loc"]), _describe(detail, document)))
    return problems


def line_of(root: CommentedMap, loc: Loc) -> int:
    """The 1-based line of the deepest YAML node on ``loc`` that exists in the file.

    A location that runs past the file (a missing field) stops at the mapping that should have held
    it; parts that are pydantic's own tags rather than keys (``[key]``, ``function-after[...]``)
    are skipped.
    """
    node: Any = root
    line = 0
    for part in loc:
        if isinstance(node, CommentedMap) and _has_key(node, part):
            position, child = node.lc.key(part), node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            position, child = node.lc.item(part), node[part]
        else:
            continue
        if position is None:  # ruamel keeps no positions inside a tagged collection (``!x``).
            break
        line, node = position[0], child
    return line + 1


def _has_key(node: CommentedMap, part: str | int) -> bool:
    try:
        return part in node
    except TypeError:
        return False


def _describe(detail: Any, document: dict[str, Any]) -> str:
    loc = tuple(detail["loc"])
    label = ""
    rest = loc
    if len(loc) >= 2 and isinstance(loc[0], str) and isinstance(loc[1], int):
        entries = document.get(loc[0])
        entry = entries[loc[1]] if isinstance(entries, list) and loc[1] < len(entries) else None
        label = entry_label(loc[0], loc[1], entry)
        rest = loc[2:]
    kind = detail["type"]
    if kind == "missing":
        text = _join(loc_text(rest[:-1]), f"missing required field {rest[-1]!r}")
    elif kind == "extra_forbidden":
        text = _join(loc_text(rest[:-1]), f"unknown field {rest[-1]!r}")
    else:
        message = str(detail["msg"]).removeprefix("Value error, ")
        text = _join(loc_text(rest), message)
    return _join(label, text)


def _join(prefix: str, text: str) -> str:
    return f"{prefix}: {text}" if prefix else text

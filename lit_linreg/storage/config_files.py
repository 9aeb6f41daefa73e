"""Config files given with ``--config``: the mistakes that YAML or jsonargparse accept silently or report poorly.

Each is one line naming the file and line: not UTF-8, not YAML (a tab where YAML allows only spaces), empty, not a
mapping of options, a key set twice (YAML would keep the last), a section such as ``model:`` left null or given a
value instead of options, a number too large for a float (``1e400`` would become inf). The file is composed (parsed
into nodes that keep their line numbers), never constructed, so nothing in it runs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from lit_linreg.errors import UserError, not_utf8
from lit_linreg.yaml_limits import check_yaml

_NULL_TAG = "tag:yaml.org,2002:null"
_NUMBER = re.compile(r"[-+]?(\d[\d_]*(\.[\d_]*)?|\.\d[\d_]*)([eE][-+]?\d+)?")
_PRINT_CONFIG = "`lit-linreg fit --print_config` prints every option"
_EXAMPLES = {  # an option to show for a section, in messages
    "model": "lr: 0.01",
    "trainer": "max_epochs: 100",
    "data": "class_path: lit_linreg.data.SyntheticRegressionData",
    "checkpoint": "every_n_epochs: 50",
    "table": "every_n_epochs: 50",
    "figures": "enabled: false",
}


def config_paths(argv: Sequence[str]) -> list[str]:
    """The ``--config`` (or ``-c``) files of ``argv``, in order."""
    return [
        value
        for arg, following in zip(argv, [*argv[1:], None])
        for value in ([following] if arg in ("-c", "--config") else [arg.partition("=")[2]])
        if value is not None and (arg in ("-c", "--config") or arg.startswith("--config="))
    ]


def check_config_files(argv: Sequence[str], sections: Mapping[str, bool], scopes: Collection[str] = ()) -> None:
    """Raise :class:`UserError` for the first ``--config`` file of ``argv`` that :func:`config_file_error` refuses, or
    that does not exist (named as the command line spelled it)."""
    for path in config_paths(argv):
        if not Path(path).exists() and (":" not in path and "\n" not in path):  # not a config given as a string
            raise UserError(f"--config {path}: no such file; check the path")
        if Path(path).is_dir():
            raise UserError(f"--config {path} is a folder, not a config file; check the path")
        problem = config_file_error(path, sections, scopes)
        if problem:
            raise UserError(problem)


def config_file_error(
    path: str, sections: Mapping[str, bool] | None = None, scopes: Collection[str] = ()
) -> str | None:
    """What is wrong with the config file at ``path``, as ``<what, where>; <how to fix>``, or None.

    ``sections`` names the options that are groups of options (``model``, ``trainer``, ...): each must hold a mapping,
    or, where its value is True, a class path (a string). ``scopes`` are the top-level keys that hold a whole config
    (the subcommands: ``fit: {model: ...}``). A file that cannot be read is left to jsonargparse's own message.
    """
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    where = f"config file {path}"
    encoding = not_utf8(data)
    if encoding:
        return f"{where} {encoding}; save it as UTF-8"
    try:
        check_yaml(data.decode("utf-8-sig"), where)  # bounded size, depth and aliases before anything walks it
    except UserError as err:
        return str(err)
    try:
        root = yaml.compose(data.decode("utf-8-sig"), Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        return _yaml_problem(where, err)
    if root is None or (isinstance(root, ScalarNode) and root.tag == _NULL_TAG):
        return (
            f"{where} is empty: it sets no options; put options in it (e.g. `model: {{lr: 0.01}}`; {_PRINT_CONFIG}) "
            f"or drop --config {path}"
        )
    if not isinstance(root, MappingNode):
        kind = "a list" if isinstance(root, SequenceNode) else f"the single value {root.value!r}"
        return (
            f"{where} holds {kind}, but a config is a mapping of options (`name: value` lines, e.g. "
            f"`model: {{lr: 0.01}}`); rewrite it as one ({_PRINT_CONFIG})"
        )
    for problem in _node_problems(root, where, ""):
        return problem
    for problem in _section_problems(root, where, sections or {}, scopes):
        return problem
    return None


def _yaml_problem(where: str, err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or "it cannot be parsed"
    if mark is None:
        return f"{where} is not valid YAML: {problem}; fix the file"
    at = f"line {mark.line + 1}, column {mark.column + 1}"
    if "'\\t'" in problem:
        return f"{where} is not valid YAML: a tab at {at}; YAML indents and separates with spaces only: use spaces"
    return f"{where} is not valid YAML: {problem} at {at}; fix that line"


def _entries(node: Node | None) -> list[tuple[Node, Node]]:
    return node.value if isinstance(node, MappingNode) else []


def _key(node: Node) -> str | None:
    return node.value if isinstance(node, ScalarNode) else None


def _node_problems(node: Node, where: str, name: str) -> Iterator[str]:
    """Keys set twice and numbers that overflow, anywhere below ``node`` (the value of the key ``name``)."""
    if isinstance(node, ScalarNode):
        text = node.value.replace("_", "")
        if node.style is None and _NUMBER.fullmatch(text) and math.isinf(float(text)):
            yield (
                f"{where} line {node.start_mark.line + 1}: {name.replace('init_args.', '')}: {node.value} is too "
                f"large for a number (it would become infinity; floats end near 1.8e308); use a smaller value"
            )
        return
    if isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            yield from _node_problems(item, where, f"{name}[{i}]")
        return
    seen: dict[str, int] = {}
    for key_node, value in _entries(node):
        key = _key(key_node)
        line = key_node.start_mark.line + 1
        full = f"{name}.{key}" if name else str(key)
        if key is not None and key != "<<" and key in seen:
            yield (
                f"{where} line {line}: {full.replace('init_args.', '')} is set twice (also at line {seen[key]}), and "
                f"YAML would silently keep only the last; delete one of them"
            )
        if key is not None:
            seen.setdefault(key, line)
        yield from _node_problems(value, where, full)


def _section_problems(
    root: MappingNode, where: str, sections: Mapping[str, bool], scopes: Collection[str]
) -> Iterator[str]:
    """Sections (groups of options) that are null or hold a value instead of options; also ``init_args``."""
    for key_node, value in _entries(root):
        key, line = _key(key_node), key_node.start_mark.line + 1
        if key in scopes and isinstance(value, MappingNode):
            yield from _section_problems(value, where, sections, ())
            continue
        if key is None or key not in sections:
            continue
        example = _EXAMPLES.get(key, "name: value")
        if isinstance(value, ScalarNode) and value.tag == _NULL_TAG:
            yield (
                f"{where} line {line}: section {key!r} has no options (it is null, which would drop every {key} "
                f"option set before it); give it options (e.g. `{key}: {{{example}}}`) or delete the line"
            )
        elif not isinstance(value, MappingNode) and not (sections[key] and isinstance(value, ScalarNode)):
            shown = repr(value.value) if isinstance(value, ScalarNode) else "a list"
            yield (
                f"{where} line {line}: section {key!r} must hold options (`name: value` lines indented below it), "
                f"not {shown}; e.g. `{key}: {{{example}}}` ({_PRINT_CONFIG})"
            )
        for inner_key, inner in _entries(value):
            if _key(inner_key) == "init_args" and not isinstance(inner, MappingNode):
                shown = repr(inner.value) if isinstance(inner, ScalarNode) else "a list"
                yield (
                    f"{where} line {inner_key.start_mark.line + 1}: {key}.init_args must hold the class's options "
                    f"(`name: value` lines indented below it), not {shown}; "
                    f"give it options or delete the line"
                )


def _find(node: Node | None, keys: list[str]) -> Node | None:
    """The value node at ``keys`` below ``node``, looking inside ``init_args`` where a key is not found directly."""
    for key in keys:
        entries = {_key(k): v for k, v in _entries(node)}
        if key not in entries and isinstance(entries.get("init_args"), MappingNode):
            entries = {_key(k): v for k, v in _entries(entries["init_args"])}
        if key not in entries:
            return None
        node = entries[key]
    return node

"""Files: one atomic writer, and config files read with limits.

- :func:`atomic_write`: every file lit-linreg writes; an interrupted write leaves the previous file or the new one.
- :func:`check_yaml` / :func:`load_yaml`: YAML with size, nesting depth and alias expansion bounded (a 1 KB "billion
  laughs" file, or a list that contains itself, would hang whatever walks it), checked on the parser's events before
  anything loads it. ``load_yaml``, jsonargparse's loader behind that check, is installed per command by
  ``lit_linreg.launch``: importing this module changes nothing.
- :func:`check_config_files`: the ``--config`` mistakes that YAML or jsonargparse accept silently or report poorly
  (not UTF-8, a tab, empty, no mapping, a key set twice, a null or scalar section, a float overflow), each one line
  naming the file and line. The file is composed, never constructed.
"""

from __future__ import annotations

import errno
import math
import os
import re
import secrets
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import yaml
from jsonargparse import get_loader
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from lit_linreg.errors import UserError, not_utf8

if TYPE_CHECKING:
    from torch import Tensor


# The one atomic writer, and the one-line messages of a write that fails.
def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Write through ``write(file)`` into a temporary file next to ``path``, fsync it, then rename it over ``path``.

    The fsync comes before the rename, so the name never points at data still unwritten.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the usual permissions, less the umask
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and err.filename is None:
            err.filename = str(path)  # name the file the user knows, not the temporary one
        raise
    # The folder is not fsynced: after a power cut the rename may be undone, leaving the previous file, whole.
    return path


def write_csv(path: str | os.PathLike, header: Sequence[str], columns: Sequence[Tensor]) -> Path:
    """Write equal-length 1-D columns as a CSV file with ``header``, atomically."""
    table = np.column_stack([c.detach().cpu().double().numpy() for c in columns])
    return atomic_write(
        path, lambda file: np.savetxt(file, table, delimiter=",", header=",".join(header), comments="", fmt="%.9g")
    )


def shown_path(path: str | os.PathLike | None) -> str:
    """``path`` relative to the current directory when it lies below it (as the user would type it), else as is."""
    if not path:
        return "-"
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


STORAGE_FIXES = {
    errno.ENOSPC: "the disk is full: free space there, or point --trainer.default_root_dir at another disk",
    errno.EDQUOT: "the disk quota is exceeded: free space, or point --trainer.default_root_dir elsewhere",
    errno.EROFS: "that file system is read-only: point --trainer.default_root_dir at a writable folder",
    errno.EACCES: "permission denied: make it writable, or point --trainer.default_root_dir elsewhere",
    errno.EPERM: "permission denied: make it writable, or point --trainer.default_root_dir elsewhere",
}


def storage_error(error: OSError, path: str | os.PathLike | None = None) -> UserError:
    """One line for a file that cannot be written: what happened to which path, and the fix."""
    fix = STORAGE_FIXES.get(
        error.errno or 0, "check the disk and the folder, or point --trainer.default_root_dir elsewhere"
    )
    return UserError(f"cannot write {error.filename or path or 'a file'} ({error.strerror or error}): {fix}")


# YAML with limits: size, nesting depth and alias expansion bounded before anything loads it.
MAX_CHARS = 16 * 2**20  # 16 Mi characters: a config is a few hundred; 100,000 predict_x values about 2 Mi
MAX_DEPTH = 100  # levels of nesting: lit-linreg's options need 4
MAX_VALUES = 2_000_000  # values (scalars, lists and mappings) once every alias is expanded
_JSONARGPARSE_YAML = get_loader("yaml")  # jsonargparse's default loader, read before anyone replaces it
_PARSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's, where PyYAML was built with it
_LIBYAML_TOO_DEEP = "exceeded maximum nesting depth"  # libyaml's own limit (1,000), which [[[... on one line hits first


def check_yaml(text: str, where: str, lines: bool = True) -> None:
    """Raise :class:`UserError` if the YAML ``text`` (``where``: e.g. ``config file x.yaml``) is over
    :data:`MAX_CHARS` characters, nests deeper than :data:`MAX_DEPTH`, holds an alias of a node that contains it, or
    expands to more than :data:`MAX_VALUES` values; ``lines``: name the line. Text that is not YAML passes: the loader
    reports that itself."""
    if len(text) > MAX_CHARS:
        raise UserError(
            f"{where} is {len(text):,} characters long, over the limit of {MAX_CHARS:,} for YAML; put large data "
            f"in a CSV file (data.csv_path) instead"
        )

    def at(mark: yaml.Mark) -> str:
        return f"{where} line {mark.line + 1}" if lines else where

    sizes: dict[str, int] = {}  # anchor -> values in its node, aliases expanded
    open_nodes: list[tuple[str | None, int]] = []  # (anchor, count before it) of each list or mapping being read
    count = 0
    try:
        for event in yaml.parse(text, Loader=_PARSER):
            if isinstance(event, yaml.AliasEvent):
                if any(anchor == event.anchor for anchor, _ in open_nodes):
                    raise UserError(
                        f"{at(event.start_mark)}: the alias *{event.anchor} stands for a node that contains it (a "
                        f"recursive alias), which no option value can be; write the value out instead"
                    )
                count += sizes.get(event.anchor, 0)  # an undefined alias: the loader reports it
            elif isinstance(event, yaml.ScalarEvent):
                count += 1
                if event.anchor is not None:
                    sizes[event.anchor] = 1
            elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                open_nodes.append((event.anchor, count))
                count += 1
                if len(open_nodes) > MAX_DEPTH:
                    raise _too_deep(at(event.start_mark))
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                anchor, before = open_nodes.pop()
                if anchor is not None:
                    sizes[anchor] = count - before
            if count > MAX_VALUES:
                raise UserError(
                    f"{at(event.start_mark)}: it stands for more than {MAX_VALUES:,} values once its aliases are "
                    f"expanded (a 'billion laughs'), the limit for YAML; use fewer aliases or values"
                )
    except yaml.YAMLError as err:
        if getattr(err, "problem", None) == _LIBYAML_TOO_DEEP:
            raise _too_deep(at(err.problem_mark)) from None


def _too_deep(location: str) -> UserError:
    return UserError(
        f"{location}: lists and mappings nest more than {MAX_DEPTH} levels deep, the limit for YAML; no option needs "
        f"that: flatten it"
    )


def load_yaml(stream: str, path: str = "") -> Any:
    """jsonargparse's YAML loader after :func:`check_yaml`; ``path`` is the config file's name, when it is one.

    A text that jsonargparse's loader crashes on is a ``yaml.YAMLError`` here, as any other text that is no value."""
    check_yaml(stream, f"config file {path}" if path else "an option's value", lines=bool(path))
    try:
        return _JSONARGPARSE_YAML(stream)
    except TypeError as err:  # jsonargparse 4.53 on a mapping whose one key is null ("&a:", "? "): not an option value
        raise yaml.YAMLError(f"a mapping whose only key is null ({err})") from err


# --config files: the mistakes YAML or jsonargparse accept silently, by file and line.
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
    text = data.decode("utf-8-sig")
    try:
        check_yaml(text, where)  # bounded size, depth and aliases before anything walks it
    except UserError as err:
        return str(err)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
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
                    f"(`name: value` lines indented below it), not {shown}; give it options or delete the line"
                )

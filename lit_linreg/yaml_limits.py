"""YAML read with limits: size, nesting depth and alias expansion are bounded, and each breach is one clear line.

YAML's aliases let a 1 KB file stand for a billion values (the "billion laughs"), or for a list that contains itself;
either hangs or crashes whatever walks the result. :func:`check_yaml` reads the text's events (libyaml's parser:
no nodes are built and no alias is expanded) and counts what the text would expand to before anything loads it.

:func:`load_yaml` is jsonargparse's own YAML loader behind that check, for
``jsonargparse.set_loader("yaml", load_yaml, exceptions=(yaml.YAMLError,))``: every config file and option value then
loads exactly as before, or fails with a :class:`~lit_linreg.errors.UserError`. Importing this module changes nothing.
"""

from __future__ import annotations

from typing import Any

import yaml
from jsonargparse import get_loader

from lit_linreg.errors import UserError

MAX_CHARS = 16 * 2**20  # 16 Mi characters: a config is a few hundred; 100,000 predict_x values about 2 Mi
MAX_DEPTH = 100  # levels of nesting: lit-linreg's options need 4
MAX_VALUES = 2_000_000  # values (scalars, lists and mappings) once every alias is expanded
_JSONARGPARSE_YAML = get_loader("yaml")  # jsonargparse's default loader, read before anyone replaces it
_PARSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's, where PyYAML was built with it
_LIBYAML_TOO_DEEP = "exceeded maximum nesting depth"  # libyaml's own limit (1,000), which [[[... on one line hits first
_OPENS = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_CLOSES = (yaml.SequenceEndEvent, yaml.MappingEndEvent)


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
            elif isinstance(event, _OPENS):
                open_nodes.append((event.anchor, count))
                count += 1
                if len(open_nodes) > MAX_DEPTH:
                    raise _too_deep(at(event.start_mark))
            elif isinstance(event, _CLOSES):
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

"""The stack file's problems in vdesk's words, in the order of the file (components.desktop.wording words them)."""
from __future__ import annotations

from typing import Any, Sequence, get_args, get_origin

from pydantic import ValidationError

from ..desktop.wording import KEY, Loc, bare, is_model, loc_of, path, unknown  # noqa: F401 (the config's words)
from ..desktop.wording import from_error as _from_error
from .stackfile import StackFile


def from_error(exc: ValidationError) -> list[tuple[Loc, str]]:
    """Each of the stack file's errors as (place, message)."""
    return _from_error(exc, StackFile)


def in_file_order(problems: Sequence[tuple[Loc, str]], raw: dict) -> list[tuple[str, str]]:
    """Sorted as the file reads: sections and settings in declared order, entries as written; each once."""
    result = []
    for loc, message in sorted(problems, key=lambda p: _position(p[0], raw)):
        if (path(loc), message) not in result:
            result.append((path(loc), message))
    return result


def _position(loc: Loc, raw: Any) -> tuple[int, ...]:
    """Where a place is: declared settings by their order in the model, entries by where they are written.

    Undeclared keys come first (a typo often explains the rest), places not written come last.
    """
    key, tp, node = [], StackFile, raw
    for part in loc:
        tp = bare(tp)[0]
        if is_model(tp):
            names = list(tp.model_fields)
            written = isinstance(node, dict) and part in node
            key.append(names.index(part) if part in names else -1 if written else len(names))
            tp = tp.model_fields[part].annotation if part in names else None
        elif part == KEY:
            key.append(-1)
            continue
        elif get_origin(tp) is dict:
            keys = list(node) if isinstance(node, dict) else []
            key.append(keys.index(part) if part in keys else len(keys))
            tp = get_args(tp)[1]
        else:
            key.append(part if isinstance(part, int) else 0)
            tp = get_args(tp)[0] if get_origin(tp) is list else None
        node = node.get(part) if isinstance(node, dict) else \
            node[part] if isinstance(node, list) and isinstance(part, int) and part < len(node) else None
    return tuple(key)

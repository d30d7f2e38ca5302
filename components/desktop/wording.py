"""pydantic's validation errors in vdesk's words: (path, message) pairs, for any model of vdesk's Settings.

Every message is chosen here, from the error's type and what the models
declare at its place: the field's type, its bounds, its `Wording`, the
entry's `noun`. Messages never show a value that a `Wording` leaves out
(a password or a private key pasted in the wrong place). The stack file's
problems (components.config.problems) and a desktop's arguments are worded alike.
"""
from __future__ import annotations

import dataclasses
import re
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from .settings import Settings, Wording

Loc = tuple[str | int, ...]
KEY = "[key]"    # pydantic's marker for a problem with a mapping's key rather than its value
_TYPE_ERRORS = ("string_type", "list_type", "dict_type", "model_type", "model_attributes_type", "float_type",
                "tuple_type", "set_type")
_KINDS = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list",
          dict: "a mapping"}


def path(loc: Loc) -> str:
    """('users', 3, 'profile') -> 'users[3].profile', the form vdesk reports."""
    text = ""
    for part in loc:
        if part != KEY:
            text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def loc_of(text: str) -> Loc:
    """'users[3].checks[0]' -> ('users', 3, 'checks', 0), for problems other modules report as paths."""
    return tuple(int(index) if index else key for key, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", text))


def unknown(model: type[Settings]) -> str:
    """What a key that `model` does not declare is told."""
    return f"unknown {model.key_noun} (allowed: {', '.join(model.model_fields)})"


def from_error(exc: ValidationError, root: type[BaseModel]) -> list[tuple[Loc, str]]:
    """Each of pydantic's errors as (place, message), for a model `root` and the models it holds; several
    missing parts of one value become one problem."""
    found = []
    for error in exc.errors():
        problem = _worded(error, root)
        if problem not in found:
            found.append(problem)
    return found


@dataclasses.dataclass
class _Place:
    """What the models declare at a place in the file."""
    model: type[BaseModel] | None    # the model whose field (or undeclared key) it is
    type: Any = None                 # the declared type there, Annotated and Optional taken off
    marks: list = dataclasses.field(default_factory=list)   # its constraints and Wording

    @property
    def wording(self) -> Wording:
        return next((m for m in reversed(self.marks) if isinstance(m, Wording)), Wording())

    def bound(self, name: str):
        return next((getattr(m, name) for m in self.marks if getattr(m, name, None) is not None), None)


def bare(tp) -> tuple[Any, list]:
    """A type without Annotated and `| None`, and the metadata taken off."""
    marks = []
    while True:
        if get_origin(tp) is Annotated:
            tp, *more = get_args(tp)
            marks += more
        elif get_origin(tp) in (Union, types.UnionType) and type(None) in get_args(tp) \
                and len(get_args(tp)) == 2:
            tp = next(arg for arg in get_args(tp) if arg is not type(None))
        else:
            break
    flat = []
    for mark in marks:      # Field(ge=1) inside Annotated carries its constraints as metadata
        flat += [*mark.metadata, mark] if isinstance(mark, FieldInfo) else [mark]
    return tp, flat


def is_model(tp) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _place(loc: Loc, root: type[BaseModel]) -> _Place:
    place = _Place(None, root)
    for i, part in enumerate(loc):
        tp = bare(place.type)[0]
        if is_model(tp):
            field = tp.model_fields.get(part)
            if field is None:
                return _Place(tp)
            place = _Place(tp, field.annotation, [*field.metadata])
        elif get_origin(tp) is dict:
            key_type, value_type = get_args(tp)
            place = _Place(place.model, key_type if loc[i + 1:i + 2] == (KEY,) else value_type)
        elif get_origin(tp) is list:
            place = _Place(place.model, get_args(tp)[0])
        elif part != KEY:
            return _Place(place.model)
    tp, marks = bare(place.type)
    return _Place(place.model, tp, [*place.marks, *marks])


def _a(noun: str) -> str:
    return f"an {noun}" if noun[:1] in "aeio" else f"a {noun}"


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _required(model: type[BaseModel]) -> list[str]:
    return [name for name, field in model.model_fields.items() if field.is_required()]


def _expected(place: _Place) -> str:
    """What a value of the declared type is, for "must be ..."."""
    tp = place.type
    if is_model(tp):
        if tp.record:
            return f"a mapping {{{', '.join(tp.model_fields)}}}"
        needed = _required(tp)
        return f"a mapping with at least {_and([_a(n) for n in needed])}" if needed else "a mapping of settings"
    item = bare(get_args(tp)[-1])[0] if get_args(tp) else None
    if get_origin(tp) is dict and is_model(item):
        return "a mapping of names to settings"
    if get_origin(tp) is list and is_model(item):
        fields = f" {{{', '.join(item.model_fields)}}}" if item.record else ""
        return f"a list of {item.noun}s{fields}"
    return _KINDS.get(get_origin(tp) or tp, "valid")


def _fill(template: str, **values: str) -> str:
    """A Wording's text with its {placeholders} filled in (other braces are literal: "{start, end}")."""
    for name, value in values.items():
        template = template.replace(f"{{{name}}}", value)
    return template


def _got(value) -> str:
    return "null" if value is None else type(value).__name__


def _worded(error: dict, root: type[BaseModel]) -> tuple[Loc, str]:
    """The one place where pydantic's error types become vdesk's messages.

    missing            -> the Wording's `missing`, "is required"; a part of a small value: "needs a and b"
    extra_forbidden    -> "unknown setting (allowed: ...)", the model's own keys
    value_error        -> the validator's message as it is (vdesk's rules, e.g. components.names)
    literal_error, string_pattern_mismatch -> the Wording's `invalid`, or "'x' is not one of a, b"
    bool_type          -> "must be true or false"
    int_type, greater_than_equal -> "must be an integer >= 1, got 'two'"
    less_than_equal    -> "must be at most 3650, got 4000"
    too_short          -> the Wording's `missing` or `expected`
    *_type (wrong kind of value) -> "must be " + the Wording's `expected`, or what the model declares there
    """
    loc, kind, value, ctx = tuple(error["loc"]), error["type"], error.get("input"), error.get("ctx") or {}
    place = _place(loc, root)
    wording = place.wording
    options = ", ".join(str(o) for o in get_args(place.type)) if get_origin(place.type) is Literal else ""
    if kind == "missing" and place.model is not None and getattr(place.model, "record", False):
        outer = _place(loc[:-1], root)   # a part of a small value: said once, of the value
        return loc[:-1], (f"must be {outer.wording.expected}" if outer.wording.expected
                          else f"needs {_and(_required(place.model))}")
    if kind == "missing":
        return loc, wording.missing or "is required"
    if kind == "extra_forbidden":
        return loc, unknown(place.model)
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return loc, str(ctx["error"])
    if wording.invalid and kind in ("string_type", "string_pattern_mismatch", "literal_error"):
        return loc, _fill(wording.invalid, input=repr(value), options=options)
    if kind == "literal_error":
        return loc, f"{value!r} is not one of {options}"
    if kind == "bool_type":
        return loc, "must be true or false"
    if kind in ("int_type", "greater_than_equal", "int_from_float"):
        minimum = ctx.get("ge", place.bound("ge"))
        return loc, f"must be an integer{'' if minimum is None else f' >= {minimum}'}, got {value!r}"
    if kind == "less_than_equal":
        return loc, f"must be at most {ctx.get('le')}, got {value!r}"
    if kind == "too_short":
        return loc, wording.missing or (f"must be {wording.expected}" if wording.expected
                                        else f"must have at least {ctx.get('min_length', 1)} item(s)")
    if kind == "string_too_short":
        return loc, "must not be empty"
    if kind == "string_pattern_mismatch":
        return loc, f"{value!r} does not match {ctx.get('pattern')}"
    if kind in _TYPE_ERRORS:
        if wording.expected:
            return loc, f"must be {_fill(wording.expected, got=_got(value))}"
        return loc, f"must be {_expected(place)}, got {_got(value)}"
    return loc, error["msg"]

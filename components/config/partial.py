"""What is usable of a stack file that failed validation, so that resolve.py can still report everything else.

Each setting is validated on its own: a valid one keeps its value, a broken
one becomes None and its place is recorded, so that no check builds on it
(its own problem is reported already). Mappings and lists keep their good
entries and items, at the places they were written.
"""
from __future__ import annotations

import functools
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from .problems import Loc, bare, is_model

_STRICT = ConfigDict(strict=True)   # as the models are (stackfile.Settings)
_ADAPTERS: dict[int, tuple[Any, TypeAdapter]] = {}


def salvage(model: type[BaseModel], data: Any, loc: Loc, broken: set[Loc]) -> BaseModel | None:
    """`model` from `data`, setting by setting; None when data is not even a mapping."""
    if not isinstance(data, dict):
        broken.add(loc)
        return None
    values, written = {}, set()
    for name, field in model.model_fields.items():
        if data.get(name) is not None:      # (null is unset, as in stackfile.Settings)
            value = data[name]
            written.add(name)
        elif field.is_required():
            values[name] = None
            continue
        else:   # a default is converted like a written value (stackfile.Settings: validate_default)
            value = field.get_default(call_default_factory=True)
            if value is None or isinstance(value, BaseModel):
                values[name] = value
                continue
        if is_model(bare(field.annotation)[0]):
            values[name] = _one(field.annotation, value, (*loc, name), broken)
            continue
        try:
            values[name] = _field_adapter(model, name).validate_python(value)
        except ValidationError:
            broken.add((*loc, name))
            values[name] = _parts(field.annotation, value, (*loc, name), broken)
    return model.model_construct(_fields_set=written, **values)


def is_broken(broken: set[Loc], loc: Loc) -> bool:
    """Whether the value at `loc`, or a part of it, failed validation."""
    return any(b[:len(loc)] == loc for b in broken)


def _parts(annotation: Any, value: Any, loc: Loc, broken: set[Loc]) -> Any:
    """The good parts of a broken mapping or list (None for anything else)."""
    tp = bare(annotation)[0]
    if get_origin(tp) is list and isinstance(value, list):
        return [_one(get_args(tp)[0], item, (*loc, i), broken) for i, item in enumerate(value)]
    if get_origin(tp) is dict and isinstance(value, dict):
        key_type, value_type = get_args(tp)
        return {key: _one(value_type, {} if item is None and is_model(bare(value_type)[0]) else item,
                          (*loc, key), broken)     # (a named entry with nothing under it: see stackfile._named)
                for key, item in value.items() if _valid(key_type, key)}
    return None


def _one(annotation: Any, value: Any, loc: Loc, broken: set[Loc]) -> Any:
    """One entry or item: validated, salvaged (an entry), or None."""
    tp = bare(annotation)[0]
    if is_model(tp):
        return salvage(tp, value, loc, broken)
    try:
        return _adapter(annotation).validate_python(value)
    except ValidationError:
        broken.add(loc)
        return _parts(annotation, value, loc, broken)


def _valid(annotation: Any, value: Any) -> bool:
    try:
        _adapter(annotation).validate_python(value)
        return True
    except ValidationError:
        return False


@functools.cache
def _field_adapter(model: type[BaseModel], name: str) -> TypeAdapter:
    field = model.model_fields[name]
    return TypeAdapter(Annotated[field.annotation, *field.metadata] if field.metadata else field.annotation,
                       config=_STRICT)


def _adapter(annotation: Any) -> TypeAdapter:
    if id(annotation) not in _ADAPTERS:    # (the annotation is kept, so its id stays its own)
        _ADAPTERS[id(annotation)] = (annotation, TypeAdapter(annotation, config=_STRICT))
    return _ADAPTERS[id(annotation)][1]

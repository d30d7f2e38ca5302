"""A thin, declarative base for vdesk's dynamic providers.

Each resource declares its properties once (type, required, whether a change
replaces); check() and diff() are derived from that table, and so is the table
in docs/properties.md, so the documentation cannot drift from the behaviour.

An input that is a setting of a declared kind (components.kinds: what the stack
file and the component arguments declare too) is checked by that declaration
(`declared`). A provider keeps a check of its own only where it is the last
line: for what no setting declares (host URIs, paths, the lists it turns into
XML), for what it reads back from its state and libvirt, and for bounds that
are the object's rather than a setting's (a domain's memory may be below a
desktop's 256MiB minimum: the providers' own tests make 64MiB guests).
"""
from __future__ import annotations

import dataclasses
import functools
import logging
from typing import Any, Callable

from pulumi.dynamic import (CheckFailure, CheckResult, CreateResult, DiffResult, ReadResult, ResourceProvider,
                            UpdateResult)
from pulumi.output import Unknown
from pydantic import TypeAdapter, ValidationError

from ..errors import VdeskError
from ..kinds import Wording
from . import journal, ownership

log = logging.getLogger(__name__)

UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # Pulumi's marker for "known only after apply"
ADOPTING = "__adopting"   # set by check: this create takes over an existing object (the plan says "adopt")
_INTERNAL = {"__provider", ADOPTING}


@dataclasses.dataclass(frozen=True)
class Prop:
    """One input property: its type, whether it must be given, how a change is applied."""

    type: type | tuple[type, ...]
    required: bool = False
    replaces: bool = False           # a change creates a new object
    default: Any = None
    validate: Callable[[Any], str | None] | None = None   # returns a message when invalid
    doc: str = ""
    secret: bool = False
    inert: bool = False              # matters only when the object is created: a change does nothing
    kind: Any = None                 # the declaration (components.kinds) its values are checked by, if any

    @property
    def change(self) -> str:
        if self.inert:
            return "no effect on an existing object"
        return "replace" if self.replaces else "update in place"


_JSON_TYPES = {"integer": int, "string": str, "object": dict, "array": list, "boolean": bool, "number": float}


def declared(kind, problem: str | None = None, **prop) -> Prop:
    """A property whose values are a kind declared in components.kinds (the same declaration the stack file and
    the component arguments use): its type and its check are that declaration's. `problem`: the provider's
    words for a value the kind refuses, {input} standing for it (default: the declaration's own, at the place in
    the value)."""
    adapter = TypeAdapter(kind)
    wording = next((m for m in getattr(kind, "__metadata__", ()) if isinstance(m, Wording)), Wording())

    def check(value) -> str | None:
        try:
            adapter.validate_python(_normal(value))
        except ValidationError as exc:
            # (a part known only after apply, in a preview, is judged once it is known)
            errors = [error for error in exc.errors() if not has_unknown(error.get("input"))]
            if not errors:
                return None
            if problem is not None:
                return problem.replace("{input}", repr(value))
            return "; ".join(dict.fromkeys(worded(error, value) for error in errors))   # every problem, once
        return None

    def worded(error, value) -> str:
        if wording.invalid and not error["loc"]:
            return wording.invalid.format(input=repr(value), options="")
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"] if p != "[key]")
        message = error["msg"].removeprefix("Value error, ")
        return f"{where.removeprefix('.')}: {message}" if where else message

    return Prop(_JSON_TYPES[adapter.json_schema()["type"]], validate=check, kind=kind, **prop)


def _type_name(t) -> str:
    if isinstance(t, tuple):
        return " or ".join(x.__name__ for x in t)
    return t.__name__


def _numbers_restored(method):
    """Pulumi's wire format (protobuf Struct) turns every number into a float,
    nested ones included; give providers back the integers the user wrote."""

    @functools.wraps(method)
    def wrapper(self, *args):
        return method(self, *(_normal(a) if isinstance(a, dict) else a for a in args))

    return wrapper


ADOPT = Prop(bool, default=False, inert=True,
             doc="take over an existing object of this name instead of failing (else create it); "
                 "its replace-properties must match, in-place ones are then updated")
OWNER = Prop(str, default="", inert=True,
             doc="the stack that makes it: its creation journal lets the next run take over what an "
                 "interrupted run left behind, and no other stack adopts, refreshes or deletes it")
PROJECT = Prop(str, default="", inert=True,
               doc="the Pulumi project of the stack that makes it (in its owner metadata)")


def _renames_read(method):
    """Inputs stored under a name a provider has since renamed (RENAMED) are read as the new one, in its unit."""

    @functools.wraps(method)
    def wrapper(self, *args):
        return method(self, *(self.renamed(a) if isinstance(a, dict) else a for a in args))

    return wrapper


def _owned_read(read):
    """A refresh never takes another stack's object into this stack's state: to this stack it is gone."""

    @functools.wraps(read)
    def wrapper(self, id_, props):
        if self.other_owners(props):
            return ReadResult("", {})
        return read(self, id_, props)

    return wrapper


def _adopting(create):
    """With `adopt`, or the journal's word that an interrupted run of this stack made it, an object that
    already exists is taken over instead of created; every create is journaled before it starts."""

    @functools.wraps(create)
    def wrapper(self, props):
        identity = self.journal_identity(props)
        entry = journal.lookup(*identity) if identity else None
        if props.get("adopt") or entry:
            existing = self.existing_id(props)
            if existing is not None and props.get("adopt"):
                if theirs := self.other_owners(props):
                    raise VdeskError(f"cannot adopt: {self.owned_elsewhere(props, theirs)}")
                result = self.adopt(existing, props)
                if identity:
                    journal.note(*identity, journal.CREATED)
                return result
            if existing is not None and (recovered := self.recover(existing, props, entry)) is not None:
                return recovered
        elif identity and self.existing_id(props) is not None:
            return create(self, props)       # someone else's object of this name: create refuses it, no entry
        if identity:
            journal.note(*identity, journal.CREATING)
        try:
            result = create(self, props)
        except BaseException:
            if identity and not self._left_behind(props):
                journal.forget(*identity)   # a failed create left nothing behind (it is transactional)
            raise                            # else (a connection lost mid-way): the entry lets the next run remake it
        if identity:
            journal.note(*identity, journal.CREATED)
        return result

    return wrapper


def _journaled_delete(delete):
    """Once the object is gone, the journal no longer speaks for it. Another stack's object is never
    deleted: it is left as it is (and so drops out of this stack's state)."""

    @functools.wraps(delete)
    def wrapper(self, id_, props):
        if theirs := self.other_owners(props):
            log.warning("leaving %s: %s", props.get("name"), self.owned_elsewhere(props, theirs))
            return None
        result = delete(self, id_, props)
        identity = self.journal_identity(props)
        if identity and not self._left_behind(props):   # (a pool kept for the homes it holds stays noted)
            journal.forget(*identity)
        return result

    return wrapper


class DeclaredProvider(ResourceProvider):
    """check/diff from PROPS; subclasses implement create/read/update/delete.

    A provider that declares the ADOPT property and implements existing_id()
    can take over objects made outside vdesk (or left behind by a lost state).
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in ("create", "read", "update", "delete"):
            if name in cls.__dict__:
                setattr(cls, name, _numbers_restored(cls.__dict__[name]))
        for name in ("check", "diff", "create", "read", "update", "delete"):
            if cls.RENAMED and (name in cls.__dict__ or name in ("check", "diff")):
                setattr(cls, name, _renames_read(getattr(cls, name)))
        if "create" in cls.__dict__ and "adopt" in cls.PROPS:
            cls.create = _adopting(cls.create)
        if "delete" in cls.__dict__ and (cls.JOURNAL_KIND or cls.OWNER_KIND):
            cls.delete = _journaled_delete(cls.delete)
        if "read" in cls.__dict__ and (cls.JOURNAL_KIND or cls.OWNER_KIND):
            cls.read = _owned_read(cls.read)

    PROPS: dict[str, Prop] = {}
    OUTPUTS: tuple[str, ...] = ()    # read-only properties the provider reports
    JOURNAL_KIND = ""                # the kind of libvirt object it makes (journaled when an owner is given)
    OWNER_KIND = ""                  # the kind whose owner is read, when it is not journaled (containers)
    # Replacing with the same name/MAC cannot coexist: delete the old one first.
    DELETE_BEFORE_REPLACE = True
    # Inputs renamed since a state may have stored them: old name -> (new name, factor from the old unit to the
    # new). The old name is read as the new one wherever state or inputs arrive, so a state written before the
    # rename reads, refreshes and diffs as if written after it (a no-op `up` shows no change).
    RENAMED: dict[str, tuple[str, int]] = {}

    def renamed(self, props: dict) -> dict:
        """props with every input of an old name under its new name, in the new unit."""
        if not any(old in props for old in self.RENAMED):
            return props
        props = dict(props)
        for old, (new, factor) in self.RENAMED.items():
            if old not in props:
                continue
            value = props.pop(old)   # (written in the old dialect, it is what was meant)
            props[new] = value * factor if isinstance(value, (int, float)) and not isinstance(value, bool) \
                else value          # (a value known only after apply stays as it is)
        return props

    # -- check ------------------------------------------------------------------
    def check(self, _olds, news):
        inputs = dict(news)
        failures: list[CheckFailure] = []
        for name, prop in self.PROPS.items():
            value = inputs.get(name)
            if value is None and prop.default is not None:
                inputs[name] = value = prop.default
            if value is None:
                if prop.required:
                    failures.append(CheckFailure(name, f"{name} is required"))
                continue
            if _is_unknown(value):
                continue
            if prop.type is int and isinstance(value, float) and value.is_integer():
                inputs[name] = value = int(value)  # protobuf numbers arrive as floats
            if not isinstance(value, prop.type) or (prop.type is int and isinstance(value, bool)):
                failures.append(CheckFailure(
                    name, f"{name} must be {_type_name(prop.type)}, got {type(value).__name__} {value!r}"))
                continue
            if prop.validate and (message := prop.validate(value)):
                failures.append(CheckFailure(name, f"{name}: {message}"))
        unknown_keys = {k for k, v in inputs.items() if v is not None} - set(self.PROPS) - set(self.OUTPUTS) - _INTERNAL
        for name in sorted(unknown_keys):
            failures.append(CheckFailure(name, f"{name} is not a property of {type(self).__name__}"))
        failures += [CheckFailure(p, m) for p, m in self.check_more(inputs)]
        if not failures:
            failures += self._adoption_check(_olds, inputs)
        return CheckResult(inputs, failures)

    def check_more(self, inputs: dict) -> list[tuple[str, str]]:
        """Cross-field rules; return (property, message) pairs."""
        return []

    # -- adoption -----------------------------------------------------------------
    def existing_id(self, props: dict) -> str | None:
        """The id of an existing object with this identity (name, host, pool), or None."""
        raise NotImplementedError(f"{type(self).__name__} cannot adopt")

    def adoption_problems(self, props: dict) -> list[tuple[str, str]]:
        """Why the existing object cannot be adopted as declared: (property, message) pairs.

        Only replace-properties count: adoption never replaces, and in-place
        properties are brought to the declared values by update().
        """
        existing = self.existing_id(props)
        if existing is None:
            return []
        return self._mismatches(self.read(existing, props).outs or {}, props)

    def _mismatches(self, observed: dict, props: dict) -> list[tuple[str, str]]:
        problems = []
        for name, prop in self.PROPS.items():
            want, have = props.get(name), observed.get(name)
            if prop.replaces and want is not None and have is not None and not _is_unknown(want) \
                    and _normal(want) != _normal(have):
                problems.append((name, f"{name}: the existing {props.get('name')!r} has {have!r}, declared "
                                       f"{want!r}; adoption never replaces, so declare what exists"))
        return problems

    def adopt(self, id_: str, props: dict) -> CreateResult:
        """Take over an existing object: refuse on a replace-property mismatch, else update it in place."""
        observed = self.read(id_, props).outs or {}
        problems = self._mismatches(observed, props)
        if problems:
            raise VdeskError(f"cannot adopt {props.get('name')!r}: " + "; ".join(m for _, m in problems))
        log.info("adopting existing %s %r", type(self).__name__, props.get("name"))
        return CreateResult(id_, self.update_adopted(id_, {**props, **observed}, props).outs)

    def _left_behind(self, props: dict) -> bool:
        """After a failed create: does an object exist anyway (or can that not even be asked)?"""
        try:
            return self.existing_id(props) is not None
        except Exception:          # the host cannot be asked: assume the worst, keep the journal entry
            return True

    def journal_identity(self, props: dict) -> tuple[str, str, str, str] | None:
        """(owner, kind, host, name) of the object in the creation journal, or None when not journaled."""
        owner = props.get("owner")
        if not self.JOURNAL_KIND or not isinstance(owner, str) or not owner or _is_unknown(owner):
            return None
        return owner, self.JOURNAL_KIND, props["host_uri"], self.journal_name(props)

    def journal_name(self, props: dict) -> str:
        return props["name"]

    def owner_kind(self) -> str:
        return self.JOURNAL_KIND or self.OWNER_KIND

    def owned_elsewhere(self, props: dict, theirs: list[str]) -> str:
        return ownership.refusal(self.owner_kind(), props.get("name"), theirs)

    def other_owners(self, props: dict) -> list[str]:
        """The other stacks that own the object these props name ([] when the host cannot be asked, and
        without an owner: what only an import, never a stack's program, declares)."""
        kind = self.owner_kind()
        if not kind or not props.get("owner") or not props.get("host_uri") or not props.get("name") \
                or any(_is_unknown(props.get(k)) for k in ("host_uri", "name", "pool", "owner")):
            return []
        return ownership.safe_others(props["host_uri"], kind, self.journal_name(props), props["owner"],
                                     props.get("project") or "")

    def recover(self, id_: str, props: dict, entry) -> CreateResult | None:
        """Take over what an interrupted run of this stack left: a complete object that matches the
        declaration is updated in place; anything else is removed (it is ours) and None returned,
        so it is made again."""
        if entry.state == journal.CREATED:
            observed = self.read(id_, props).outs or {}
            if observed and not self._mismatches(observed, props):
                log.warning("taking over %s %r, left by an interrupted run", type(self).__name__, props.get("name"))
                return CreateResult(id_, self.update(id_, {**props, **observed}, props).outs)
        log.warning("removing %s %r: an interrupted run left it %s", type(self).__name__, props.get("name"),
                    "half made" if entry.state == journal.CREATING else "different from the declaration")
        self.delete(id_, props)
        return None

    def update_adopted(self, id_: str, observed: dict, props: dict) -> UpdateResult:
        """Bring an adopted object to the declaration; by default an ordinary update."""
        return self.update(id_, observed, props)

    def _adoption_check(self, olds, inputs) -> list[CheckFailure]:
        """At preview: an object to adopt must match what is declared (nothing is touched yet)."""
        if olds or not inputs.get("adopt") or "adopt" not in self.PROPS:
            return []
        if any(_is_unknown(v) for v in inputs.values()):
            return []  # depends on something not created yet; create() checks again
        try:
            if theirs := self.other_owners(inputs):
                return [CheckFailure("adopt", "adopt: " + self.owned_elsewhere(inputs, theirs))]
            problems = self.adoption_problems(inputs)
            if not problems and self.existing_id(inputs) is not None:
                inputs[ADOPTING] = True
            return [CheckFailure(p, m) for p, m in problems]
        except Exception as exc:  # host unreachable at preview: create() will say so
            log.info("adoption check skipped: %s", exc)
            return []

    # -- diff -------------------------------------------------------------------
    def diff(self, _id, olds, news):
        changed = [name for name, prop in self.PROPS.items()
                   if not prop.inert and _normal(olds.get(name)) != _normal(news.get(name))]
        replaces = [name for name in changed if self.PROPS[name].replaces]
        return DiffResult(
            changes=bool(changed),
            replaces=replaces,
            stables=[name for name in self.PROPS if name not in changed and not self.PROPS[name].replaces],
            delete_before_replace=self.DELETE_BEFORE_REPLACE if replaces else False,
        )

    # -- helpers ------------------------------------------------------------------
    def inputs_of(self, props: dict) -> dict:
        return {name: props.get(name) for name in self.PROPS}

    @classmethod
    def resource_props(cls, kind: str, props: dict) -> dict:
        """A Resource's props: the declared inputs (a typo fails at once) plus a slot per output."""
        unknown = set(props) - set(cls.PROPS)
        if unknown:
            raise TypeError(f"{kind} has no properties {sorted(unknown)}")
        return {**props, **dict.fromkeys(cls.OUTPUTS)}


class GateProvider(DeclaredProvider):
    """A check that is its own resource: it runs on create and on every update, and owns nothing.

    Subclasses name the input whose value is the id (ID_PROP) and implement gate(props) -> outputs.
    """

    ID_PROP = ""

    def create(self, props):
        return CreateResult(props[self.ID_PROP], self.gate(props))

    def update(self, _id, _olds, news):
        return UpdateResult(self.gate(news))

    def read(self, id_, props):
        return ReadResult(id_, props)

    def delete(self, _id, _props):
        return None

    def gate(self, props) -> dict:
        raise NotImplementedError


def _is_unknown(value) -> bool:
    """A value known only after apply: the marker string, or (in previews) pulumi's Unknown object."""
    return isinstance(value, Unknown) or (isinstance(value, str) and value == UNKNOWN)


def has_unknown(value) -> bool:
    """Is the value, or any part of it, known only after apply?"""
    if isinstance(value, dict):
        return any(has_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(has_unknown(v) for v in value)
    return _is_unknown(value)


def _normal(value):
    """Compare ints and whole floats alike (protobuf turns every number into a float)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    return value

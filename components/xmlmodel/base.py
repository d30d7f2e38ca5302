"""Typed, declarative libvirt XML: one class per element, properties mapped to paths.

The same model builds new XML and parses what libvirt returns from XMLDesc(), so
a refresh compares models, never strings.
"""
from __future__ import annotations

import copy
from typing import Any, Callable, ClassVar, Iterator

from lxml import etree

VDESK_NS = "urn:vdesk:1"  # no '/' so Clark names survive the path splitter

_UNIT_FACTORS = {
    "b": 1, "bytes": 1,
    "kb": 1000, "k": 1024, "kib": 1024,
    "mb": 1000**2, "m": 1024**2, "mib": 1024**2,
    "gb": 1000**3, "g": 1024**3, "gib": 1024**3,
    "tb": 1000**4, "t": 1024**4, "tib": 1024**4,
}


def _split(path: str) -> tuple[list[str], str | None]:
    """'a/b/@c' -> (['a', 'b'], 'c'); 'a/b' -> (['a', 'b'], None); '.' -> ([], None)."""
    parts = [p for p in path.split("/") if p and p != "."]
    if parts and parts[-1].startswith("@"):
        return parts[:-1], parts[-1][1:]
    return parts, None


def _find(el: etree._Element, steps: list[str]) -> etree._Element | None:
    for step in steps:
        el = el.find(step)
        if el is None:
            return None
    return el


def _ensure(el: etree._Element, steps: list[str]) -> etree._Element:
    for step in steps:
        child = el.find(step)
        if child is None:
            nsmap = {"vdesk": VDESK_NS} if step.startswith("{" + VDESK_NS) else None
            child = etree.SubElement(el, step, nsmap=nsmap)
        el = child
    return el


class _Property:
    """Descriptor plumbing shared by every kind of property: values live in obj._values."""

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        return obj._values.get(self.name)

    def __set__(self, obj, value):
        obj._values[self.name] = value


class _ListProperty(_Property):
    """A property whose unset value is an empty list."""

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        return obj._values.setdefault(self.name, [])

    def __set__(self, obj, value):
        obj._values[self.name] = list(value)


class Field(_Property):
    """A scalar mapped to an element's text or an attribute.

    kind converts between XML text and Python: str, int, bool (yes/no),
    'onoff', 'presence' (element exists), or 'size:UNIT' (value in UNIT,
    honouring a sibling @unit attribute when reading).
    """

    def __init__(self, path: str, kind: Any = str, *, default_unit: str = "bytes"):
        self.path = path
        self.kind = kind
        self.default_unit = default_unit  # what libvirt means when @unit is absent
        self.name = ""

    # -- conversion -------------------------------------------------------
    def read(self, el: etree._Element) -> Any:
        steps, attr = _split(self.path)
        node = _find(el, steps)
        if self.kind == "presence":
            return node is not None
        if node is None:
            return None
        raw = node.get(attr) if attr else node.text
        if raw is None:
            return None
        if self.kind is str:
            return raw          # exactly what was written: a value is never trimmed into another one
        raw = raw.strip()
        if isinstance(self.kind, str) and self.kind.startswith("size:"):
            unit = (node.get("unit") or self.default_unit).lower()
            target = self.kind.split(":", 1)[1].lower()
            return int(raw) * _UNIT_FACTORS[unit] // _UNIT_FACTORS[target]
        if self.kind is int:
            return int(raw)
        if self.kind is bool:
            return raw == "yes"
        if self.kind == "onoff":
            return raw == "on"
        return raw

    def write(self, el: etree._Element, value: Any) -> None:
        if value is None or (self.kind == "presence" and not value):
            return
        steps, attr = _split(self.path)
        node = _ensure(el, steps)
        if self.kind == "presence":
            return
        if isinstance(self.kind, str) and self.kind.startswith("size:"):
            node.set("unit", {"kib": "KiB", "bytes": "bytes", "mib": "MiB"}[self.kind.split(":", 1)[1].lower()])
            text = str(int(value))
        elif self.kind is bool:
            text = "yes" if value else "no"
        elif self.kind == "onoff":
            text = "on" if value else "off"
        else:
            text = str(value)
        if attr:
            node.set(attr, text)
        else:
            node.text = text


class TextList(_ListProperty):
    """Repeated elements whose text is the value: <hostname>a</hostname><hostname>b</hostname>."""

    def __init__(self, path: str):
        self.path = path
        self.name = ""

    def read(self, el):
        return [(n.text or "").strip() for n in el.findall(self.path)]

    def write(self, el, values):
        steps = self.path.split("/")
        parent = _ensure(el, steps[:-1])
        for value in values or []:
            etree.SubElement(parent, steps[-1]).text = str(value)


class Child(_Property):
    """A single nested element modelled by its own XMLObject class."""

    def __init__(self, cls: Callable[[], "XMLObject"], path: str):
        self.cls = cls
        self.path = path
        self.name = ""

    def read(self, el):
        node = _find(el, self.path.split("/"))
        return None if node is None else self.cls()._load(node)

    def write(self, el, value):
        if value is not None:
            steps = self.path.split("/")
            value._build(_ensure(el, steps[:-1]), steps[-1])


class Children(_ListProperty, Child):
    """Repeated nested elements, each modelled by the same XMLObject class."""

    def read(self, el):
        return [self.cls()._load(n) for n in el.findall(self.path)]

    def write(self, el, values):
        steps = self.path.split("/")
        for value in values or []:
            value._build(_ensure(el, steps[:-1]), steps[-1])


class XMLObject:
    """Base of every model: declared properties, parse, build, semantic compare."""

    TAG: ClassVar[str] = ""

    def __init__(self, **values: Any):
        self._values: dict[str, Any] = {}
        for key, value in values.items():
            if key not in self._properties():
                raise TypeError(f"{type(self).__name__} has no property {key!r}")
            setattr(self, key, value)

    @classmethod
    def _properties(cls) -> dict[str, Any]:
        props: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            for key, value in vars(klass).items():
                if isinstance(value, (Field, TextList, Child)):
                    props[key] = value
        return props

    # -- parse / build ------------------------------------------------------
    @classmethod
    def from_xml(cls, text: str | bytes):
        root = etree.fromstring(text.encode() if isinstance(text, str) else text)
        if cls.TAG and root.tag != cls.TAG:
            raise ValueError(f"expected <{cls.TAG}>, got <{root.tag}>")
        return cls()._load(root)

    def _load(self, el):
        for name, prop in self._properties().items():
            self._values[name] = prop.read(el)
        return self

    def _build(self, parent, tag):
        nsmap = {"vdesk": VDESK_NS} if tag.startswith("{" + VDESK_NS) else None
        el = etree.SubElement(parent, tag, nsmap=nsmap) if parent is not None else etree.Element(tag, nsmap=nsmap)
        for name, prop in self._properties().items():
            prop.write(el, self._values.get(name))
        return el

    def to_element(self) -> etree._Element:
        return self._build(None, self.TAG)

    def to_xml(self) -> str:
        return etree.tostring(self.to_element(), pretty_print=True, encoding="unicode")

    def to_element_xml(self) -> str:
        """Just this element, as libvirt's update APIs want it (no pretty-printing)."""
        return etree.tostring(self.to_element(), encoding="unicode")

    # -- comparison -----------------------------------------------------------
    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self._properties():
            value = self._values.get(name)
            if value is None and isinstance(self._properties()[name], Field) \
                    and self._properties()[name].kind == "presence":
                value = False  # an absent element and an unset flag mean the same
            if value is None and isinstance(self._properties()[name], (Children, TextList)):
                value = []
            if isinstance(value, XMLObject):
                value = value.as_dict()
            elif isinstance(value, list):
                value = [v.as_dict() if isinstance(v, XMLObject) else v for v in value]
            out[name] = value
        return out

    def differences(self, actual: "XMLObject", prefix: str = "") -> list[str]:
        """Paths of the properties this (desired) model sets that `actual` does not match.

        A property left unset (None) in the desired model is libvirt's to choose,
        so defaults libvirt fills in (MACs, PCI addresses, ports) never show up.
        """
        found: list[str] = []
        for name, prop in self._properties().items():
            want = self._values.get(name)
            have = actual._values.get(name) if actual is not None else None
            path = f"{prefix}{name}"
            if want is None or (isinstance(prop, Field) and prop.kind == "presence" and want is False):
                continue
            if isinstance(want, XMLObject):
                found += want.differences(have, path + ".")
            elif isinstance(want, list) and isinstance(prop, Child):
                have = have or []
                if len(want) != len(have):
                    found.append(path)
                    continue
                for i, (w, h) in enumerate(zip(want, have)):
                    found += w.differences(h, f"{path}[{i}].")
            elif want != have:
                found.append(path)
        return found

    def __eq__(self, other):
        return type(self) is type(other) and self.as_dict() == other.as_dict()

    def __repr__(self):
        shown = ", ".join(f"{k}={v!r}" for k, v in self._values.items() if v not in (None, [], False))
        return f"{type(self).__name__}({shown})"

    def copy(self):
        return copy.deepcopy(self)


def declared_properties(cls: type[XMLObject]) -> Iterator[tuple[str, Any]]:
    """Every property of a model class, for guard tests that each one is exercised."""
    yield from cls._properties().items()

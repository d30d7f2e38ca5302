"""What the typed XML model costs per desktop compared with lxml handling the same document raw."""
from __future__ import annotations

import statistics
import timeit
from dataclasses import dataclass

from lxml import etree

from components import xmlmodel
from components.resources.domain import desired_model

from .drivers import domain_props
from .testbed import Testbed


@dataclass
class XmlCost:
    model_us: float
    lxml_us: float

    @property
    def ratio(self) -> float:
        return self.model_us / self.lxml_us


def _per_call_us(fn, rounds: int, loops: int) -> float:
    return statistics.median(timeit.repeat(fn, repeat=rounds, number=loops)) / loops * 1e6


def measure(bed: Testbed, rounds: int = 5, loops: int = 300) -> XmlCost:
    """Model: desired_model(props).to_xml() then Domain.from_xml; raw: lxml parse + serialise of that XML."""
    props = domain_props(bed, "bench-xml", bed.pool_path + "/bench-xml.qcow2")
    document = desired_model(props).to_xml().encode()

    def model():
        xmlmodel.Domain.from_xml(desired_model(props).to_xml())

    def raw():
        etree.tostring(etree.fromstring(document), encoding="unicode")

    return XmlCost(model_us=_per_call_us(model, rounds, loops), lxml_us=_per_call_us(raw, rounds, loops))

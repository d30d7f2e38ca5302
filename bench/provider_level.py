"""The provider-level comparison (`python -m bench --parts providers`): vdesk's providers vs raw libvirt calls."""
from __future__ import annotations

import os
import statistics
import sys
import time
from importlib import metadata

import libvirt

from components.host.connection import connect

from . import drivers, provisioning, xmlcost
from .provisioning import OPERATIONS, DriverResult
from .testbed import Testbed, testbed

def _version(v: int) -> str:
    return f"{v // 1_000_000}.{v // 1000 % 1000}.{v % 1000}"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown cpu"


def context_line(bed: Testbed, reap: bool) -> str:
    with connect(bed.uri) as conn:
        daemon, qemu = conn.getLibVersion(), conn.getVersion()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"machine: {os.cpu_count()} cores ({_cpu_model()}), load {load}; libvirt {_version(daemon)} daemon, "
            f"{_version(libvirt.getVersion())} client, libvirt-python {metadata.version('libvirt-python')}; "
            f"qemu {_version(qemu)}, domain type qemu (TCG); qemu zombies reaped by "
            f"{'a bench subreaper' if reap else 'PID 1'}")


_STARTED = time.monotonic()


def _progress(text: str) -> None:
    print(f"[{time.monotonic() - _STARTED:6.1f}s] {text}", file=sys.stderr, flush=True)


def _mib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


def _kib(kib: float) -> str:
    return f"{kib:.0f} KiB"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "n/a"


def print_report(args, raw: DriverResult, vd: DriverResult, xml: xmlcost.XmlCost) -> None:
    print(f"{args.count} desktops, {args.workers} workers in parallel, median of {args.repeat} rounds")
    print(f"{'operation':<17}| {'baseline s':>10} | {'vdesk s':>8} | {'ratio':>5}")
    print(f"{'-' * 17}+{'-' * 12}+{'-' * 10}+{'-' * 6}")
    for op in OPERATIONS:
        b, v = raw.median(op), vd.median(op)
        print(f"{op:<17}| {b:>10.2f} | {v:>8.2f} | {_ratio(v, b):>5}")
    grace = args.count * drivers.SHUTDOWN_TIMEOUT_S
    rest = vd.median("destroy-serial") - grace
    print(f"ratio = vdesk / baseline.  vdesk's delete asks the guest to power off and waits "
          f"shutdown_timeout_s={drivers.SHUTDOWN_TIMEOUT_S} (its minimum)\n"
          f"before forcing it; this OS-less guest never answers, so destroy-serial holds ~{grace} s of grace;\n"
          f"without it ~{rest:.2f} s, ratio ~{_ratio(rest, raw.median('destroy-serial'))}")
    for label, result in (("baseline", raw), ("vdesk", vd)):
        counts = ", ".join(f"{op} {len(result.failures[op])}" for op in OPERATIONS)
        print(f"failures, {label}: {counts}")
        for message in sorted(set(m for op in OPERATIONS for m in result.failures[op]))[:10]:
            print(f"  {message}")
    b_peak, v_peak = statistics.median(raw.peak_rss_kib), statistics.median(vd.peak_rss_kib)
    b_grow, v_grow = statistics.median(raw.growth_kib), statistics.median(vd.growth_kib)
    print(f"memory, peak RSS during run: baseline {_mib(b_peak)}, vdesk {_mib(v_peak)}, "
          f"ratio {_ratio(v_peak, b_peak)} (above the RSS at start: {_kib(b_grow)} vs {_kib(v_grow)})")
    print(f"memory, Python heap peak (tracemalloc, one parallel round): baseline {_kib(raw.py_heap_peak / 1024)}, "
          f"vdesk {_kib(vd.py_heap_peak / 1024)}, ratio {_ratio(vd.py_heap_peak, raw.py_heap_peak)}")
    print(f"xml, per desktop domain: lxml parse+serialise {xml.lxml_us:.0f} us, "
          f"xmlmodel build+to_xml+from_xml {xml.model_us:.0f} us, ratio {xml.ratio:.1f}")


def run(args) -> int:
    with testbed(reap=not args.slow_reaping) as bed:
        problems = drivers.same_guest(bed)
        if problems:
            print(f"bench: raw XML and vdesk's model differ ({problems}); comparison would be unfair",
                  file=sys.stderr)
            return 2
        _progress("host ready")
        print(context_line(bed, not args.slow_reaping), flush=True)
        pair = [(drivers.RawDriver(bed), DriverResult()), (drivers.VdeskDriver(bed), DriverResult())]
        for rnd in range(args.repeat):
            for driver, result in (pair if rnd % 2 == 0 else pair[::-1]):
                provisioning.run_round(bed, driver, result, args.count, args.workers, f"r{rnd}")
                last = " ".join(f"{op} {result.seconds[op][-1]:.2f}s" for op in OPERATIONS)
                _progress(f"round {rnd + 1}/{args.repeat} {driver.key}: {last}, "
                          f"failures so far {result.failure_count()}")
        for driver, result in pair:
            provisioning.measure_python_heap(bed, driver, result, args.count, args.workers)
        _progress("python heap measured")
        xml = xmlcost.measure(bed)
        _progress("xml cost measured; stopping the host")
        raw, vd = pair[0][1], pair[1][1]
        print_report(args, raw, vd, xml)
    _progress("host stopped and purged")
    failed = raw.failure_count() + vd.failure_count()
    if failed:
        print(f"bench: {failed} operation(s) failed", file=sys.stderr)
        return 1
    return 0

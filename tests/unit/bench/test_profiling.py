"""The profile's front-door breakdown reads the shell's trace and the one-process front door's trace alike."""
import pytest

from bench import profiling

LOG = """+ 100.000000 . /repo/tools/env.sh
+ 100.100000 cd /repo
+ 100.110000 exec /venv/bin/python -m components.cli.run up b1
+ 100.400000 components.cli.workdir mirror
+ 100.450000 stack check (pulumi stack init if new)
+ 100.460000 flock the stack's lock
+ 100.470000 components.cli.recover
+ 100.480000 pulumi up
Updating (b1):
+ 104.480000 components.cli.access
stack b1: host qemu:///system
"""


def test_breakdown_names_each_step_of_the_python_front_door():
    steps = dict(profiling.breakdown(profiling.trace_front_door(LOG, end_epoch=105.5)))
    assert steps == pytest.approx({"source env.sh": 0.1, "cd": 0.01, "front door's python start": 0.29,
                                   "workdir mirror (python)": 0.05,
                                   "stack check (backend file; pulumi stack init if new)": 0.01, "lock": 0.01,
                                   "recover (python; pulumi only after a killed run)": 0.01, "pulumi up": 4.0,
                                   "access step (python: prints from the checkpoint)": 1.02}, abs=1e-6)


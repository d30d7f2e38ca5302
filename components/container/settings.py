"""A container's own settings, declared once: the stack file's containers compose them (components.config.stackfile
adds the host, network and image they refer to), ContainerArgs holds them, and the provider checks its command,
environment and mounts by the same kinds (components.resources.container). Memory is bytes."""
from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, PlainValidator

# (the kinds the provider checks its inputs by too)
from ..kinds import Argv, Checks, Count, EnvName, MemorySize, Mounts, Settings, Wording


def _scalar(value):
    if isinstance(value, (str, int, float, bool)):
        return value
    got = "null" if value is None else type(value).__name__
    raise ValueError(f"must be a string, a number or true/false, got {got}")


Command = Annotated[Argv,
                    BeforeValidator(lambda v: [v] if isinstance(v, str) else v,
                                    json_schema_input_type=str | list[str]),
                    Wording(expected="a command line as a list of strings, e.g. [/bin/sleep, infinity]")]
Environment = Annotated[dict[EnvName, Annotated[str | int | float | bool, PlainValidator(
    _scalar, json_schema_input_type=str | int | float | bool)]],
    Wording(expected="a mapping of variable names to values, got {got}")]


class ContainerSettings(Settings):
    """What a container is, apart from where it runs and what it is made from."""
    memory: MemorySize = Field("256MiB", description="Memory, e.g. 512MiB (an integer is in MiB); at "
                                                     "least 256MiB.")
    vcpus: Count = Field(1, description="CPU time, in CPUs' worth.")
    command: Command = Field([], description="An application container's command line; without it, /sbin/init.")
    env: Environment = Field({}, description="Environment variables of the command.")
    mounts: Mounts = Field([], description="Host directories mounted into it.")
    userns: bool = Field(True, description="Map root inside to an unprivileged host uid (false is warned about).")
    running: bool = Field(True, description="Keep it running.")
    checks: Checks = Field([], description="Checks run inside it once it has an address.")

"""ContainerArgs holds a ContainerSettings: the stack file's containers and a program's keywords are the same
settings, checked by the same declaration."""
import pytest

from components.config.stackfile import Container as StackContainer
from components.container.component import ContainerArgs
from components.container.settings import ContainerSettings
from components.errors import InputError


def test_the_stack_file_s_container_is_the_settings_with_what_it_refers_to():
    references = {"host", "network", "image"}
    assert set(StackContainer.model_fields) == references | set(ContainerSettings.model_fields)
    assert issubclass(StackContainer, ContainerSettings)    # (declared there, not again)


def test_keywords_are_checked_by_the_declaration_and_laid_over_the_model():
    args = ContainerArgs(host=None, image=None, settings=ContainerSettings(memory="1GiB", vcpus=2), vcpus=3,
                         command="/bin/sleep")
    args.check("c")
    assert (args.memory, args.vcpus, args.command) == (1024**3, 3, ["/bin/sleep"])
    assert ContainerArgs(host=None, image=None).memory == 256 * 1024**2


def test_every_wrong_keyword_is_reported_at_once_with_its_path():
    args = ContainerArgs(host=None, image=None, memory="100MiB", vcpus=0, mounts=[{"source": "/srv"}])
    with pytest.raises(InputError) as err:
        args.check("web")
    assert [field for field, _ in err.value.problems] == ["web.memory", "web.vcpus", "web.mounts[0]"]
    assert dict(err.value.problems)["web.memory"] == "must be at least 256MiB"


def test_an_unknown_keyword_is_a_type_error():
    with pytest.raises(TypeError, match="'memroy'"):
        ContainerArgs(host=None, image=None, memroy="1GiB")


def test_the_provider_checks_command_env_and_mounts_by_the_settings_kinds():
    from components.kinds import Argv, EnvLines, Mounts
    from components.resources.container import ContainerProvider
    props = ContainerProvider.PROPS
    assert [props[k].kind for k in ("command", "env", "mounts")] == [Argv, EnvLines, Mounts]
    assert ContainerSettings.model_fields["mounts"].metadata == list(Mounts.__metadata__)   # (the same rule)


def test_what_the_provider_would_refuse_is_refused_with_its_path_when_declared():
    args = ContainerArgs(host=None, image=None, command=["sleep", "1"], env={"9LIVES": 1},
                         mounts=[{"source": "srv", "target": "/srv"}, {"source": "/a", "target": "/data"},
                                 {"source": "/b", "target": "/data/"}])
    with pytest.raises(InputError) as err:
        args.check("web")
    assert err.value.problems == [
        ("web.command", "'sleep' is not an absolute path inside the container (the program the command runs)"),
        ("web.env.9LIVES", "'9LIVES' is not an environment variable name (letters, digits and '_', not starting "
                           "with a digit)"),
        ("web.mounts[0].source", "'srv' must be an absolute path on the host")]
    args = ContainerArgs(host=None, image=None, mounts=[{"source": "/a", "target": "/data"},
                                                        {"source": "/b", "target": "/data/"}])
    with pytest.raises(InputError) as err:
        args.check("web")
    assert err.value.problems == [("web.mounts", "'/data' is mounted twice")]

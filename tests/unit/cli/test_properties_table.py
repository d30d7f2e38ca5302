"""docs/properties.md is the providers' own table, and each row behaves as it says."""
import pytest

from components.cli.docs import DOC, PROVIDERS, render

SAMPLE = {str: "a-value", int: 7, bool: True, list: [{"x": 1}], dict: {"x": 1}}
CHANGED = {str: "b-value", int: 9, bool: False, list: [{"x": 2}], dict: {"x": 2}}


def test_committed_table_is_current():
    assert DOC.read_text() == render(), "run `python -m components.cli.docs` and commit docs/properties.md"


ROWS = [(title, provider, name, prop) for title, provider in PROVIDERS.items()
        for name, prop in provider.PROPS.items()]


@pytest.mark.parametrize("title,provider,name,prop", ROWS, ids=[f"{r[0].split()[0]}.{r[2]}" for r in ROWS])
def test_diff_follows_the_table(title, provider, name, prop):
    kind = prop.type if isinstance(prop.type, type) else prop.type[0]
    olds = {n: SAMPLE[p.type if isinstance(p.type, type) else p.type[0]] for n, p in provider.PROPS.items()}
    news = dict(olds, **{name: CHANGED[kind]})
    diff = provider().diff("id", olds, news)
    if prop.inert:  # e.g. adopt: it only decides how the object comes to exist
        assert diff.changes is False and diff.replaces == []
        return
    assert diff.changes is True
    assert diff.replaces == ([name] if prop.replaces else [])
    assert (name in (diff.stables or [])) is False


def test_a_declared_input_shows_its_kind_and_a_desktop_setting_is_named():
    domain = render().split("## Domain")[1].split("\n## ")[0]
    rows = {line.split("|")[1].strip(): line for line in domain.splitlines() if line.startswith("| `")}
    assert "| int >= 1 | yes |" in rows["`vcpus`"] and "a desktop's `vcpus` (DesktopSettings)" in rows["`vcpus`"]
    assert "bytes (a whole number of MiB); KiB only in the XML; a desktop's `memory` (DesktopSettings)" \
        in rows["`memory`"]
    assert "| str: one of host-passthrough, host-model, custom |" in rows["`cpu_mode`"]

"""A package name that no registry has gets the closest known names, from the registries' `names`
files: the same namespace first, then the bare name across namespaces (`calculator` ->
`chainsocket/calculator`). Every command that takes a name says it; an app's file names its line."""

from __future__ import annotations

from pathlib import Path

from tests.integration import test_cli_pm as pm
from tests.integration.test_cli import cspm

registry, sources, own_config_and_cache = pm.registry, pm.sources, pm.own_config_and_cache  # fixtures


def refused(*args: str, cwd: Path | None = None) -> str:
    result = cspm(*args, **({"cwd": cwd} if cwd else {}))
    assert result.returncode == 2, result.stdout + result.stderr
    return result.stderr


def test_commands_suggest_the_closest_names(tmp_path: Path) -> None:
    app = tmp_path / "app.yaml"
    app.write_text("name: mine\n")
    stderr = refused("add", "calculator", "--app", str(app))
    assert "'calculator' is not a package name" in stderr and "hint: did you mean chainsocket/calculator?" in stderr
    stderr = refused("run", "self-ask-demo", "-i", "x", cwd=tmp_path)
    assert "hint: did you mean chainsocket/self-ask-demo?" in stderr
    stderr = refused("info", "chainsocket/calculater")
    assert "chainsocket/calculater was not found" in stderr and "did you mean chainsocket/calculator?" in stderr
    assert "did you mean chainsocket/calculator?" in refused("info", "acme/calculator")  # across namespaces
    assert "did you mean" not in refused("info", "chainsocket/zzzzzz")  # nothing close: no guess
    assert "hint: find it with `cspm search`" in refused("info", "zzzzzz")


def test_an_app_naming_an_unknown_package_gets_its_line_and_the_closest_name(tmp_path: Path,
                                                                              registry: Path) -> None:
    app = tmp_path / "app.yaml"
    app.write_text("entry: t\ntools:\n  - {name: t, plugin: \"test/ehco@1\"}\n")
    for command in ("lock", "install"):
        stderr = refused(command, str(app))
        assert f"{app}:3: tool `t`: test/ehco was not found" in stderr and "did you mean test/echo?" in stderr
    # the same namespace first: test/echo before chainsocket's names
    assert "did you mean test/echo?" in refused("info", "test/echoo")

"""Finding the templates: override, checkout, installed wheel; escaping per template kind."""

from __future__ import annotations

from pathlib import Path

import pytest
from render_support import REPO_ROOT

from digest.errors import ConfigError
from digest.render import templates


def test_checkout_templates_are_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(templates.TEMPLATES_ENV_VAR, raising=False)
    assert templates.templates_root() == REPO_ROOT / "templates"
    names = {path.name for path in templates.template_files()}
    assert {"digest.mjml.j2", "digest.txt.j2", "card.mjml.j2", "footer.mjml.j2"} <= names


def test_environment_variable_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "x.mjml.j2").write_text("{{ value }}", encoding="utf-8")
    (tmp_path / "email" / "x.txt.j2").write_text("{{ value }}", encoding="utf-8")
    monkeypatch.setenv(templates.TEMPLATES_ENV_VAR, str(tmp_path))
    assert templates.templates_root() == tmp_path.resolve()
    environment = templates.make_environment()
    assert environment.get_template("email/x.mjml.j2").render(value="<b>&") == "&lt;b&gt;&amp;"
    assert environment.get_template("email/x.txt.j2").render(value="<b>&") == "<b>&"
    assert templates.templates_mtime() > 0


def test_a_missing_override_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(templates.TEMPLATES_ENV_VAR, str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="does not exist"):
        templates.templates_root()
    assert templates.templates_root(REPO_ROOT / "templates") == REPO_ROOT / "templates"


def test_undefined_variables_fail_loudly(tmp_path: Path) -> None:
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "y.mjml.j2").write_text("{{ missing }}", encoding="utf-8")
    import jinja2

    with pytest.raises(jinja2.UndefinedError):
        templates.make_environment(tmp_path).get_template("email/y.mjml.j2").render()

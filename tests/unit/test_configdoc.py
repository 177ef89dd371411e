"""docs/config.md is written from the settings models and must match them."""
from pathlib import Path

from click.testing import CliRunner
from pydantic import Field

from daz import configdoc
from daz.cli import main
from daz.plugins.base import Plugin, PluginConfig

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "config.md"


def test_every_config_key_has_a_description():
    missing = [f"{path}.{name}" for path, model in configdoc.models()
               for name, field in model.model_fields.items()
               if not (field.description or "").strip()]
    assert missing == [], "give these keys Field(description=...): " + ", ".join(missing)


def test_the_committed_page_matches_the_models():
    problem = configdoc.check(PAGE, configdoc.render())
    assert problem is None, problem


def test_a_stale_page_is_reported_with_the_command_that_rewrites_it(tmp_path):
    stale = tmp_path / "config.md"
    stale.write_text(configdoc.render().replace("| `max_rooms` |", "| `max_room` |"))
    problem = configdoc.check(stale, configdoc.render())
    assert problem is not None and "stale" in problem
    assert configdoc.REGENERATE in problem
    result = CliRunner().invoke(main, ["config", "docs", "--check", str(stale)])
    assert result.exit_code != 0 and configdoc.REGENERATE in result.output
    assert configdoc.main(["--check", str(stale)]) == 1


def test_daz_config_docs_prints_and_writes_the_page(tmp_path):
    printed = CliRunner().invoke(main, ["config", "docs"])
    assert printed.exit_code == 0 and printed.output == configdoc.render()
    target = tmp_path / "out.md"
    assert CliRunner().invoke(main, ["config", "docs", "--write", str(target)]).exit_code == 0
    assert target.read_text() == configdoc.render()
    assert configdoc.check(target, configdoc.render()) is None


def test_the_page_names_every_key_with_its_default_and_the_go_keys():
    page = configdoc.render()
    for key, default in (("stop_timeout_seconds", "`8.0`"), ("trusted_proxies", "`[]`"),
                         ("max_frame_mib", "`64`"), ("password_file", '`""`'),
                         ("max_rooms", "`0`"), ("poll_interval_seconds", "`5.0`")):
        (row,) = [line for line in page.splitlines() if line.startswith(f"| `{key}` |")]
        assert f"| {default} |" in row, row
    for section in ("core.leases", "core.join_pacing", "core.nats", "core.commands",
                    "core.retention", "core.rooms[]", "plugins.retry.retry_policies.<name>",
                    "plugins.sql.logger_rules[]"):
        assert f"`{section}`\n" in page, section
    assert "| `plugins.greeter.enable_fortune` | ignored" in page
    # a plugin that is off unless enabled says so, and its enabled row too
    ollama = page.split("### `plugins.ollama`", 1)[1].split("### ", 1)[0]
    assert 'Off unless `"enabled": true`' in ollama
    assert "| `enabled` | boolean | `false` |" in ollama


class RollConfig(PluginConfig):
    sides: int = Field(6, ge=2, description="Sides of the die")


class Roll(Plugin):
    name = "roll"
    description = "Rolls dice"
    Config = RollConfig


def test_a_third_party_plugin_s_settings_model_shows_up_like_a_built_in_one():
    page = configdoc.render({"roll": Roll})
    assert "### `plugins.roll`\n\nRolls dice. On by default." in page
    assert "| `sides` | integer, ≥ 2 | `6` | Sides of the die. |" in page

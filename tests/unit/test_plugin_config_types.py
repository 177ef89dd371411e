"""``Plugin[X]``: the type parameter is the plugin's config model, for the manager and for mypy."""
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from daz.plugins.base import Plugin, PluginConfig
from daz.plugins.registry import builtin_plugins
from daz.plugins.tell import Tell, TellConfig
from tests.unit.test_manager import manager

SRC = Path(__file__).resolve().parents[2] / "src"


class SweepConfig(PluginConfig):
    sweep_seconds: float = 5.0


class Sweeper(Plugin[SweepConfig]):
    name = "sweeper"


def test_the_type_parameter_is_the_model_the_manager_validates_with():
    assert Sweeper.Config is SweepConfig and Tell.Config is TellConfig
    chosen = manager({"sweeper": {"sweep_seconds": 2}}).select({"sweeper": Sweeper})
    assert [(cls, cfg) for cls, cfg in chosen] == [(Sweeper, SweepConfig(sweep_seconds=2))]


def test_every_built_in_plugin_declares_its_model_as_the_type_parameter():
    for name, cls in builtin_plugins().items():
        bases = [b for b in getattr(cls, "__orig_bases__", ()) if getattr(b, "__origin__", None)
                 is Plugin]
        assert bases and bases[0].__args__ == (cls.Config,), name


def test_a_second_differing_config_declaration_is_an_error():
    with pytest.raises(TypeError, match="declare the model once"):
        class Twice(Plugin[SweepConfig]):
            name = "twice"
            Config = TellConfig


def test_a_model_that_is_not_a_plugin_config_is_an_error():
    from pydantic import BaseModel

    class Loose(BaseModel):
        x: int = 1

    with pytest.raises(TypeError, match=r"subclasses daz\.plugins\.base\.PluginConfig"):
        class Wrong(Plugin[Loose]):  # type: ignore[type-var]
            name = "wrong"


def test_a_subclass_of_a_plugin_keeps_its_model_and_an_unparameterised_one_the_base():
    class Sweeper2(Sweeper):
        name = "sweeper2"

    class Plain(Plugin):
        name = "plain"

    assert Sweeper2.Config is SweepConfig and Plain.Config is PluginConfig


@pytest.mark.skipif(shutil.which("mypy", path=os.path.dirname(sys.executable)) is None,
                    reason="mypy is not installed in this environment")
def test_mypy_knows_the_type_of_self_config(tmp_path):
    module = tmp_path / "sweeper.py"
    module.write_text(textwrap.dedent('''
        from daz.plugins.base import Plugin, PluginConfig

        class SweepConfig(PluginConfig):
            sweep_seconds: float = 5.0

        class Sweeper(Plugin[SweepConfig]):
            name = "sweeper"

            async def setup(self) -> None:
                seconds: float = self.config.sweep_seconds
                print(seconds, self.config.sweep_minutes)
    '''))
    found = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "mypy"), "--follow-imports=silent",
         "--ignore-missing-imports", "--no-error-summary", f"--cache-dir={tmp_path / 'cache'}",
         str(module)],
        capture_output=True, text=True, env={**os.environ, "MYPYPATH": str(SRC)}, timeout=300,
        cwd=SRC.parent)  # the project's mypy settings (pydantic plugin) apply
    errors = [line for line in found.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1, found.stdout + found.stderr
    assert '"SweepConfig" has no attribute "sweep_minutes"' in errors[0]

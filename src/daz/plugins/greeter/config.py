"""The greeter's config section (``plugins.greeter``); the keys are described in the package
docstring. Go Daz's keys keep their names and meaning where daz still has the feature."""
from __future__ import annotations

from pydantic import AliasChoices, Field, model_validator

from daz.plugins.base import PluginConfig


class GreeterConfig(PluginConfig):
    cooldown_minutes: float = Field(1440.0, ge=0)
    channel_cooldown_seconds: float = Field(120.0, ge=0)
    rejoin_window_minutes: float = Field(5.0, ge=0)
    reconnect_grace_seconds: float = Field(30.0, ge=0)
    delay_min_seconds: float = Field(4.0, ge=0)
    delay_max_seconds: float = Field(20.0, ge=0)
    skip_probability: float = Field(0.25, ge=0, le=1)
    greetings_file: str | None = None
    timezone: str = "UTC"
    use_greeting_engine: bool = Field(
        True, validation_alias=AliasChoices("use_greeting_engine", "use_ollama"))
    ollama_timeout_seconds: float = Field(5.0, gt=0)
    max_chars: int = Field(200, ge=20, le=1000)
    default_greeting: str = "Welcome back, %s!"
    enforce_question_greeting: bool = False
    # Go keys without an effect here (fortunes and follow-ups are not part of daz's greeter).
    enable_fortune: bool = False
    fortune_probability: float = Field(0.0, ge=0, le=1)
    enable_follow_up_mode: bool = False

    @model_validator(mode="after")
    def _delays(self) -> GreeterConfig:
        if self.delay_max_seconds < self.delay_min_seconds:
            raise ValueError("delay_max_seconds must not be less than delay_min_seconds")
        return self

"""The greeter's config section (``plugins.greeter``, in docs/config.md). Go Daz's keys keep
their names and meaning where daz still has the feature."""
from __future__ import annotations

from pydantic import AliasChoices, Field, model_validator

from daz.plugins.base import PluginConfig


class GreeterConfig(PluginConfig):
    cooldown_minutes: float = Field(1440.0, ge=0, description="Someone greeted in a channel is "
                                    "not greeted there again for this long (Go key)")
    channel_cooldown_seconds: float = Field(120.0, ge=0, description="No greeting within this "
                                            "long of the channel's last one")
    rejoin_window_minutes: float = Field(5.0, ge=0, description="Someone back within this long "
                                         "of leaving (a flap) is not greeted")
    reconnect_grace_seconds: float = Field(30.0, ge=0, description="Nobody is greeted this long "
                                           "after the bot's own reconnect")
    delay_min_seconds: float = Field(4.0, ge=0, description="A greeting waits a random pause "
                                     "of at least this ...")
    delay_max_seconds: float = Field(20.0, ge=0, description="... and at most this; sent only "
                                     "if the person is still there")
    skip_probability: float = Field(0.25, ge=0, le=1, description="Share of arrivals not "
                                    "greeted, drawn per join")
    greetings_file: str | None = Field(None, description="Greeting lines (format in "
                                       "greetings.py); default: the packaged greetings.txt")
    timezone: str = Field("UTC", description="For morning and evening greetings")
    use_greeting_engine: bool = Field(
        True, validation_alias=AliasChoices("use_greeting_engine", "use_ollama"),
        description="Ask the ollama plugin for the text first (Go key; also read as "
                    "use_ollama); the greetings file when it fails or is not running")
    ollama_timeout_seconds: float = Field(5.0, gt=0, description="How long to wait for that "
                                          "text")
    max_chars: int = Field(200, ge=20, le=1000, description="Longer greetings are cut")
    default_greeting: str = Field("Welcome back, %s!", description="Used only when no file has "
                                  "a usable line; %s is the name (Go key)")
    enforce_question_greeting: bool = Field(False, description="End greetings with a question "
                                            "(Go key)")

    @model_validator(mode="after")
    def _delays(self) -> GreeterConfig:
        if self.delay_max_seconds < self.delay_min_seconds:
            raise ValueError("delay_max_seconds must not be less than delay_min_seconds")
        return self

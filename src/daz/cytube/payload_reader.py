"""Reading fields out of a CyTube payload without ever raising: a value of the wrong type falls
back to its default and the reason is kept (it becomes the event's ``malformed``). Used by the
event field tables (event_fields.py) and the value objects inside events (values.py).
"""
from __future__ import annotations

import builtins
from typing import Any


class PayloadReader:
    """Pulls typed fields out of a payload, remembering what did not fit."""

    __slots__ = ("data", "problems")

    def __init__(self, payload: Any, expect_dict: bool = True):
        self.problems: list[str] = []
        if isinstance(payload, dict):
            self.data = payload
        else:
            self.data = {}
            if expect_dict:
                self.problems.append(f"expected an object, got {type(payload).__name__}")

    def str(self, key: str, default: str = "") -> str:
        value = self.data.get(key, default)
        if isinstance(value, str):
            return value
        if value is None:
            return default
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                return str(value)
            except ValueError:  # an integer too long to print (Python's 4300-digit limit)
                self.problems.append(f"{key}: number too long")
                return default
        self.problems.append(f"{key}: expected text, got {type(value).__name__}")
        return default

    def num(self, key: builtins.str, default: float = 0.0) -> float:
        return read_number(self.data.get(key, default), default, key, self.problems)

    def int(self, key: builtins.str, default: builtins.int = 0) -> builtins.int:
        value = read_number(self.data.get(key, default), default, key, self.problems)
        try:
            return int(value)
        except (OverflowError, ValueError):
            self.problems.append(f"{key}: not a finite number")
            return default

    def bool(self, key: builtins.str, default: builtins.bool = False) -> builtins.bool:
        value = self.data.get(key, default)
        if isinstance(value, bool):
            return value
        if value in (0, 1):
            return bool(value)
        self.problems.append(f"{key}: expected true/false, got {type(value).__name__}")
        return default

    def dict(self, key: builtins.str) -> builtins.dict[builtins.str, Any]:
        value = self.data.get(key)
        if isinstance(value, dict):
            return value
        if value is not None:
            self.problems.append(f"{key}: expected an object, got {type(value).__name__}")
        return {}

    def list(self, key: builtins.str) -> builtins.list[Any]:
        value = self.data.get(key)
        if isinstance(value, list):
            return value
        if value is not None:
            self.problems.append(f"{key}: expected a list, got {type(value).__name__}")
        return []

    @property
    def malformed(self) -> builtins.str | None:
        return "; ".join(self.problems) if self.problems else None


def read_number(value: Any, default: float, key: str, problems: list[str]) -> float:
    if isinstance(value, bool):
        problems.append(f"{key}: expected a number, got bool")
        return default
    if isinstance(value, (int, float)):
        if value != value or value in (float("inf"), float("-inf")):
            problems.append(f"{key}: not a finite number")
            return default
        return value
    if isinstance(value, str):
        try:
            parsed = float(value)
        except ValueError:
            problems.append(f"{key}: expected a number, got {value[:40]!r}")
            return default
        if parsed != parsed or parsed in (float("inf"), float("-inf")):
            problems.append(f"{key}: not a finite number")
            return default
        return int(parsed) if parsed.is_integer() else parsed
    if value is not None:
        problems.append(f"{key}: expected a number, got {type(value).__name__}")
    return default

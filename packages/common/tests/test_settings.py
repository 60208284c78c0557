"""ServiceSettings: the variables both services read (SPEC.md), as operators write them."""

from __future__ import annotations

import pytest
from mcstatbot_common.settings import ServiceSettings
from pydantic import ValidationError


@pytest.mark.parametrize(
    ("level", "expected"),
    [("info", "INFO"), ("Warning", "WARNING"), (" DEBUG ", "DEBUG"), ("error", "ERROR")],
)
def test_log_level_in_any_case(monkeypatch: pytest.MonkeyPatch, level: str, expected: str) -> None:
    monkeypatch.setenv("LOG_LEVEL", level)
    assert ServiceSettings().log_level == expected


@pytest.mark.parametrize(("fmt", "expected"), [("JSON", "json"), ("Text", "text"), ("json", "json")])
def test_log_format_in_any_case(monkeypatch: pytest.MonkeyPatch, fmt: str, expected: str) -> None:
    monkeypatch.setenv("LOG_FORMAT", fmt)
    assert ServiceSettings().log_format == expected


@pytest.mark.parametrize(("name", "value"), [("LOG_LEVEL", "verbose"), ("LOG_FORMAT", "xml"), ("PORT", "0")])
def test_unknown_values_are_refused_with_the_variable_named(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name.lower()):
        ServiceSettings()

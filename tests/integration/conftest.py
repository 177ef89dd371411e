"""Fixtures shared by the integration tests (imported here so the test modules do not shadow
them with an import)."""
from tests.browser import browser  # noqa: F401
from tests.integration.ollama_helpers import fake_ollama  # noqa: F401

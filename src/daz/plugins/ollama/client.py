"""Talking to the Ollama server through the official client, with every failure made one kind.

Whatever goes wrong (connection refused, HTTP 500, a timeout, a hang, a body that is not JSON,
JSON of the wrong shape, an empty answer) becomes ``OllamaFailure`` with a short reason, so the
caller has one thing to catch and one line to log. There is deliberately no fallback text here:
if the model did not answer, nobody answers (canned lines would make a bot whose model is down
look alive).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import ollama

log = logging.getLogger(__name__)


class OllamaFailure(RuntimeError):
    """The model gave no usable answer; ``reason`` says why in a few words."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class OllamaClient:
    def __init__(self, *, host: str, model: str, timeout: float, temperature: float,
                 max_tokens: int, keep_alive: str | None = None):
        self.host = host
        self.model = model
        self.timeout = timeout
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.keep_alive = keep_alive or None
        # httpx applies the timeout per phase (connect, each read); the outer wait_for in
        # chat() bounds the whole call, so a server trickling bytes cannot hold us longer.
        self._client = ollama.AsyncClient(host=host, timeout=httpx.Timeout(timeout))

    async def chat(self, messages: list[dict[str, str]], *, max_tokens: int | None = None) -> str:
        """The model's reply text (stripped, non-empty) or ``OllamaFailure``."""
        options: dict[str, Any] = {"temperature": self.temperature,
                                   "num_predict": max_tokens or self.max_tokens}
        try:
            response = await asyncio.wait_for(
                self._client.chat(model=self.model, messages=messages, stream=False,
                                  options=options, keep_alive=self.keep_alive),
                self.timeout + 1.0)
        except (TimeoutError, httpx.TimeoutException):
            raise OllamaFailure(f"no answer within {self.timeout:g}s") from None
        except ollama.ResponseError as exc:
            raise OllamaFailure(f"server said {exc.status_code}: {str(exc.error)[:200]}") from None
        except ConnectionError as exc:
            raise OllamaFailure(f"cannot reach {self.host}: {str(exc)[:120]}") from None
        except httpx.HTTPError as exc:
            raise OllamaFailure(f"HTTP error talking to {self.host}: {type(exc).__name__}"
                                f" {str(exc)[:120]}") from None
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # invalid JSON, wrong shape: the client raises all sorts
            raise OllamaFailure(f"unusable response ({type(exc).__name__}: {str(exc)[:120]})") \
                from None
        message = getattr(response, "message", None)
        content = getattr(message, "content", None)
        if not isinstance(content, str):
            raise OllamaFailure("response has no message content")
        if not content.strip():
            raise OllamaFailure("empty answer")
        return content.strip()

    async def probe(self) -> list[str]:
        """The models the server offers (raises OllamaFailure); used for a start-up log line."""
        try:
            listing = await asyncio.wait_for(self._client.list(), min(self.timeout, 5.0) + 1.0)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise OllamaFailure(f"{type(exc).__name__}: {str(exc)[:120]}") from None
        return [m.model for m in getattr(listing, "models", None) or [] if m.model]

    async def close(self) -> None:
        # AsyncClient.close() is recent; older clients only hold the httpx client inside.
        close = getattr(self._client, "close", None) or self._client._client.aclose
        try:
            await close()
        except Exception as exc:
            log.debug("closing the ollama client: %s", exc)

"""The frame tracker of tests/fakes/frame_cut_proxy.py: the e2e "killed mid-frame" test is only
as good as its idea of where a websocket frame starts and ends, however the bytes are split."""
from __future__ import annotations

import random

from tests.fakes.frame_cut_proxy import DownstreamTracker

HEAD = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"


def frame(payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        header = bytes([0x81, n])
    elif n < 65536:
        header = bytes([0x81, 126]) + n.to_bytes(2, "big")
    else:
        header = bytes([0x81, 127]) + n.to_bytes(8, "big")
    return header + payload


class Armed:
    def __init__(self, min_payload):
        self.armed_min_payload = min_payload


def run(stream: bytes, min_payload, seed: int) -> DownstreamTracker:
    tracker = DownstreamTracker(Armed(min_payload))
    rng = random.Random(seed)
    i = 0
    while i < len(stream):
        step = rng.choice([1, 2, 3, 7, 100, 5000, 70000])
        tracker.feed(stream[i:i + step])
        i += step
    return tracker


def test_the_cut_falls_in_the_middle_of_the_first_big_frame_however_the_bytes_arrive():
    small = [frame(b"x" * n) for n in (0, 5, 125, 126, 300, 65535)]
    big = b"B" * 200_000
    stream = HEAD + b"".join(small) + frame(big) + frame(b"C" * 300_000)
    big_payload_at = len(HEAD) + sum(map(len, small)) + 10
    for seed in range(30):
        tracker = run(stream, 100_000, seed)
        assert tracker.cut_info == {"payload": 200_000, "forwarded": 100_000}
        assert tracker.cut_at == big_payload_at + 100_000
        assert tracker.phase == "ws" and tracker.pos == len(stream) and tracker.left == 0


def test_unarmed_or_plain_http_is_never_cut():
    stream = HEAD + frame(b"B" * 200_000)
    assert run(stream, None, 1).cut_at is None
    http = b"HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n" + frame(b"B" * 200_000)
    tracker = run(http, 1, 2)
    assert tracker.cut_at is None and tracker.phase == "raw"

"""The Kryten bridge: daz rooms on NATS for Kryten clients (docs/scale-out.md)."""
from daz.bridge.bridge import KrytenBridge

__all__ = ["KrytenBridge"]

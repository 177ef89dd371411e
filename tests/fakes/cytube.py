"""The fake CyTube server for tests; it lives in daz.sandbox so ``daz sandbox`` can run it too."""
from daz.sandbox.fake_channel import FakeChannel
from daz.sandbox.fake_cytube import FakeCytubeServer
from daz.sandbox.simulated_user import LoginRefused, SimulatedUser

__all__ = ["FakeChannel", "FakeCytubeServer", "LoginRefused", "SimulatedUser"]

"""daz: a modular chat bot for CyTube channels."""
__version__ = "0.1.0"

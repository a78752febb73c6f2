"""The login panel: an anywidget (Python traits + one ES module + one stylesheet, no build step)."""

from ._widget import LoginPanel

__all__ = ["LoginPanel"]

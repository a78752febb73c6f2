"""How the panel is displayed: once per cell, and, while `login()` waits in its cell, as an output that is
replaced when the wait ends (its text for frontends without widgets holds the sign-in address until then)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["ShownOnce"]


class ShownOnce:
    """Displaying for the panel; `_shell` is its IPython shell."""

    _shell: Any = None
    _shown_in: int | None = None
    _repr_mimebundle_: Callable[..., Any]  # the widget's (annotated only: this mixin comes first in the MRO)

    def show(self, display_id: str | None = None) -> None:
        """Display the panel (once per cell: `login()` as a cell's last line is not shown twice); with
        `display_id`, as an output `redisplay` can replace."""
        from IPython.display import display

        if display_id is None:
            display(self)
        else:
            data, metadata = self._repr_mimebundle_()
            display(data, metadata=metadata, raw=True, display_id=display_id)
        self._shown_in = self._execution_count()

    def redisplay(self, display_id: str) -> None:
        from IPython.display import update_display

        data, metadata = self._repr_mimebundle_()
        update_display(data, metadata=metadata, raw=True, display_id=display_id)

    def _ipython_display_(self) -> None:
        count = self._execution_count()
        if self._shown_in is not None and self._shown_in == count:
            self._shown_in = None  # the cell's own display of `login()`'s return value: shown already
            return
        self._shown_in = None
        from IPython.display import display

        bundle = self._repr_mimebundle_()
        if bundle is not None:
            data, metadata = bundle
            display(data, metadata=metadata, raw=True)

    def _execution_count(self) -> int | None:
        return getattr(self._shell, "execution_count", None)

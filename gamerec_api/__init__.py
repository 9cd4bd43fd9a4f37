"""gamerec_api: the realtime recommendation service (Litestar).

`from gamerec_api import create_app, app` works, but importing the package alone stays cheap: the app module
(Litestar, numpy, SQLAlchemy) is imported on first access.
"""

from __future__ import annotations

from typing import Any

__all__ = ["app", "create_app"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from gamerec_api import app as module

        return getattr(module, name)
    raise AttributeError(f"module 'gamerec_api' has no attribute {name!r}")

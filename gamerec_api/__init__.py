"""gamerec_api: the realtime recommendation service (Litestar).

`from gamerec_api import create_app` works, but importing the package alone stays cheap: the app module
(Litestar, numpy, SQLAlchemy) is imported on first access. The module-level app is `gamerec_api.app:app`
(`gamerec_api.app` names the module, so the package cannot also export an attribute called `app`).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        # import_module, not `from gamerec_api import app`: that form would ask this hook again and recurse.
        return getattr(importlib.import_module("gamerec_api.app"), name)
    raise AttributeError(f"module 'gamerec_api' has no attribute {name!r}")

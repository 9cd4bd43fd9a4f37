"""Moved: /predict's answer is `gamerec_api.answers` (the one answer pipeline). These names stay importable from
here for code written against the old module."""

from __future__ import annotations

from gamerec_api.answers import BadUserId, UnknownGames, predict_json, user_key

__all__ = ["BadUserId", "UnknownGames", "predict_json", "user_key"]

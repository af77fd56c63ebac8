"""Claims of topic 'counting' (being written)."""

from __future__ import annotations

from ..registry import ClaimSet

claims = ClaimSet("counting")

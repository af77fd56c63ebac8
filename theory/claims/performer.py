"""Claims of topic 'performer' (being written)."""

from __future__ import annotations

from ..registry import ClaimSet

claims = ClaimSet("performer")

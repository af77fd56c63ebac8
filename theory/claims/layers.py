"""Claims of topic 'layers' (being written)."""

from __future__ import annotations

from ..registry import ClaimSet

claims = ClaimSet("layers")

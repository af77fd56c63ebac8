"""Claims of topic 'normalization' (being written)."""

from __future__ import annotations

from ..registry import ClaimSet

claims = ClaimSet("normalization")

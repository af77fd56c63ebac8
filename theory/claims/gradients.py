"""Claims of topic 'gradients' (being written)."""

from __future__ import annotations

from ..registry import ClaimSet

claims = ClaimSet("gradients")

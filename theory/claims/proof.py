"""Claims of topic 'proof' (being written)."""

from __future__ import annotations

from ..registry import ClaimSet

claims = ClaimSet("proof")

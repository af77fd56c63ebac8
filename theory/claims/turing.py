"""Claims of topic 'turing' (being written)."""

from __future__ import annotations

from ..registry import ClaimSet

claims = ClaimSet("turing")

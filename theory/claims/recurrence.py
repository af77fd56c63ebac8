"""Claims of topic 'recurrence' (being written)."""

from __future__ import annotations

from ..registry import ClaimSet

claims = ClaimSet("recurrence")

"""Claims of topic 'dyck' (being written)."""

from __future__ import annotations

from ..registry import ClaimSet

claims = ClaimSet("dyck")

"""Claims of topic 'online_softmax' (being written)."""

from __future__ import annotations

from ..registry import ClaimSet

claims = ClaimSet("online_softmax")

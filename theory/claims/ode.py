"""Claims of topic 'ode' (being written)."""

from __future__ import annotations

from ..registry import ClaimSet

claims = ClaimSet("ode")

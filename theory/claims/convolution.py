"""Claims of topic 'convolution' (being written)."""

from __future__ import annotations

from ..registry import ClaimSet

claims = ClaimSet("convolution")

"""How values appear in the project's messages: a user's value quoted and shortened, a weight split."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SHOWN_MAX = 60
"""The most characters of a value an error message quotes."""


def shown(value: Any) -> str:
    """`value` as Python writes it, cut to SHOWN_MAX characters: what a message quotes of a user's value.

    >>> shown("fast")
    "'fast'"
    """
    text = repr(value)
    return text if len(text) <= SHOWN_MAX else text[:SHOWN_MAX - 3] + "..."


def weight_split(weights: Mapping[str, float]) -> str:
    """The traffic split as messages write it, in the mapping's order: `iris-v1 95%, iris-v2 5%`."""
    return ", ".join(f"{v} {int(w)}%" for v, w in weights.items())

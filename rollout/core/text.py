"""How values appear in the project's messages: a user's value quoted and shortened."""

from __future__ import annotations

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


"""argparse types for numbers a user types: finite and in a sensible range, else argparse's own error (exit 2)
naming the option — `--window inf` slept forever, `--window nan` crashed."""

from __future__ import annotations

import argparse
import math


def seconds(lo: float, hi: float):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"`{text[:40]}` is not a number of seconds") from None
        if not math.isfinite(value) or not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"`{text[:40]}` must be between {lo:g} and {hi:g} seconds")
        return value

    parse.__name__ = "seconds"
    return parse

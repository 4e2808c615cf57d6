"""Warnings of inna.torch, pointed at the user's code."""

from __future__ import annotations

import inspect
import os
import warnings

import torch

__all__ = ["caller_stacklevel", "warn_once"]

_WARNED: set[str] = set()


def caller_stacklevel() -> int:
    """The stacklevel that points a warning at the first frame outside inna and torch (the user's step())."""
    frame = inspect.currentframe()  # None on Pythons without frames: the warning then points here
    frame, level = (frame.f_back if frame is not None else None), 1
    inside = (os.path.dirname(os.path.dirname(__file__)), os.path.dirname(torch.__file__))  # inna/, torch/
    while frame is not None and frame.f_code.co_filename.startswith(inside):
        frame, level = frame.f_back, level + 1
    return level


def warn_once(message: str) -> None:
    """Warn ``message`` (a UserWarning) once per process."""
    if message not in _WARNED:
        _WARNED.add(message)
        warnings.warn(message, UserWarning, stacklevel=caller_stacklevel())

"""User-facing errors. Every problem a user can fix is an ApplianceError: one clear line plus a hint.

The CLI prints `error: <message>` and `  fix: <hint>` and exits 2 for bad input (a profile, an argument) and 1
when the rig could not do it (does not fit, docker or NVML refused); the TUI shows the same text. Anything else
that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations


class ApplianceError(Exception):
    """A problem the user can act on. `message` says what is wrong (file:line, field, value), `hint` what to do."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  fix: {self.hint}"


class ProfileError(ApplianceError):
    """A profile file is malformed or asks for something vLLM, Compose or LiteLLM would reject."""


class FitError(ApplianceError):
    """A profile does not fit the GPUs it asks for."""

    exit_code = 1


class GPUError(ApplianceError):
    """NVML (or the simulated GPU) refused or failed."""

    exit_code = 1


class RuntimeBoundaryError(ApplianceError):
    """docker / compose / a local process failed."""

    exit_code = 1


class StackError(ApplianceError):
    """up / switch / down could not do what was asked (does not fit, port in use, engine failed): exit 1."""

    exit_code = 1


class SecretsError(ApplianceError):
    """A key is missing or the secrets file is unsafe."""

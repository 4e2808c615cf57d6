"""Shared test settings. Framework-free: the JAX-only CI venv (no torch) collects tests/ through this file too."""

import os

import pytest
from hypothesis import HealthCheck, settings

try:
    import torch
except ImportError:  # a JAX-only or Keras-only environment
    torch = None

# "ci": deterministic examples (a red CI must be reproducible), no deadline (shared 2-core machines).
settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(autouse=True)
def _seed():
    if torch is not None:
        torch.manual_seed(0)
    yield


@pytest.fixture
def fresh_dynamo():
    """Compilation tests start from an empty dynamo cache, so one test's graphs never hide another's."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()

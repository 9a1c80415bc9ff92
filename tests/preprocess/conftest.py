"""Fixtures for the preprocessing tests: MediaPipe segmenters are cached per probe model and closed at the end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.preprocess import oracle


@pytest.fixture(scope="session", autouse=True)
def _close_mediapipe() -> Iterator[None]:
    yield
    oracle.close_all()

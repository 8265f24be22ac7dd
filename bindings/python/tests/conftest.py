"""The tests run against the installed package, never the source tree."""

import os
import pathlib

import breakerbox
import pytest

SOURCE = pathlib.Path(__file__).resolve().parents[1] / "python"


def pytest_configure(config: pytest.Config) -> None:
    installed = pathlib.Path(breakerbox.__file__).resolve()
    if SOURCE in installed.parents:
        raise pytest.UsageError(f"breakerbox imported from the source tree ({installed}); install the wheel")


@pytest.fixture
def clock() -> breakerbox.ManualClock:
    return breakerbox.ManualClock()


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("BREAKERBOX_REDIS_URL")
    if not url:
        pytest.fail("BREAKERBOX_REDIS_URL is not set: run scripts/test-python.sh")
    return url

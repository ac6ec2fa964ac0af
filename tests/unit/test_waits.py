import pytest

from fraudctl import errors
from fraudctl.waits import wait_until


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_returns_the_value_when_done() -> None:
    clock = FakeClock()
    answers = iter([(False, "creating", None), (True, "available", "endpoint")])
    value = wait_until("db", lambda: next(answers), timeout_s=60, interval_s=5,
                       clock=clock, sleep=clock.sleep)
    assert value == "endpoint"
    assert clock.now == 5


def test_times_out_with_the_last_status(capsys: pytest.CaptureFixture[str]) -> None:
    clock = FakeClock()
    with pytest.raises(errors.WaitTimeout, match="last status: creating"):
        wait_until("db", lambda: (False, "creating", None), timeout_s=60, interval_s=5,
                   heartbeat_every_s=15, clock=clock, sleep=clock.sleep)
    assert clock.now == 60
    heartbeats = capsys.readouterr().err
    assert "waiting for db: creating" in heartbeats

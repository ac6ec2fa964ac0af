"""The local target's workloads: the pipeline's processes under the supervisor, by colour.

```
consumer-<colour>   fraudctl run consumer <spec>   scoring, one colour active (two in a swap)
api-<colour>        fraudctl run api <spec>        shares the API port with SO_REUSEPORT,
                                                   and has a port of its own for probes
exporter            fraudctl run exporter          colourless: it moves committed rows
scheduler           fraudctl run scheduler         the nightly retrain
watchdog            fraudctl run watchdog          starts the database server again if it dies
```

A colour is started and waited on as a unit; readiness is each process's ``/ready``, which a
colour process serves only once its models are loaded and checked.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from fraudctl import errors
from fraudctl.config import settings_env
from fraudctl.local.stack import LocalStack
from fraudctl.local.supervisor import python_argv
from fraudctl.model.deployment import COLOURS, DeploymentSpec
from fraudctl.ports import ProcessStatus
from fraudctl.waits import wait_until

WATCHDOG, EXPORTER, SCHEDULER = "watchdog", "exporter", "scheduler"
SHARED = (WATCHDOG, EXPORTER, SCHEDULER)
API_PORT = "api"                         # the shared /predict port's name in ports.json
START_TIMEOUT_S = 60.0


def colour_processes(colour: str) -> tuple[str, str]:
    return f"consumer-{colour}", f"api-{colour}"


class LocalWorkloads:
    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.supervisor = stack.supervisor

    def _argv(self, *args: str) -> list[str]:
        return python_argv("-m", "fraudctl", "run", *args)

    def _launch(self, name: str, argv: list[str], probe_port: int, path: str) -> None:
        self.supervisor.start(name, argv, env=settings_env(self.stack.settings),
                              health_url=f"http://127.0.0.1:{probe_port}{path}")

    def _wait(self, names: list[str], timeout_s: float = START_TIMEOUT_S) -> None:
        def probe() -> tuple[bool, str, None]:
            statuses = {s.name: s for s in self.supervisor.status()}
            for name in names:
                self._fail_if_crashed(name, statuses.get(name))
            waiting = [n for n in names if not statuses[n].healthy]
            return not waiting, f"waiting for {', '.join(waiting)}" if waiting else "ready", None

        wait_until(", ".join(names), probe, timeout_s=timeout_s, interval_s=0.2)

    def _fail_if_crashed(self, name: str, status: ProcessStatus | None) -> None:
        """A workload that dies while starting fails `up` at once, quoting this run's output:
        its keeper would restart it, but a crash at start is almost never transient."""
        kept = self.supervisor.keeper_state(name)
        crashed = kept is not None and kept.last_exit is not None
        if status is not None and status.running and not crashed:
            return
        lines = [line for line in self.supervisor.output_since_start(name)
                 if not line.startswith("[keeper ")]
        how = kept.last_exit if kept and kept.last_exit else "exited"
        self.supervisor.stop(name, timeout_s=5)  # no restarts behind a failed `up`
        raise errors.FraudctlError(
            f"process {name} failed at start ({how}): {lines[-1] if lines else 'no output'}",
            f"see `fraudctl logs {name}`")

    def start_shared(self, name: str) -> dict[str, int]:
        port = self.stack.workload_port(name)
        self._launch(name, self._argv(name, "--port", str(port)), port, "/health")
        self._wait([name])
        return {"port": port}

    def start_colour(self, colour: str, spec: DeploymentSpec) -> dict[str, int]:
        """Start both processes of ``colour`` serving ``spec``; return once both are ready."""
        consumer, api = colour_processes(colour)
        consumer_port = self.stack.workload_port(consumer)
        api_port = self.stack.workload_port(API_PORT, shared=True)
        colour_port = self.stack.workload_port(api)
        self._launch(consumer, self._argv("consumer", "--port", str(consumer_port),
                                          "--consumer-id", consumer, *spec.argv()),
                     consumer_port, "/ready")
        self._launch(api, self._argv("api", "--port", str(api_port), "--colour-port",
                                     str(colour_port), *spec.argv()), colour_port, "/ready")
        self._wait([consumer, api])
        return {"api_port": api_port, "consumer_port": consumer_port}

    def stop_colour(self, colour: str) -> None:
        """Stop a colour gracefully: the consumer commits the batch in hand, the API finishes
        the requests in flight."""
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(self.supervisor.stop, colour_processes(colour)))

    def running_colours(self) -> set[str]:
        running = {s.name for s in self.supervisor.status() if s.running}
        return {c for c in COLOURS if set(colour_processes(c)) & running}

"""`fraudctl run consumer|exporter|api`: the long-running processes, as the local supervisor
and the containers start them."""

import logging
import os
import socket
import threading
from typing import Annotated

import typer

from fraudctl.cli.options import stack_command
from fraudctl.config import Settings

app = typer.Typer(help="Run one of the pipeline's long-running processes (foreground).",
                  no_args_is_help=True)

Port = Annotated[int, typer.Option("--port", help="Port for /health, /ready and /metrics "
                                                  "(0: none).")]
Host = Annotated[str, typer.Option("--host", help="Address to listen on (0.0.0.0 in a "
                                                  "container).")]


def _logging() -> None:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@stack_command
def consumer(
    settings: Settings,
    port: Port = 0,
    host: Host = "127.0.0.1",
    consumer_id: Annotated[str | None, typer.Option(
        "--consumer-id", help="Name in consumer_status [default: host-pid].")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size")] = None,
) -> None:
    """Score transactions from the queue until SIGTERM (the batch in hand is finished)."""
    from fraudctl.pipeline import health
    from fraudctl.pipeline.consumer import Consumer, ConsumerConfig
    from fraudctl.pipeline.scoring import active_scorer
    from fraudctl.runtime import open_runtime

    _logging()
    runtime = open_runtime(settings)
    config = ConsumerConfig(
        consumer_id=consumer_id or f"{socket.gethostname()}-{os.getpid()}",
        visibility_s=settings.visibility_timeout_s,
        max_receive_count=settings.max_receive_count,
        **({"batch_size": batch_size} if batch_size else {}),
    )
    worker = Consumer(runtime, active_scorer(), config)
    if port:
        health.serve(host, port, worker.ready, worker.metrics.registry)
    worker.install_signal_handlers()
    worker.run()


@stack_command
def exporter(
    settings: Settings,
    port: Port = 0,
    host: Host = "127.0.0.1",
    interval: Annotated[float, typer.Option("--interval", help="Seconds between flushes.")] = 10.0,
) -> None:
    """Move committed rows to the lake, one object per partition per flush, until SIGTERM."""
    import signal

    from prometheus_client import CollectorRegistry

    from fraudctl.lake_table import format_of
    from fraudctl.pipeline import health
    from fraudctl.pipeline.exporter import Exporter
    from fraudctl.runtime import open_runtime

    _logging()
    worker = Exporter(open_runtime(settings, pool_size=2), lake_format=format_of(settings))
    if port:
        health.serve(host, port, lambda: worker.ready, CollectorRegistry())

    def stop(_signum: int, _frame: object) -> None:
        worker.stop_event.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    thread = threading.Thread(target=worker.run, args=(interval,), name="exporter")
    thread.start()
    thread.join()


@stack_command
def api(settings: Settings, port: Port = 8000, host: Host = "127.0.0.1") -> None:
    """Serve POST /predict, /health, /ready and /metrics."""
    import uvicorn

    from fraudctl.pipeline.api import create_app
    from fraudctl.pipeline.scoring import active_scorer
    from fraudctl.runtime import open_runtime

    _logging()
    uvicorn.run(create_app(open_runtime(settings, pool_size=4), active_scorer()), host=host,
                port=port, log_level="warning", access_log=False)


app.command()(consumer)
app.command()(exporter)
app.command()(api)

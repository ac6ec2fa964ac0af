"""`fraudctl run consumer|exporter|api`: the long-running processes, as the local supervisor
and the containers start them."""

import logging
import os
import socket
import sys
import threading
from typing import TYPE_CHECKING, Annotated, Protocol

import typer

from fraudctl.cli.options import command_group, stack_command
from fraudctl.config import Settings
from fraudctl.targets import open_runtime, open_stack

if TYPE_CHECKING:
    from fraudctl.pipeline.consumer import Consumer
    from fraudctl.pipeline.scoring import Deployment
    from fraudctl.pipeline.stream_consumer import StreamConsumer

app = command_group(help="Run one of the pipeline's long-running processes (foreground).",
                  no_args_is_help=True)

Port = Annotated[int, typer.Option("--port", help="Port for /health, /ready and /metrics "
                                                  "(0: none).")]
Host = Annotated[str, typer.Option("--host", help="Address to listen on (0.0.0.0 in a "
                                                  "container).")]
Model = Annotated[str | None, typer.Option(
    "--model", help="Registered version to score with [default: the rule-based rules-v1].")]
Challenger = Annotated[str | None, typer.Option(
    "--challenger", help="A second version, for --canary or --shadow.")]
Canary = Annotated[int | None, typer.Option(
    "--canary", help="Percent of transactions (by hash of txn_id) the challenger scores.")]
Shadow = Annotated[bool, typer.Option(
    "--shadow", help="The challenger scores every transaction; only the champion's acts.")]
Rules = Annotated[str | None, typer.Option(
    "--rules", help="The sha256 of an applied rules file, acting beside the model.")]
ReviewAt = Annotated[float | None, typer.Option(
    "--review-at", help="Champion score from which a transaction goes to review.",
    show_default="the model's threshold")]
BlockAt = Annotated[float | None, typer.Option(
    "--block-at", help="Champion score from which a transaction is blocked.",
    show_default="never on the score alone")]


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
    model: Model = None,
    challenger: Challenger = None,
    canary: Canary = None,
    shadow: Shadow = False,
    rules: Rules = None,
    review_at: ReviewAt = None,
    block_at: BlockAt = None,
) -> None:
    """Score transactions from the queue (or the stream's shards this consumer leases) until
    SIGTERM (the batch in hand is finished)."""
    from fraudctl.model import deployment as serving
    from fraudctl.pipeline.consumer import Consumer, ConsumerConfig
    from fraudctl.pipeline.stream_consumer import StreamConsumer, StreamConsumerConfig
    _logging()
    spec = serving.DeploymentSpec.from_args(model, challenger, canary, shadow, rules=rules,
                                            review_at=review_at, block_at=block_at)
    runtime = open_runtime(settings)
    deployment = serving.build(runtime.store, spec)
    name = consumer_id or f"{socket.gethostname()}-{os.getpid()}"
    worker: Consumer | StreamConsumer
    # A writer back from a database round trip waits for the GIL while another thread runs
    # Python; by default up to 5 ms, on every one of a batch's dozen round trips. At 1 ms the
    # database and the Python threads overlap better: 10-15% more throughput, measured with
    # bench/bench_consumer.py on 2 cores.
    sys.setswitchinterval(0.001)
    if runtime.stream is not None:
        stream_config = (StreamConsumerConfig(name, batch_size=batch_size) if batch_size
                         else StreamConsumerConfig(name))
        worker = StreamConsumer(runtime, deployment, stream_config)
        logging.getLogger("fraudctl.consumer").info(
            "consumer %s starting: scoring with %s (threshold %s; %s), stream %s (shard "
            "leases of %.0f s, card locks %s), dead letters to %s, batches of up to %d",
            name, deployment.label, _thresholds(deployment), spec.policy_label,
            runtime.stream.name, stream_config.lease_s,
            "only for records not keyed by card" if stream_config.card_locks is None
            else stream_config.card_locks, runtime.dead_letter_queue.name,
            stream_config.batch_size)
        _serve(worker, host, port)
        return
    config = ConsumerConfig(
        consumer_id=name,
        visibility_s=settings.visibility_timeout_s,
        max_receive_count=settings.max_receive_count,
        **({"batch_size": batch_size} if batch_size else {}),
    )
    worker = Consumer(runtime, deployment, config)
    logging.getLogger("fraudctl.consumer").info(
        "consumer %s starting: scoring with %s (threshold %s; %s), queue %s, "
        "dead letters to %s after %d receives, batches of up to %d (closed %.2f s after "
        "their first message), %d writers, visibility %d s", config.consumer_id,
        deployment.label, _thresholds(deployment), spec.policy_label, runtime.inbound.name,
        runtime.dead_letter_queue.name, config.max_receive_count, config.batch_size,
        config.batch_wait_s, config.writers, config.visibility_s)
    _serve(worker, host, port)


def _serve(worker: "Consumer | StreamConsumer", host: str, port: int) -> None:
    from fraudctl.pipeline import health

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
    _logging()
    worker = Exporter(open_runtime(settings, pool_size=2), lake_format=format_of(settings))
    logging.getLogger("fraudctl.exporter").info(
        "exporter starting: %s objects into %s every %.0f s", format_of(settings),
        worker.runtime.store.location, interval)
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
def api(
    settings: Settings,
    port: Port = 8000,
    host: Host = "127.0.0.1",
    colour_port: Annotated[int, typer.Option(
        "--colour-port", help="A second port of this process alone (0: none): the shared "
        "--port may be served by the other colour during a swap.")] = 0,
    model: Model = None,
    challenger: Challenger = None,
    canary: Canary = None,
    shadow: Shadow = False,
    rules: Rules = None,
    review_at: ReviewAt = None,
    block_at: BlockAt = None,
) -> None:
    """Serve POST /predict, /health, /ready and /metrics."""
    import uvicorn

    from fraudctl.loopback import allowed_hosts
    from fraudctl.model import deployment as serving
    from fraudctl.pipeline.api import create_app
    _logging()
    spec = serving.DeploymentSpec.from_args(model, challenger, canary, shadow, rules=rules,
                                            review_at=review_at, block_at=block_at)
    runtime = open_runtime(settings, pool_size=4)
    deployment = serving.build(runtime.store, spec)
    app = create_app(runtime, deployment, allowed_hosts=allowed_hosts(host))
    logging.getLogger("fraudctl.api").info(
        "api starting: scoring with %s (threshold %s; %s) on %s:%d%s",
        deployment.label, _thresholds(deployment), spec.policy_label, host, port,
        f" and {host}:{colour_port}" if colour_port else "")
    # The shared port is opened only now, with the models loaded and checked: the kernel
    # (SO_REUSEPORT) spreads new connections over every process listening, so a colour
    # starting for a swap takes requests only once it can answer them.
    sockets = [listen_socket(host, port, shared=True)]
    if colour_port:
        sockets.append(listen_socket(host, colour_port, shared=False))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=sockets)


def _thresholds(deployment: "Deployment") -> str:
    """Each serving model's decision threshold, as the start-up lines say it."""
    scorers = [s for s in (deployment.champion, deployment.challenger) if s is not None]
    return ", ".join(f"{s.threshold:.4g} ({s.version})" for s in scorers)


def listen_socket(host: str, port: int, *, shared: bool) -> socket.socket:
    from fraudctl import errors

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise errors.PortInUse(f"cannot listen on {host}:{port}: {exc.strerror}",
                               "choose another --port") from None
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


@stack_command
def scheduler(settings: Settings, port: Port = 0, host: Host = "127.0.0.1") -> None:
    """Run `retrain` every day at the stack's retrain_at (UTC) until SIGTERM."""
    from fraudctl.model.schedule import RetrainSchedule

    _logging()
    schedule = RetrainSchedule(settings, lambda: open_runtime(settings, pool_size=1))
    _run_until_signalled(schedule, host, port)


@stack_command
def watchdog(settings: Settings, port: Port = 0, host: Host = "127.0.0.1") -> None:
    """local: start the stack's database server again whenever it has died, until SIGTERM."""
    loop = open_stack(settings).database_watchdog()
    _logging()
    _run_until_signalled(loop, host, port)


class _Loop(Protocol):
    stop_event: threading.Event

    def run(self) -> None: ...


def _run_until_signalled(loop: _Loop, host: str, port: int) -> None:
    """Serve /health (when given a port), run ``loop`` until SIGTERM or SIGINT sets its stop
    event: the shape of the workloads that only wait and act (scheduler, watchdog)."""
    import signal

    from prometheus_client import CollectorRegistry

    from fraudctl.pipeline import health

    if port:
        health.serve(host, port, lambda: True, CollectorRegistry())

    def stop(_signum: int, _frame: object) -> None:
        loop.stop_event.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    loop.run()


app.command()(consumer)
app.command()(exporter)
app.command()(api)
app.command()(scheduler)
app.command()(watchdog)

"""`fraudctl dashboard`: serve the stack's live dashboard until Ctrl-C."""

from typing import Annotated

import typer

from fraudctl import errors, lifecycle, output
from fraudctl.cli.options import stack_command
from fraudctl.config import Settings
from fraudctl.targets import open_runtime


@stack_command
def dashboard(
    settings: Settings,
    port: Annotated[int, typer.Option("--port", help="Port to serve on.")] = 8050,
    host: Annotated[str, typer.Option(
        "--host", help="Address to bind; anything but loopback exposes the stack's data.")
    ] = "127.0.0.1",
    open_browser: Annotated[bool, typer.Option("--open", help="Open it in a browser.")] = False,
    refresh: Annotated[float, typer.Option("--refresh", help="Seconds between refreshes.")
                       ] = 5.0,
    threshold: Annotated[float | None, typer.Option(
        "--threshold", help="Count scores from this value as high-risk (0.01 steps) instead "
        "of the decisions of the models that scored them.", show_default="the model's")
    ] = None,
) -> None:
    """Serve a live web dashboard of the stack: traffic, risk, models and the data path."""
    if not 1.0 <= refresh <= 3600:
        raise errors.ConfigError(f"--refresh must be 1 to 3600 seconds, got {refresh:g}")
    if threshold is not None and (not 0.0 < threshold < 1.0
                                  or round(threshold, 2) != threshold):
        # the minute rollup counts scores in 0.01 buckets: a finer threshold cannot be kept
        raise errors.ConfigError(f"--threshold must be between 0 and 1 in steps of 0.01, "
                                 f"got {threshold:g}")
    if not 0 < port < 65536:
        raise errors.ConfigError(f"--port must be 1 to 65535, got {port}")
    lifecycle.require_stack(settings)

    import webbrowser

    import uvicorn

    from fraudctl.cli.run import listen_socket
    from fraudctl.dashboard.server import DashboardConfig, create_app
    from fraudctl.loopback import allowed_hosts, is_loopback

    if not is_loopback(host):
        output.err.print(f"[yellow]warning:[/] serving on {host}: anyone who can reach this "
                         "address sees the stack's transactions (there is no login)")
    from fraudctl.dashboard import presence

    sock = listen_socket(host, port, shared=False)
    config = DashboardConfig(stack=settings.stack, target=settings.target, refresh_s=refresh,
                             threshold=threshold)
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"
    with open_runtime(settings, pool_size=4, pool_wait_s=3.0) as runtime:
        output.err.print(f"dashboard of stack {settings.stack} on {url} (Ctrl-C stops)")
        if open_browser:
            webbrowser.open(url)
        app = create_app(runtime, config, allowed_hosts=allowed_hosts(host))
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        with presence.announced(settings, url):        # `status` shows where it is served
            server.run(sockets=[sock])

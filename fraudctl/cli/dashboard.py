"""`fraudctl dashboard`: serve the stack's live dashboard until Ctrl-C."""

from functools import partial
from typing import TYPE_CHECKING, Annotated

import typer

from fraudctl import errors, lifecycle, output
from fraudctl.cli.options import stack_command
from fraudctl.config import Settings
from fraudctl.targets import open_runtime

if TYPE_CHECKING:
    from fraudctl.dashboard.access import Login


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
    login: Annotated[str | None, typer.Option(
        "--login", help="A login (HTTP Basic) for the dashboard and its review page; needed "
        "to serve on any address but loopback. The password is FRAUDCTL_DASHBOARD_PASSWORD, "
        "or one generated into an owner-only file whose path is printed.")] = None,
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

    import getpass
    import webbrowser

    import uvicorn

    from fraudctl.cli.run import listen_socket
    from fraudctl.dashboard import presence
    from fraudctl.dashboard.access import Access
    from fraudctl.dashboard.server import DashboardConfig, create_app
    from fraudctl.loopback import allowed_hosts, is_loopback

    if not is_loopback(host) and login is None:
        raise errors.ConfigError(
            f"serving on {host} needs a login: the review page labels transactions",
            f"add --login NAME (`fraudctl dashboard --host {host} --login analyst`), or "
            "serve on 127.0.0.1")
    access = Access(login=dashboard_login(settings, login) if login is not None else None,
                    local_user=getpass.getuser())
    if not is_loopback(host):
        output.err.print(f"[yellow]warning:[/] serving on {host} over plain HTTP: put a TLS "
                         "proxy in front of it beyond a trusted network")

    sock = listen_socket(host, port, shared=False)
    config = DashboardConfig(stack=settings.stack, target=settings.target, refresh_s=refresh,
                             threshold=threshold)
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"
    with open_runtime(settings, pool_size=4, pool_wait_s=3.0) as runtime:
        output.err.print(f"dashboard of stack {settings.stack} on {url} (Ctrl-C stops)")
        if open_browser:
            webbrowser.open(url)
        app = create_app(runtime, config, allowed_hosts=allowed_hosts(host), access=access,
                         policy=partial(serving_policy, settings))
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        with presence.announced(settings, url):        # `status` shows where it is served
            server.run(sockets=[sock])


def dashboard_login(settings: Settings, user: str) -> "Login":
    """The login's password: FRAUDCTL_DASHBOARD_PASSWORD, or one kept in an owner-only file
    of the stack (made on first use, and printed by path, never by value)."""
    import os
    import secrets

    from fraudctl.dashboard.access import Login
    from fraudctl.state import write_private_file

    if not user or ":" in user or len(user) > 200 or not user.isprintable():
        raise errors.ConfigError(f"--login {user!r} is not a usable name",
                                 "1-200 printable characters, no colon")
    password = os.environ.get("FRAUDCTL_DASHBOARD_PASSWORD")
    if password is not None:
        if len(password) < 12:
            raise errors.ConfigError("FRAUDCTL_DASHBOARD_PASSWORD is shorter than 12 "
                                     "characters", "choose a longer one, or unset it to have "
                                     "one generated")
        output.err.print(f"login {user}, password from FRAUDCTL_DASHBOARD_PASSWORD",
                         markup=False)
        return Login(user, password)
    path = settings.stack_dir / "secrets" / "dashboard.password"
    if not path.exists():
        write_private_file(path, (secrets.token_urlsafe(18) + "\n").encode())
    # (one line, unwrapped: a path broken over two lines cannot be copied)
    output.err.print(f"login {user}, password in {path} (readable by you only)",
                     soft_wrap=True, markup=False)
    return Login(user, path.read_text().strip())


def serving_policy(settings: Settings) -> dict[str, object]:
    """What the active deployment decides by, as the dashboard shows it."""
    from fraudctl.model import deployment

    spec = deployment.serving(lifecycle.load_state(settings)).spec
    return {"review_at": spec.review_at, "block_at": spec.block_at, "rules": spec.rules}

"""The `fraudctl` command line. The entry point lives here, in a module that imports almost
nothing, so a Ctrl-C while the command's modules load (pandas, scikit-learn: a second or two)
ends with one line, not a traceback."""

import sys


def main() -> None:
    try:
        from fraudctl.cli.app import main as run_app

        run_app()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise SystemExit(130) from None

"""The terminal: one rich Console for every stage's tables and progress bars.

Logs and pipes get 120 columns (rich's default of 80 folds the tables and cuts progress lines);
a terminal keeps its own width.
"""

from rich.console import Console

console = Console(width=None if Console().is_terminal else 120)


def one_line_errors(call) -> None:
    """Run a Typer/Click command line (`call`, with standalone_mode off) and exit as Click does,
    except that a usage error (a bad option value, an unknown option, a missing one) is one line
    on stderr, exit 2, instead of Click's usage block and box."""
    import sys

    try:
        code = call()
    except Exception as e:
        if not hasattr(e, "format_message"):  # Click's exceptions; the rest is not a user error
            raise
        ctx = getattr(e, "ctx", None)
        where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        print(f"error: {e.format_message()}{where}", file=sys.stderr)
        sys.exit(getattr(e, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)

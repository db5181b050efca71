import logging
import sys
from pathlib import Path

from django.apps import AppConfig

logger = logging.getLogger("chat")


class ChatConfig(AppConfig):
    name = "chat"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        if url := daphne_url(sys.argv):
            logger.info("Live Chat is starting: open %s", url)
        from chat import lifecycle

        # Under daphne: recover dead processes' replies at start-up, drain on SIGTERM.
        lifecycle.install()


def daphne_url(argv: list[str]) -> str | None:
    """The address to open when this process is daphne listening on TCP, else None."""
    program = Path(argv[0]) if argv else Path()
    # The `daphne` script, or `python -m daphne`.
    if program.name != "daphne" and program.parts[-2:] != ("daphne", "__main__.py"):
        return None
    from daphne.cli import DEFAULT_HOST, DEFAULT_PORT, CommandLineInterface

    args, _ = CommandLineInterface().parser.parse_known_args(argv[1:])
    if args.unix_socket or args.file_descriptor is not None or args.socket_strings:
        return None
    host = args.host or DEFAULT_HOST
    port = DEFAULT_PORT if args.port is None else args.port
    # Listening on every address: this machine answers on loopback.
    host = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host, host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}/"

"""deploy/nginx.conf for processes outside containers: the same file, with its
listening port, upstream addresses and paths swapped for yours.

    python deploy/nginx_conf.py --listen 8000 --upstream 127.0.0.1:8001 \\
        --upstream 127.0.0.1:8002 --static staticfiles --prefix /tmp/chat-nginx

writes /tmp/chat-nginx/nginx.conf and prints the command that runs nginx with
it, unprivileged. tests/test_proxy.py runs the shipped config the same way.
"""

import argparse
import getpass
import os
import shlex
import sys
from pathlib import Path

CONFIG = Path(__file__).resolve().with_name("nginx.conf")
UPSTREAM = "        server web:8000 max_fails=1 fail_timeout=5s;\n"


def render(config: str, *, listen: str, upstreams: list[str], prefix: Path, static: Path) -> str:
    """`config` with the containers' addresses and paths replaced; fails if one is missing."""
    servers = "".join(UPSTREAM.replace("web:8000", address) for address in upstreams)
    swaps = [
        ("pid /tmp/nginx.pid;", f"pid {prefix}/nginx.pid;"),
        ("error_log /dev/stderr warn;", f"error_log {prefix}/error.log warn;"),
        ("access_log /dev/stdout upstream;", f"access_log {prefix}/access.log upstream;"),
        ("/tmp/nginx-", f"{prefix}/temp-"),
        (UPSTREAM, servers),
        ("listen 80;", f"listen {listen};"),
        ("alias /srv/static/;", f"alias {static.resolve()}/;"),
    ]
    for old, new in swaps:
        if old not in config:
            raise ValueError(f"deploy/nginx.conf no longer has {old!r}")
        config = config.replace(old, new)
    return config


def command(nginx: str, prefix: Path) -> list[str]:
    """Run nginx in the foreground on the rendered config, logging under `prefix`."""
    # As root, workers would otherwise drop to "nobody", who may not read the files.
    user = f"user {getpass.getuser()};" if os.geteuid() == 0 else ""
    conf, log = prefix / "nginx.conf", prefix / "error.log"
    return [nginx, "-p", str(prefix), "-c", str(conf), "-e", str(log), "-g", f"daemon off; {user}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", default="127.0.0.1:8000", help="address:port or port")
    parser.add_argument("--upstream", action="append", required=True, help="a daphne address")
    parser.add_argument("--static", type=Path, required=True, help="DJANGO_STATIC_ROOT")
    parser.add_argument("--prefix", type=Path, required=True, help="where nginx keeps its files")
    args = parser.parse_args(argv)
    args.prefix.mkdir(parents=True, exist_ok=True)
    prefix = args.prefix.resolve()
    rendered = render(
        CONFIG.read_text(),
        listen=args.listen,
        upstreams=args.upstream,
        prefix=prefix,
        static=args.static,
    )
    (prefix / "nginx.conf").write_text(rendered)
    print(shlex.join(command("nginx", prefix)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

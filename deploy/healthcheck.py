"""Container healthcheck: exit 0 when this container's /healthz answers 200.

Standard library only, so a check every few seconds costs no Django import.
It sends the first of DJANGO_ALLOWED_HOSTS as the Host, which Django requires.
"""

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    port = os.environ.get("PORT", "8000")
    allowed = os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost").split(",")[0].strip()
    host = "localhost" if allowed in ("", "*") else allowed.lstrip(".")
    request = urllib.request.Request(f"http://127.0.0.1:{port}/healthz", headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return 0 if response.status == 200 else 1
    except urllib.error.HTTPError as exc:
        print(exc.read().decode(errors="replace"), file=sys.stderr)
    except OSError as exc:
        print(f"/healthz unreachable: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())

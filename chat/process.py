"""This server process's identity, and the Redis key of its lease.

The identity is new each time the process starts (host, pid and a random part),
so a restarted process never takes its previous incarnation's replies for its
own. chat.leases keeps the lease alive; anything else that records work per
process (chat.connections) names it by this identity and trusts it while the
lease key exists.
"""

import os
import secrets
import socket

from django.conf import settings

PROCESS_ID = f"{socket.gethostname()[:64]}-{os.getpid()}-{secrets.token_hex(3)}"


def lease_key(process: str) -> str:
    return f"{settings.CHAT_REDIS_PREFIX}:lease:{process}"

"""``python -m qa.healthcheck``: exit status 0 when the server that ``QA_HOST`` / ``QA_PORT`` describe
answers ``/health`` (the container image's HEALTHCHECK; usable from any supervisor)."""

from __future__ import annotations

import sys
import urllib.request

from qa.settings import SettingsError, load_settings

TIMEOUT_S = 4.0


def health_url(host: str, port: int) -> str:
    """Where to ask a server bound to ``host``: one listening on every address is asked on loopback."""
    host = host.strip().strip("[]")
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}/health" if ":" in host else f"http://{host}:{port}/health"


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"healthcheck: {exc}", file=sys.stderr)
        return 2
    url = health_url(settings.host, settings.port)
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as reply:
            status = reply.status
    except (OSError, ValueError) as exc:  # refused, timed out, an HTTP error status
        print(f"healthcheck: {url}: {exc}", file=sys.stderr)
        return 1
    return 0 if status == 200 else 1


if __name__ == "__main__":
    sys.exit(main())

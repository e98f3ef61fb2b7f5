"""The first contact of a run: until the API has answered once, requests get short timeouts, and
tries that get no answer at all (a wrong scheme, host or port, or a proxy that swallows the
request) end the run in seconds with a hint, not after --give-up-after of waiting out an outage.
"""

from __future__ import annotations

from tenacity import RetryCallState
from tenacity.stop import stop_base

from stxbf.fetch.connections import Transient

FIRST_CONTACT_TIMEOUT = 10.0
FIRST_CONTACT_CONNECT_TIMEOUT = 5.0


class NoAnswerYet(stop_base):
    """Stop once `attempts` tries in a row got no HTTP answer at all, unless one did answer
    (None: never). Refused, timed out, TLS failure and a dropped connection all count."""

    def __init__(self, attempts: int | None) -> None:
        self.attempts = attempts
        self.answered = False

    def __call__(self, retry_state: RetryCallState) -> bool:
        if self.attempts is None or retry_state.outcome is None:
            return False
        exc = retry_state.outcome.exception()
        if not (isinstance(exc, Transient) and exc.no_answer):
            self.answered = True  # a status code or a body: the URL is right, wait it out
        return not self.answered and retry_state.attempt_number >= self.attempts


def first_contact_hint(base_url: str, proxy: str | None) -> str:
    """What to check when nothing at `base_url` ever answered (a proxy's credentials not shown)."""
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    other = "http" if parts.scheme == "https" else "https"
    hint = (
        f"Nothing at {base_url} answered. Check the scheme (http or https: "
        f"{other}://{parts.netloc} instead?), the host and the port"
    )
    if proxy:
        proxy_parts = urlsplit(proxy)
        proxy = f"{proxy_parts.scheme}://{proxy_parts.hostname}" + (
            f":{proxy_parts.port}" if proxy_parts.port else ""
        )
        hint += f", and the proxy {proxy} (HTTPS_PROXY/HTTP_PROXY/ALL_PROXY; NO_PROXY skips it)"
    else:
        hint += ", and whether a proxy is needed (HTTPS_PROXY)"
    return hint + "."


def first_contact_limits(first_contact: bool) -> dict[str, float]:
    """The shorter timeouts of a request sent before the API has answered once."""
    if not first_contact:
        return {}
    return {"timeout": FIRST_CONTACT_TIMEOUT, "connect_timeout": FIRST_CONTACT_CONNECT_TIMEOUT}

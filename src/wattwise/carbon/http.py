"""The one HTTP client every live intensity provider uses: timeouts, retries with back-off, an on-disk cache.

``HttpClient.get_json`` fetches a JSON document and answers a :class:`JsonResponse`. What it does, in order:

1. a cached answer younger than the call's ``ttl_s`` is returned without touching the network;
   with ``Settings.offline`` a cached answer of any age is returned (its age in the note), and no cache is an error;
2. otherwise the request is sent with ``Settings.http_timeout_s`` and retried, with exponential back-off and jitter,
   on timeouts, connection errors, 429 (honouring ``Retry-After`` in seconds or as an HTTP date, up to
   ``retry_after_cap_s``), 5xx and answers the call's ``check`` finds empty (an outage behind a 200); never on
   another 4xx. ``on_unauthorized`` may renew credentials once on 401 or 403 (an expired token can answer either);
3. when every attempt failed for a reason that may pass (network, 429, 5xx), a cached answer of any age is returned
   with ``stale=True`` and a note that says how old it is; a wrong key or a malformed answer is never papered over.

Every failure is a :class:`~wattwise.errors.ProviderError` whose one-line message says what to do. The cache lives
under ``<Settings.home>/cache/http/``, keyed by method, URL and query parameters only: headers (where API keys and
tokens travel) are never part of the key, the cache file, a log line or a message.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wattwise.errors import ProviderError
from wattwise.fsutil import write_private

if TYPE_CHECKING:
    import httpx

    from wattwise.config import Settings

__all__ = [
    "TTL_FORECAST_S",
    "TTL_HISTORY_S",
    "TTL_LATEST_S",
    "TTL_RECENT_S",
    "HttpClient",
    "JsonResponse",
    "format_age",
]

log = logging.getLogger(__name__)

TTL_LATEST_S = 5 * 60.0  # the current value changes every 5 to 60 minutes
TTL_FORECAST_S = 30 * 60.0  # forecasts are re-issued about every half hour
TTL_RECENT_S = 15 * 60.0  # "the last 24 hours": still being filled in
TTL_HISTORY_S = 30 * 86400.0  # a closed past range hardly changes
_SENSITIVE_HEADERS = frozenset({"auth-token", "authorization", "x-api-key", "api-key", "cookie"})
_CACHE_FORMAT = 1
Params = Mapping[str, str | int | float]


@dataclass(frozen=True, slots=True)
class JsonResponse:
    """A parsed JSON answer and where it came from: the network, the cache, or a stale cache after a failure."""

    data: Any
    url: str
    fetched_at: datetime  # when the body left the server (UTC), not when it was read from the cache
    from_cache: bool = False
    stale: bool = False  # older than its TTL: offline, or the provider failed
    note: str = ""  # says the cache age and why a stale answer was used; empty for a fresh answer


class _Failure(Exception):
    """One failed attempt: the error to raise if it is the last, and how long to wait before the next."""

    def __init__(
        self, error: ProviderError, *, wait_s: float | None = None, unauthorized: bool = False, final: bool = False
    ) -> None:
        super().__init__(str(error))
        self.error = error
        self.wait_s = wait_s  # None: back off exponentially; a number: the server said when
        self.unauthorized = unauthorized  # 401: renewed credentials may help once
        self.final = final  # retrying cannot help within this call (e.g. Retry-After beyond the cap)


class HttpClient:
    """Fetches JSON for one provider. ``name`` is the provider's id (``ProviderError.provider``, cache file
    prefix), ``label`` the name users know it by, ``auth_hint`` what to check when the server says 401/403.

    ``transport`` (an ``httpx.BaseTransport``), ``sleep``, ``clock`` (epoch seconds) and ``jitter`` (a number in
    [0, 1)) are there so tests drive the client without the internet and without waiting."""

    def __init__(
        self,
        settings: Settings,
        *,
        name: str,
        label: str,
        auth_hint: str = "check the provider's credentials",
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
        max_attempts: int = 3,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 8.0,
        retry_after_cap_s: float = 60.0,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.name = name
        self.label = label
        self.auth_hint = auth_hint
        self.timeout_s = settings.http_timeout_s
        self.offline = settings.offline
        self.cache_dir = settings.home / "cache" / "http"
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.retry_after_cap_s = retry_after_cap_s
        self._transport = transport
        self._sleep = sleep
        self._clock = clock
        self._jitter = jitter
        self._client: httpx.Client | None = None
        self._closed = False

    # -- public -------------------------------------------------------------------------------------------------

    def get_json(
        self,
        url: str,
        *,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        ttl_s: float,
        cache: bool = True,
        on_unauthorized: Callable[[], Mapping[str, str]] | None = None,
        check: Callable[[Any], None] | None = None,
    ) -> JsonResponse:
        """GET ``url`` and parse its JSON body (see the module docstring for caching, retries and errors).

        ``cache=False`` neither reads nor writes the cache (a login). ``on_unauthorized`` is called once after a
        401 or 403 and answers fresh headers (a renewed token) for one more try. ``check`` looks at the parsed
        body before it is cached or returned: a retryable ProviderError from it (no data: an outage) is retried
        like a 5xx and never cached; another ProviderError is raised at once."""
        query = {k: str(v) for k, v in sorted((params or {}).items())}
        secrets = _secrets(headers, auth)
        key_path = self._cache_path(url, query) if cache else None
        cached = self._read_cache(key_path, url) if key_path is not None else None
        now = self._clock()
        if cached is not None and now - cached.fetched_at.timestamp() <= ttl_s:
            return cached
        if self.offline:
            if cached is not None:
                note = f"offline: {self.label} answer cached {format_age(now - cached.fetched_at.timestamp())} ago"
                return _restamp(cached, stale=True, note=note)
            raise ProviderError(
                f"offline and no cached {self.label} answer for {_path(url)}: turn offline mode off to fetch it, "
                "or use the static table",
                provider=self.name,
            )
        try:
            body, data = self._fetch(url, query, dict(headers or {}), auth, secrets, on_unauthorized, check)
        except ProviderError as exc:
            if cached is None or not exc.retryable:
                raise
            age = format_age(now - cached.fetched_at.timestamp())
            log.warning("%s failed (%s); using the answer cached %s ago", self.label, exc, age)
            return _restamp(cached, stale=True, note=f"{exc}; using the answer cached {age} ago")
        fetched = datetime.fromtimestamp(self._clock(), UTC)
        if key_path is not None:
            self._write_cache(key_path, url, query, body, fetched)
        return JsonResponse(data=data, url=url, fetched_at=fetched)

    def close(self) -> None:
        """Release the connections; a request after this is refused (a refresh still in flight at the end of a
        run must not open a new client that nothing will close)."""
        self._closed = True
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the network --------------------------------------------------------------------------------------------

    def _http(self) -> httpx.Client:
        if self._closed:
            raise _Failure(self._error(f"the {self.label} client was closed: the run has ended"))
        if self._client is None:
            import httpx  # only when a provider really goes to the network: start-up cost

            from wattwise import __version__

            self._client = httpx.Client(
                transport=self._transport,
                timeout=httpx.Timeout(self.timeout_s),
                follow_redirects=False,
                headers={"User-Agent": f"wattwise/{__version__}", "Accept": "application/json"},
            )
        return self._client

    def _fetch(
        self,
        url: str,
        query: dict[str, str],
        headers: dict[str, str],
        auth: tuple[str, str] | None,
        secrets: list[str],
        on_unauthorized: Callable[[], Mapping[str, str]] | None,
        check: Callable[[Any], None] | None = None,
    ) -> tuple[str, Any]:
        renewed = False
        attempt = 0
        while True:
            attempt += 1
            try:
                body = self._attempt(url, query, headers, auth, secrets, attempt)
                data = self._parse(body, url, secrets)
                if check is not None:
                    try:
                        check(data)
                    except ProviderError as exc:
                        raise _Failure(exc) from None
                return body, data
            except _Failure as failure:
                if failure.unauthorized and on_unauthorized is not None and not renewed:
                    renewed = True
                    log.info("%s answered 401; renewing the credentials once", self.label)
                    headers = {**headers, **on_unauthorized()}
                    secrets = _secrets(headers, auth) + secrets
                    attempt -= 1  # renewing credentials is not a retry
                    continue
                if failure.final or not failure.error.retryable or attempt >= self.max_attempts:
                    raise failure.error from None
                wait = failure.wait_s if failure.wait_s is not None else self._backoff(attempt)
                log.info("%s: attempt %d failed (%s); retrying in %.2f s", self.label, attempt, failure, wait)
                self._sleep(wait)

    def _attempt(
        self,
        url: str,
        query: dict[str, str],
        headers: dict[str, str],
        auth: tuple[str, str] | None,
        secrets: list[str],
        attempt: int,
    ) -> str:
        import httpx

        log.debug("GET %s (%s) attempt %d", url, self.label, attempt)
        try:
            response = self._http().get(url, params=query, headers=headers, auth=auth)
        except httpx.TimeoutException:
            raise _Failure(
                self._error(
                    f"{self.label} did not answer within {self.timeout_s:g} s ({attempt} attempts): try again later "
                    "or raise http_timeout_s",
                    retryable=True,
                )
            ) from None
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise _Failure(self._error(f"cannot use {_scrub(url, secrets)!r} for {self.label}: {exc}")) from None
        except httpx.TransportError as exc:
            reason = _scrub(str(exc) or type(exc).__name__, secrets)
            raise _Failure(
                self._error(
                    f"cannot reach {self.label} at {_host(url)} ({reason}; {attempt} attempts): check the network "
                    "connection, or work offline",
                    retryable=True,
                )
            ) from None
        status = response.status_code
        text = response.text
        if 200 <= status < 300:
            return text
        detail = _scrub(_detail(text), secrets)
        if status in (401, 403):
            error = self._error(
                f"{self.label} refused the credentials ({status}: {detail}): {self.auth_hint}", status=status
            )
            error.detail = detail
            raise _Failure(error, unauthorized=True)
        if status == 429:
            wait = _retry_after(response.headers.get("Retry-After"), self._clock())
            shown = math.ceil(wait) if wait is not None else math.ceil(self._backoff(attempt))
            error = self._error(f"{self.label} rate limited the request: retry after {shown} s", retryable=True)
            raise _Failure(error, wait_s=wait, final=wait is not None and wait > self.retry_after_cap_s)
        if status >= 500:
            raise _Failure(
                self._error(
                    f"{self.label} had a server error ({status}: {detail}; {attempt} attempts): try again later",
                    retryable=True,
                )
            )
        raise _Failure(
            self._error(
                f"{self.label} rejected the request ({status} for {_path(url)}: {detail}): check the zone or region "
                "name and the parameters"
            )
        )

    def _parse(self, body: str, url: str, secrets: list[str]) -> Any:
        try:
            return json.loads(body)
        except json.JSONDecodeError as exc:
            preview = _scrub(body[:60], secrets)
            raise self._error(
                f"unexpected response from {self.label}: {_path(url)} did not answer JSON ({exc.msg} at char "
                f"{exc.pos}; starts {preview!r}); try again later or report it"
            ) from None

    def _backoff(self, attempt: int) -> float:
        """Exponential back-off with jitter: between half and all of ``base * 2**(attempt-1)``, capped."""
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2.0 ** (attempt - 1))
        return ceiling * (0.5 + 0.5 * self._jitter())

    def _error(self, message: str, *, retryable: bool = False, status: int | None = None) -> ProviderError:
        return ProviderError(message, provider=self.name, retryable=retryable, status=status)

    # -- the cache ----------------------------------------------------------------------------------------------

    def _cache_path(self, url: str, query: dict[str, str]) -> Path:
        key = json.dumps(["GET", url, sorted(query.items())], separators=(",", ":"))
        return self.cache_dir / f"{self.name}-{hashlib.sha256(key.encode()).hexdigest()[:40]}.json"

    def _read_cache(self, path: Path, url: str) -> JsonResponse | None:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if record.get("format") != _CACHE_FORMAT:
                return None
            fetched = datetime.fromtimestamp(float(record["fetched_at"]), UTC)
            data = json.loads(record["body"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("ignoring unreadable cache file %s (%s)", path, type(exc).__name__)
            return None
        return JsonResponse(data=data, url=url, fetched_at=fetched, from_cache=True)

    def _write_cache(self, path: Path, url: str, query: dict[str, str], body: str, fetched: datetime) -> None:
        record = {
            "format": _CACHE_FORMAT,
            "method": "GET",
            "url": url,
            "params": query,
            "fetched_at": fetched.timestamp(),
            "fetched_at_utc": fetched.isoformat(),
            "body": body,
        }
        try:
            write_private(path, json.dumps(record))  # private to the user, like everything under the home
        except OSError as exc:  # a read-only home must not stop a measurement; the answer is still good
            log.warning("cannot write the HTTP cache %s: %s", path, exc.strerror)


def format_age(seconds: float) -> str:
    """A short, human age: ``45 s``, ``12 min``, ``3.5 h``, ``2.0 days``."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _restamp(cached: JsonResponse, *, stale: bool, note: str) -> JsonResponse:
    return JsonResponse(cached.data, cached.url, cached.fetched_at, from_cache=True, stale=stale, note=note)


def _retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: a number of seconds or an HTTP date; None if absent/invalid."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def _secrets(headers: Mapping[str, str] | None, auth: tuple[str, str] | None) -> list[str]:
    found = [v for k, v in (headers or {}).items() if k.lower() in _SENSITIVE_HEADERS]
    for value in list(found):
        found.extend(part for part in value.split() if len(part) >= 6)  # the token inside "Bearer <token>"
    if auth is not None:
        found.extend(auth)
    return sorted({s for s in found if len(s) >= 4}, key=len, reverse=True)


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _detail(body: str) -> str:
    """The server's own words about an error, on one short line."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("message", "error", "detail", "error_description"):
            value = data.get(key)
            if isinstance(value, str | int | float) and str(value):
                body = str(value)
                break
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                body = value["message"]
                break
    text = " ".join(body.split())
    return (text[:160] + "…") if len(text) > 160 else (text or "no details")


def _host(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0]


def _path(url: str) -> str:
    rest = url.split("://", 1)[-1]
    return "/" + rest.split("/", 1)[1] if "/" in rest else "/"

"""breakerbox: a lock-free circuit breaker, and a drop-in for pybreaker 1.4.1.

    import breakerbox as pybreaker

Admission, the protected call and its record happen in one call into the
compiled core (``breakerbox._breakerbox``); no lock is held across the call.
"""

from __future__ import annotations

import functools
import inspect
import os
import weakref
from enum import Enum
from typing import TYPE_CHECKING, Any, Callable, Iterable, Literal, NamedTuple, Sequence, TypeVar, Union, overload

from ._breakerbox import (
    BreakerBase as _BreakerBase,
    Calling,
    CircuitBreakerError,
    Decorated,
    ExponentialBackoff,
    ManualClock,
    Permit,
    _setup,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Coroutine, Generator

    from typing_extensions import ParamSpec

    P = ParamSpec("P")

__all__ = (
    "CircuitBreaker",
    "CircuitBreakerListener",
    "CircuitBreakerError",
    "CircuitBreakerState",
    "CircuitBreakerStorage",
    "CircuitMemoryStorage",
    "CircuitRedisStorage",
    "ExponentialBackoff",
    "Jitter",
    "ManualClock",
    "Mode",
    "OpenBackoff",
    "Permit",
    "STATE_OPEN",
    "STATE_CLOSED",
    "STATE_HALF_OPEN",
)

STATE_OPEN = "open"
STATE_CLOSED = "closed"
STATE_HALF_OPEN = "half-open"

T = TypeVar("T")


class Mode(str, Enum):
    """Whether a breaker acts on its decisions (``mode=``). A member is also
    its name as a ``str``: ``mode="metrics_only"`` is ``mode=Mode.METRICS_ONLY``."""

    ENFORCING = "enforcing"
    """Rejects calls while open (the default)."""
    METRICS_ONLY = "metrics_only"
    """Shadow mode: decides, counts and tells listeners everything (state
    changes, ``rejected``), but rejects nothing and raises nothing of its own."""
    DISABLED = "disabled"
    """Admits every call; counts and reports nothing."""

    def __str__(self) -> str:
        return self.value


class Jitter(str, Enum):
    """Randomness added to an ``ExponentialBackoff`` (``jitter=``)."""

    NONE = "none"
    """Exactly the computed duration."""
    FULL = "full"
    """Uniform in [0, d]."""
    EQUAL = "equal"
    """Uniform in [d/2, d]."""

    def __str__(self) -> str:
        return self.value


OpenBackoff = Union[ExponentialBackoff, Callable[[int, Union[float, None]], float]]
"""What ``open_backoff=`` takes: an ``ExponentialBackoff``, or a function of
the attempt (1 for the first open period since the breaker last closed) and
the window's failure rate in percent when it tripped (None without a window
or below its minimum), returning seconds."""


class CircuitBreakerState:
    """A state as listeners see it: ``state.name`` is ``"closed"``, ``"open"`` or ``"half-open"``."""

    def __init__(self, name: str) -> None:
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CircuitBreakerState):
            return self._name == other._name
        if isinstance(other, str):
            return self._name == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._name!r}>"


class CircuitClosedState(CircuitBreakerState):
    def __init__(self) -> None:
        super().__init__(STATE_CLOSED)


class CircuitOpenState(CircuitBreakerState):
    def __init__(self) -> None:
        super().__init__(STATE_OPEN)


class CircuitHalfOpenState(CircuitBreakerState):
    def __init__(self) -> None:
        super().__init__(STATE_HALF_OPEN)


class CircuitBreakerListener:
    """Plug code into a breaker's events; every hook defaults to doing nothing.

    Hooks run on the thread that made the decision, after the state changed,
    with no lock held. ``rejected``, ``ignored`` and ``storage_error`` go
    beyond pybreaker and may be left out of a listener that does not subclass
    this class.
    """

    def before_call(self, cb: CircuitBreaker, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """An admitted call is about to run."""

    def failure(self, cb: CircuitBreaker, exc: BaseException) -> None:
        """A call raised and counted as a failure."""

    def success(self, cb: CircuitBreaker) -> None:
        """A call succeeded (or raised an excluded exception)."""

    def state_change(
        self, cb: CircuitBreaker, old_state: CircuitBreakerState | None, new_state: CircuitBreakerState
    ) -> None:
        """The breaker moved; ``cb.current_state`` already is ``new_state.name``."""

    def rejected(self, cb: CircuitBreaker) -> None:
        """A call was rejected without running."""

    def ignored(self, cb: CircuitBreaker, exc: BaseException | None = None) -> None:
        """A call counted as neither success nor failure (``ignore=``, cancellation)."""

    def storage_error(self, cb: CircuitBreaker, message: str) -> None:
        """The shared store failed; the breaker went on by its fault policy."""


def _calling() -> None:
    """The function ``before_call`` listeners see for a ``calling()`` block."""


def _generator_call(permit: Permit, gen: Generator[Any, Any, Any]) -> Generator[Any, Any, Any]:
    """Records a generator function's outcome when the generator finishes or raises."""
    try:
        result = yield from gen
    except BaseException as exc:
        permit.error(exc)
        raise
    permit.success()
    return result


async def _call_async(self: _BreakerBase, func: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``await func(*args, **kwargs)`` if the breaker admits it.

    Admission is decided when the coroutine first runs, before ``func`` is
    called, so nothing is awaited between the decision and the call; a
    rejected call never builds ``func``'s coroutine. A cancelled call
    (``CancelledError``) counts as neither success nor failure.
    """
    ticket = self._admit(func, args, kwargs)
    try:
        result = await func(*args, **kwargs)
    except BaseException as exc:
        self._fail(ticket, exc)
        raise
    self._succeed(ticket)
    return result


_STATES = (CircuitClosedState(), CircuitOpenState(), CircuitHalfOpenState())
_setup(_STATES, _generator_call, _calling, (Mode.ENFORCING, Mode.METRICS_ONLY, Mode.DISABLED))


class CircuitBreakerStorage:
    """Where a breaker's state lives. Only the two storages below exist: the
    state is the compiled core's atomic word, or a Redis fleet's."""

    def __init__(self, name: str) -> None:
        self._name = name

    @property
    def name(self) -> str:
        return self._name


def _check_state(state: object, argument: str) -> str:
    if not isinstance(state, str):
        raise TypeError(f"{argument} must be a state name (str), not {type(state).__name__}")
    if state not in (STATE_CLOSED, STATE_OPEN, STATE_HALF_OPEN):
        raise ValueError(f"Unknown state {state!r}, valid states: closed, open, half-open")
    return state


class CircuitMemoryStorage(CircuitBreakerStorage):
    """The breaker's state in this process's memory (the default), starting in ``state``."""

    def __init__(self, state: str) -> None:
        super().__init__("memory")
        self._initial_state = _check_state(state, "state")

    @property
    def state(self) -> str:
        """The state the breaker starts in."""
        return self._initial_state


_POLICIES = ("local", "fail_open", "fail_closed")


class CircuitRedisStorage(CircuitBreakerStorage):
    """The breaker's state shared through Redis by every breaker, in any
    process or language, naming the same ``namespace``: one logical breaker.

    Built on breakerbox's fleet protocol (one Lua script per transition, the
    Redis server's clock, pub/sub announcements). ``redis_object`` is the
    redis-py client the application already has: its host, port, database,
    username, password or unix socket are used to open the core's own
    connections.

    A TLS client (``ssl=True``, ``rediss://``) connects over TLS 1.2 or 1.3
    with its ``ssl_ca_certs``/``ssl_ca_data`` as the only roots (the
    system's when neither is given) and its ``ssl_certfile``/``ssl_keyfile``
    as the client certificate; the server's host name is always checked. A
    setting that cannot be honoured exactly raises ``ValueError`` naming it
    (``ssl_cert_reqs="none"``, ``ssl_check_hostname=False``, a CA directory,
    an encrypted key, OCSP, ciphers, TLS 1.3 only), never a weaker
    connection.

    A ``redis.cluster.RedisCluster`` client shares the state through the
    cluster (its nodes are the seeds, its credentials and TLS settings
    apply), and so does a plain client of one node with
    ``cluster_mode=True``.

    A client of ``redis.sentinel.Sentinel.master_for(name)`` reaches the
    master the sentinels name, asking them again after a fault (a
    failover); the sentinels' own password comes from ``sentinel_kwargs``,
    the master's from the client. A replica client (``slave_for``), TLS
    through Sentinel and a ``credential_provider`` raise ``TypeError``.
    """

    def __init__(
        self,
        state: str,
        redis_object: Any,
        namespace: str | None = None,
        fallback_circuit_state: str = STATE_CLOSED,
        cluster_mode: bool = False,
        *,
        policy: str = "local",
        command_timeout: float = 0.1,
        refresh_interval: float = 1.0,
    ) -> None:
        super().__init__("redis")
        self._initial_state = _check_state(state, "state")
        _check_state(fallback_circuit_state, "fallback_circuit_state")
        if namespace is not None and not isinstance(namespace, str):
            raise TypeError(f"namespace must be a str or None, not {type(namespace).__name__}")
        if not isinstance(cluster_mode, bool):
            raise TypeError(f"cluster_mode must be a bool, not {type(cluster_mode).__name__}")
        if policy not in _POLICIES:
            raise ValueError(f"policy must be one of {', '.join(_POLICIES)}, got {policy!r}")
        self._endpoint = _redis_endpoint(redis_object, cluster_mode)
        self._url = self._endpoint.urls[0]
        self._namespace = namespace
        self._policy = policy
        self._command_timeout = command_timeout
        self._refresh_interval = refresh_interval

    @property
    def state(self) -> str:
        return self._initial_state

    @property
    def url(self) -> str:
        """The connection the core opens (a cluster's first seed), password hidden."""
        return _mask(self._url)


def _mask(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))
    return url


class _Endpoint(NamedTuple):
    """What the core connects to: one URL, a cluster's seed nodes, or the
    sentinels that name the master."""

    urls: list[str]
    cluster: bool
    # (roots PEM or None for the system's, (certificate PEM, key PEM) or None);
    # None: no TLS.
    tls: tuple[bytes | None, tuple[bytes, bytes] | None] | None
    # (master name, username, password, db): `urls` are the sentinels.
    sentinel: tuple[str, str, str, int] | None = None


def _redis_url(client: Any) -> str:
    """The URL of a redis-py client's connection settings."""
    return _redis_endpoint(client, False).urls[0]


def _redis_endpoint(client: Any, cluster_mode: bool) -> _Endpoint:
    kind = type(client).__name__
    if kind == "ClusterPipeline":
        raise TypeError("redis_object must be a redis-py client, not a ClusterPipeline")
    if hasattr(client, "get_nodes"):
        return _cluster_endpoint(client)
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None)
    if pool is None or not isinstance(kwargs, dict):
        raise TypeError(f"redis_object must be a redis-py Redis client, not {kind}")
    conn_class = getattr(pool, "connection_class", None)
    if "Sentinel" in getattr(conn_class, "__name__", "") or "Sentinel" in type(pool).__name__:
        if cluster_mode:
            raise ValueError("cluster_mode: a Sentinel-managed client is not a Redis Cluster client")
        return _sentinel_endpoint(pool, conn_class, kwargs)
    host = kwargs.get("host") or "localhost"
    port = int(kwargs.get("port") or 6379)
    prefix, tls = _connection_prefix(conn_class, kwargs)
    db = int(kwargs.get("db") or 0)
    path = kwargs.get("path")
    if cluster_mode:
        if path:
            raise ValueError("cluster_mode: a Redis Cluster is reached over TCP, not a unix socket")
        if db:
            raise ValueError(f"cluster_mode: a Redis Cluster has database 0 only; the client selects db {db}")
        return _Endpoint([f"{prefix}{_host(host)}:{port}/"], True, tls)
    if path:
        return _Endpoint([f"unix://{prefix.split('://', 1)[1]}{path}?db={db}"], False, None)
    return _Endpoint([f"{prefix}{_host(host)}:{port}/{db}"], False, tls)


def _cluster_endpoint(client: Any) -> _Endpoint:
    nodes = list(client.get_nodes())
    if not nodes:
        raise ValueError("redis_object: the RedisCluster client knows no node")
    settings = None
    for node in nodes:
        connection = getattr(node, "redis_connection", None)
        pool = getattr(connection, "connection_pool", None)
        if pool is not None and isinstance(getattr(pool, "connection_kwargs", None), dict):
            settings = (pool.connection_class, pool.connection_kwargs)
            break
        if isinstance(getattr(node, "connection_kwargs", None), dict):
            settings = (getattr(node, "connection_class", None), node.connection_kwargs)
            break
    if settings is None:
        raise TypeError(f"redis_object: cannot read the connection settings of {type(client).__name__}")
    prefix, tls = _connection_prefix(*settings)
    return _Endpoint([f"{prefix}{_host(node.host)}:{int(node.port)}/" for node in nodes], True, tls)


def _sentinel_endpoint(pool: Any, conn_class: Any, kwargs: dict[str, Any]) -> _Endpoint:
    """The sentinels of a ``Sentinel.master_for`` client, and its master's settings."""
    if not getattr(pool, "is_master", True):
        raise TypeError("redis_object: a Sentinel replica client (slave_for) cannot share state, "
                        "which is written on the master; give sentinel.master_for(name)")
    name = getattr(pool, "service_name", None)
    manager = getattr(pool, "sentinel_manager", None)
    sentinels = list(getattr(manager, "sentinels", None) or [])
    if not isinstance(name, str) or not name or not sentinels:
        raise TypeError("redis_object: cannot read the Sentinel client's master name and sentinels")
    prefix, tls = _connection_prefix(conn_class, kwargs)
    if tls is not None:
        raise TypeError("redis_object: TLS through Sentinel is not supported")
    urls = []
    for sentinel in sentinels:
        spool = getattr(sentinel, "connection_pool", None)
        skw = getattr(spool, "connection_kwargs", None)
        if not isinstance(skw, dict):
            raise TypeError("redis_object: cannot read a sentinel's connection settings")
        sprefix, stls = _connection_prefix(getattr(spool, "connection_class", None), skw)
        if stls is not None:
            raise TypeError("redis_object: TLS through Sentinel is not supported")
        urls.append(f"{sprefix}{_host(skw.get('host') or 'localhost')}:{int(skw.get('port') or 26379)}/")
    master = (name, str(kwargs.get("username") or ""), str(kwargs.get("password") or ""),
              int(kwargs.get("db") or 0))
    return _Endpoint(urls, False, None, master)


def _host(host: Any) -> str:
    host = str(host)
    # Such a character would end the URL's host and could add options (a
    # `#insecure` fragment) the client never asked for.
    if any(c in host for c in "/?#@ "):
        raise ValueError(f"redis_object: {host!r} is not a host name or address")
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def _connection_prefix(
    conn_class: Any, kwargs: dict[str, Any]
) -> tuple[str, tuple[bytes | None, tuple[bytes, bytes] | None] | None]:
    """``redis://user:password@`` or ``rediss://...`` with the TLS settings."""
    if kwargs.get("credential_provider") is not None:
        raise TypeError("redis_object: a credential_provider is not supported; give username/password")
    username = kwargs.get("username") or ""
    password = kwargs.get("password") or ""
    auth = ""
    if password:
        auth = f"{_quote(str(username))}:{_quote(str(password))}@"
    elif username:
        auth = f"{_quote(str(username))}@"
    uses_tls = "SSL" in getattr(conn_class, "__name__", "") or bool(kwargs.get("ssl"))
    if not uses_tls:
        if kwargs.get("ssl_context") is not None:
            raise ValueError("ssl_context: an ssl.SSLContext cannot be carried to the core; "
                             "give ssl_ca_certs/ssl_certfile/ssl_keyfile instead")
        return f"redis://{auth}", None
    return f"rediss://{auth}", _tls_settings(kwargs)


# Settings the core cannot carry: each must be left at its default, the
# value that changes nothing in the connection's security.
_TLS_UNSUPPORTED = {
    "ssl_context": "an ssl.SSLContext cannot be carried to the core; give ssl_ca_certs/ssl_certfile/ssl_keyfile",
    "ssl_ca_path": "a CA directory is not supported; give ssl_ca_certs (a file) or ssl_ca_data",
    "ssl_password": "an encrypted private key is not supported; give an unencrypted ssl_keyfile",
    "ssl_include_verify_flags": "OpenSSL verify flags are not supported",
    "ssl_exclude_verify_flags": "OpenSSL verify flags are not supported",
    "ssl_validate_ocsp": "OCSP checks are not supported",
    "ssl_validate_ocsp_stapled": "OCSP checks are not supported",
    "ssl_ocsp_context": "OCSP checks are not supported",
    "ssl_ocsp_expected_cert": "OCSP checks are not supported",
    "ssl_ciphers": "a cipher list is not supported (the core offers rustls' TLS 1.2/1.3 suites)",
}
_TLS_HONOURED = ("ssl", "ssl_ca_certs", "ssl_ca_data", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs",
                 "ssl_check_hostname", "ssl_min_version")


def _read(argument: str, path: Any) -> bytes:
    try:
        with open(os.fspath(path), "rb") as f:
            return f.read()
    except (OSError, TypeError) as e:
        raise ValueError(f"{argument}: cannot read {path!r}: {e}") from None


def _tls_settings(kwargs: dict[str, Any]) -> tuple[bytes | None, tuple[bytes, bytes] | None]:
    import ssl

    for key, value in kwargs.items():
        if not key.startswith("ssl") or key in _TLS_HONOURED or value is None or value is False or value == []:
            continue
        why = _TLS_UNSUPPORTED.get(key, "this TLS setting is not supported")
        raise ValueError(f"{key}={value!r}: {why}; refusing to connect with other security than asked")
    reqs = kwargs.get("ssl_cert_reqs", "required")
    if isinstance(reqs, str):
        reqs = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}.get(reqs, reqs)
    if reqs is None or reqs == ssl.CERT_NONE:
        raise ValueError("ssl_cert_reqs: the core always verifies the server's certificate; "
                         "give 'required' and the CA in ssl_ca_certs or ssl_ca_data")
    # A client's CERT_OPTIONAL verifies as CERT_REQUIRED does.
    if reqs not in (ssl.CERT_OPTIONAL, ssl.CERT_REQUIRED):
        raise ValueError(f"ssl_cert_reqs must be 'none', 'optional' or 'required', got {reqs!r}")
    if kwargs.get("ssl_check_hostname", True) is not True:
        raise ValueError("ssl_check_hostname: the core always checks the server's host name against "
                         "its certificate; give ssl_check_hostname=True")
    minimum = kwargs.get("ssl_min_version")
    if minimum is not None and minimum in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.MAXIMUM_SUPPORTED):
        raise ValueError(f"ssl_min_version={minimum!r}: the core negotiates TLS 1.2 or 1.3 and cannot require 1.3")
    roots = b""
    if kwargs.get("ssl_ca_certs") is not None:
        roots += _read("ssl_ca_certs", kwargs["ssl_ca_certs"]) + b"\n"
    data = kwargs.get("ssl_ca_data")
    if data is not None:
        if not isinstance(data, str):
            raise ValueError("ssl_ca_data: give PEM text (a str); DER bytes are not supported")
        roots += data.encode("ascii", "replace") + b"\n"
    certfile, keyfile = kwargs.get("ssl_certfile"), kwargs.get("ssl_keyfile")
    client = None
    if certfile is not None:
        certificate = _read("ssl_certfile", certfile)
        # As ssl.load_cert_chain: without a key file the key is in the certificate file.
        client = (certificate, _read("ssl_keyfile", keyfile) if keyfile is not None else certificate)
    elif keyfile is not None:
        raise ValueError("ssl_keyfile: a key without ssl_certfile; give both")
    return (roots or None), client


_fork_registry: weakref.WeakSet[CircuitBreaker] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for breaker in list(_fork_registry):
        breaker._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _as_tuple(value: Any, argument: str) -> tuple[Any, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, bytes, type)):
        raise TypeError(f"{argument} must be an iterable")
    try:
        return tuple(value)
    except TypeError:
        raise TypeError(f"{argument} must be an iterable, not {type(value).__name__}") from None


class CircuitBreaker(_BreakerBase):
    """A circuit breaker with pybreaker 1.4.1's interface on a lock-free core.

    Beyond pybreaker: ``ignore=`` (exceptions that count as neither success
    nor failure), ``half_open_max_calls``, ``probe_lease`` (seconds before a
    lost probe's slot is reclaimed), ``clock=`` (a ``ManualClock`` for tests),
    ``half_open_rule="failure_rate"`` (half-open decided as resilience4j
    does: ``half_open_max_calls`` probes in all, at most 31, re-opening when
    half or more of them failed; ``success_threshold`` must stay 1),
    and asyncio: ``await cb.call_async(f)``, ``@cb`` on ``async def`` and
    ``async with cb.calling()``.

    Instead of ``fail_max`` consecutive failures, the closed state may decide
    on a rate: ``count_window`` (the last N calls) or ``time_window`` (the
    calls of the last T seconds, in ``window_buckets`` buckets), tripping when
    the failure rate reaches ``failure_rate_threshold`` percent (default 50)
    once ``minimum_calls`` calls (default 100) are in it. ``slow_call_duration``
    (seconds) makes calls longer than it slow, whatever their outcome; the
    breaker then times each call itself, and trips when the slow-call rate
    reaches ``slow_call_rate_threshold`` percent (default 100). ``mode`` is a
    ``Mode``; ``open_backoff`` lengthens each consecutive open period (see
    ``OpenBackoff``). None of these given: the consecutive rule, unchanged.
    """

    def __init__(
        self,
        fail_max: int = 5,
        reset_timeout: float = 60,
        success_threshold: int = 1,
        exclude: Iterable[type[BaseException] | Callable[[BaseException], bool]] | None = None,
        listeners: Sequence[Any] | None = None,
        state_storage: CircuitBreakerStorage | None = None,
        name: str | None = None,
        throw_new_error_on_trip: bool = True,
        *,
        ignore: Iterable[type[BaseException] | Callable[[BaseException], bool]] | None = None,
        half_open_max_calls: int = 1,
        probe_lease: float | None = None,
        clock: ManualClock | None = None,
        half_open_rule: Literal["successes", "failure_rate"] = "successes",
        count_window: int | None = None,
        time_window: float | None = None,
        window_buckets: int | None = None,
        failure_rate_threshold: float | None = None,
        minimum_calls: int | None = None,
        slow_call_duration: float | None = None,
        slow_call_rate_threshold: float | None = None,
        mode: Mode | str | None = None,
        open_backoff: OpenBackoff | None = None,
    ) -> None:
        redis: dict[str, Any] = {}
        if state_storage is None:
            initial = STATE_CLOSED
        elif isinstance(state_storage, CircuitRedisStorage):
            initial = state_storage.state
            redis = dict(
                redis_url=state_storage._url,
                redis_cluster=state_storage._endpoint.urls if state_storage._endpoint.cluster else None,
                redis_tls=state_storage._endpoint.tls,
                redis_sentinel=(
                    (state_storage._endpoint.urls, *state_storage._endpoint.sentinel)
                    if state_storage._endpoint.sentinel else None
                ),
                redis_namespace=state_storage._namespace,
                redis_policy=state_storage._policy,
                redis_command_timeout=state_storage._command_timeout,
                redis_refresh_interval=state_storage._refresh_interval,
            )
        elif isinstance(state_storage, CircuitMemoryStorage):
            initial = state_storage.state
        else:
            raise TypeError(
                "state_storage must be a CircuitMemoryStorage or a CircuitRedisStorage, "
                f"not {type(state_storage).__name__}: the state lives in the compiled core"
            )
        self._init(
            name=name,
            fail_max=fail_max,
            reset_timeout=reset_timeout,
            success_threshold=success_threshold,
            half_open_max_calls=half_open_max_calls,
            probe_lease=probe_lease,
            exclude=_as_tuple(exclude, "exclude"),
            ignore=_as_tuple(ignore, "ignore"),
            listeners=_as_tuple(listeners, "listeners"),
            throw_new_error_on_trip=throw_new_error_on_trip,
            clock=clock,
            initial_state=initial,
            half_open_rule=half_open_rule,
            count_window=count_window,
            time_window=time_window,
            window_buckets=window_buckets,
            failure_rate_threshold=failure_rate_threshold,
            minimum_calls=minimum_calls,
            slow_call_duration=slow_call_duration,
            slow_call_rate_threshold=slow_call_rate_threshold,
            mode=mode,
            open_backoff=open_backoff,
            **redis,
        )
        self._state_storage = state_storage or CircuitMemoryStorage(initial)
        if redis:
            _fork_registry.add(self)

    call_async = _call_async

    # The decorator: @cb, @cb(), cb(func).
    @overload
    def __call__(self, func: Callable[P, T], /) -> Callable[P, T]: ...

    @overload
    def __call__(self) -> Callable[[Callable[P, T]], Callable[P, T]]: ...

    def __call__(self, *call_args: Any, **call_kwargs: Any) -> Any:
        call_kwargs.pop("__pybreaker_call_async", None)
        if call_kwargs:
            raise TypeError(f"unexpected keyword arguments: {', '.join(call_kwargs)}")
        if len(call_args) > 1:
            raise TypeError("the decorator takes one function")
        if call_args:
            return self._wrap(call_args[0])
        return self._wrap

    def _wrap(self, func: Any) -> Any:
        if not callable(func):
            raise TypeError(f"can only decorate a callable, not {type(func).__name__}")
        if inspect.iscoroutinefunction(func):
            admit, succeed, fail = self._admit, self._succeed, self._fail

            @functools.wraps(func)
            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                # `_call_async` inlined: one coroutine frame per call, not two.
                ticket = admit(func, args, kwargs)
                try:
                    result = await func(*args, **kwargs)
                except BaseException as exc:
                    fail(ticket, exc)
                    raise
                succeed(ticket)
                return result

            return wrapper
        return functools.wraps(func)(self._decorate(func))

    def add_listener(self, listener: Any) -> None:
        self._set_listeners(self.listeners + (listener,))

    def add_listeners(self, *listeners: Any) -> None:
        self._set_listeners(self.listeners + listeners)

    def remove_listener(self, listener: Any) -> None:
        current = list(self.listeners)
        current.remove(listener)
        self._set_listeners(tuple(current))

    def add_excluded_exception(self, exception: type[BaseException] | Callable[[BaseException], bool]) -> None:
        self._set_exclude(self.excluded_exceptions + (exception,))

    def add_excluded_exceptions(self, *exceptions: type[BaseException] | Callable[[BaseException], bool]) -> None:
        self._set_exclude(self.excluded_exceptions + exceptions)

    def remove_excluded_exception(self, exception: type[BaseException] | Callable[[BaseException], bool]) -> None:
        current = list(self.excluded_exceptions)
        current.remove(exception)
        self._set_exclude(tuple(current))

    def __repr__(self) -> str:
        return f"<CircuitBreaker name={self.name!r} state={self.current_state!r}>"

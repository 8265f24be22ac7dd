"""A breaker shared through Redis over TLS: the redis-py client's
certificate settings carried to the core, or refused by name.

Needs the TLS redis-servers and the throwaway CA that scripts/test-python.sh
starts and makes (BREAKERBOX_REDIS_TLS_URL, BREAKERBOX_REDIS_MTLS_URL,
BREAKERBOX_TLS_DIR).
"""

from __future__ import annotations

import os
import ssl
import uuid

import pytest
import redis

import breakerbox
from breakerbox import CircuitBreaker, CircuitBreakerError, CircuitRedisStorage
from polling import within

REFRESH = 0.2
# A new connection costs a TLS handshake: room for it on a loaded machine.
COMMAND_TIMEOUT = 1.0
STALENESS = REFRESH + COMMAND_TIMEOUT


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run scripts/test-python.sh")
    return value


def cert(name: str) -> str:
    return os.path.join(env("BREAKERBOX_TLS_DIR"), name)


def namespace() -> str:
    return f"py-tls-{uuid.uuid4().hex[:12]}"


class Errors(breakerbox.CircuitBreakerListener):
    def __init__(self) -> None:
        self.messages: list[str] = []

    def storage_error(self, cb, message):
        self.messages.append(message)


def breaker(client, ns: str, errors: Errors | None = None, policy: str = "local", **kwargs) -> CircuitBreaker:
    storage = CircuitRedisStorage("closed", client, namespace=ns, refresh_interval=REFRESH,
                                  command_timeout=COMMAND_TIMEOUT, policy=policy)
    return CircuitBreaker(state_storage=storage, listeners=[errors or Errors()], **kwargs)


def fail():
    raise ConnectionError("down")


def trusted(url: str, **kwargs) -> redis.Redis:
    """A redis-py client of `url` that trusts the test CA, for checking."""
    return redis.Redis.from_url(url, ssl_ca_certs=cert("ca.crt"), **kwargs)


def assert_one_breaker(a: CircuitBreaker, b: CircuitBreaker) -> None:
    assert a.is_shared and b.is_shared
    with pytest.raises(ConnectionError):
        a.call(fail)
    with pytest.raises(CircuitBreakerError, match="Failures threshold reached"):
        a.call(fail)
    assert within(lambda: b.current_state == "open", STALENESS)
    with pytest.raises(CircuitBreakerError):
        b.call(lambda: 1)


def test_a_tls_client_maps_to_rediss():
    url = breakerbox._redis_url(redis.Redis(host="10.1.2.3", port=6380, ssl=True, password="pw"))
    assert url == "rediss://:pw@10.1.2.3:6380/0"
    assert breakerbox._redis_url(redis.Redis.from_url("rediss://127.0.0.1:6390/1")) == "rediss://127.0.0.1:6390/1"


def test_a_host_cannot_add_url_options():
    with pytest.raises(ValueError, match="redis_object"):
        CircuitRedisStorage("closed", redis.Redis(host="127.0.0.1/#insecure", ssl=True))


def test_a_tls_client_with_its_ca_file_shares_state():
    url, ns = env("BREAKERBOX_REDIS_TLS_URL"), namespace()
    errors = Errors()
    a = breaker(trusted(url), ns, errors, fail_max=2)
    # The same CA as PEM text, on a client built from host and port.
    host_port = url.removeprefix("rediss://").strip("/").rsplit(":", 1)
    with open(cert("ca.crt")) as f:
        b = breaker(redis.Redis(host=host_port[0], port=int(host_port[1]), ssl=True, ssl_ca_data=f.read()),
                    ns, errors, fail_max=2)
    assert_one_breaker(a, b)
    assert errors.messages == []
    # The state went over TLS to this server.
    assert trusted(url).hget(f"breakerbox:{{{ns}}}:state", "s") is not None


def test_a_client_certificate_is_presented_when_the_server_requires_it():
    url, ns = env("BREAKERBOX_REDIS_MTLS_URL"), namespace()
    client_cert = dict(ssl_certfile=cert("client.crt"), ssl_keyfile=cert("client.key"))
    errors = Errors()
    a = breaker(trusted(url, **client_cert), ns, errors, fail_max=2)
    b = breaker(trusted(url, **client_cert), ns, errors, fail_max=2)
    assert_one_breaker(a, b)
    assert errors.messages == []
    assert trusted(url, **client_cert).hget(f"breakerbox:{{{ns}}}:state", "s") is not None

    # Without one the server refuses the handshake: a storage fault, so
    # fail_closed rejects every call.
    anonymous = breaker(trusted(url), namespace(), policy="fail_closed")
    with pytest.raises(CircuitBreakerError):
        anonymous.call(lambda: 1)
    with_cert = breaker(trusted(url, **client_cert), namespace(), policy="fail_closed")
    assert with_cert.call(lambda: 1) == 1


def test_a_server_the_given_ca_did_not_sign_is_a_fault_never_plain_text():
    url, ns = env("BREAKERBOX_REDIS_TLS_URL"), namespace()
    # The rogue certificate as the only root: the server's (signed by the
    # test CA) does not verify.
    cb = breaker(redis.Redis.from_url(url, ssl_ca_certs=cert("rogue.crt")), ns, fail_max=2)
    with pytest.raises(ConnectionError):
        cb.call(fail)
    with pytest.raises(CircuitBreakerError):
        cb.call(fail)
    assert cb.current_state == "open", "decided locally (the default policy)"
    assert trusted(url).exists(f"breakerbox:{{{ns}}}:state") == 0, "nothing reached the server"

    # fail_closed: every call is rejected while the server is not verified.
    closed = breaker(redis.Redis.from_url(url, ssl_ca_certs=cert("rogue.crt")), namespace(), policy="fail_closed")
    with pytest.raises(CircuitBreakerError):
        closed.call(lambda: 1)
    assert breaker(trusted(url), namespace(), policy="fail_closed").call(lambda: 1) == 1


@pytest.mark.parametrize(
    "argument, value, error",
    [
        ("ssl_cert_reqs", "none", ValueError),
        ("ssl_cert_reqs", None, ValueError),
        ("ssl_cert_reqs", ssl.CERT_NONE, ValueError),
        ("ssl_check_hostname", False, ValueError),
        ("ssl_ca_path", "/etc/ssl/certs", ValueError),
        ("ssl_password", "secret", ValueError),
        ("ssl_ciphers", "ECDHE+AESGCM", ValueError),
        ("ssl_validate_ocsp", True, ValueError),
        ("ssl_min_version", ssl.TLSVersion.TLSv1_3, ValueError),
        ("ssl_include_verify_flags", [ssl.VERIFY_X509_STRICT], ValueError),
        ("ssl_ca_data", b"\x30\x82", ValueError),
        ("ssl_ca_certs", "/nonexistent/ca.pem", ValueError),
        ("ssl_keyfile", "/nonexistent/key.pem", ValueError),
    ],
)
def test_tls_settings_the_core_cannot_honour_are_refused_by_name(argument, value, error):
    client = redis.Redis(ssl=True, **{argument: value})
    with pytest.raises(error, match=argument):
        CircuitRedisStorage("closed", client)


def test_certificates_that_do_not_parse_are_refused_when_the_breaker_is_built(tmp_path):
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate")
    storage = CircuitRedisStorage("closed", redis.Redis(ssl=True, ssl_ca_certs=str(not_pem)))
    with pytest.raises(ValueError, match="root_certificates"):
        CircuitBreaker(state_storage=storage)


def test_a_credential_provider_is_refused():
    provider = redis.UsernamePasswordCredentialProvider("u", "p")
    with pytest.raises(TypeError, match="credential_provider"):
        CircuitRedisStorage("closed", redis.Redis(ssl=True, credential_provider=provider))

# A throwaway CA and certificates for TLS tests, and a check that
# redis-server is built with TLS. Sourced (after lib.sh), never run:
# `make_test_certs DIR` writes into DIR
#   ca.crt/ca.key          the test CA
#   server.crt/server.key  a server certificate for 127.0.0.1 the CA signs
#   client.crt/client.key  a client certificate the CA signs
#   rogue.crt/rogue.key    a self-signed server certificate for 127.0.0.1 the
#                          CA does not sign (not a CA: given as roots, it
#                          is its own trust anchor)
need_cmd openssl openssl
need_cmd timeout coreutils

make_test_certs() {
    local d="$1" ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    openssl req -x509 "${ec[@]}" -days 1 -subj "/CN=breakerbox test CA" \
        -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$d/ext"
    openssl req "${ec[@]}" -subj "/CN=127.0.0.1" -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
        -days 1 -extfile "$d/ext" -out "$d/server.crt" 2>/dev/null
    printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n' >"$d/client-ext"
    openssl req "${ec[@]}" -subj "/CN=breakerbox test client" -keyout "$d/client.key" \
        -out "$d/client.csr" 2>/dev/null
    openssl x509 -req -in "$d/client.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
        -days 1 -extfile "$d/client-ext" -out "$d/client.crt" 2>/dev/null
    openssl req -x509 "${ec[@]}" -days 1 -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" \
        -addext "basicConstraints=critical,CA:FALSE" -addext "extendedKeyUsage=serverAuth" \
        -keyout "$d/rogue.key" -out "$d/rogue.crt" 2>/dev/null
    chmod 644 "$d"/*.key
}

# Debian's redis-server is built with TLS: asked for a TLS port with no
# certificate it says so and exits (a build without TLS refuses the option).
require_tls_redis_server() {
    local probe
    probe="$(timeout 5 "$1" --port 0 --tls-port 1 --bind 127.0.0.1 2>&1 || true)"
    if ! grep -q "No tls-cert-file configured" <<<"$probe"; then
        echo "redis-server is not built with TLS: the TLS tests cannot run" >&2
        return 1
    fi
}

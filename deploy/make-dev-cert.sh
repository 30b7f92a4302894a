#!/bin/sh
# A self-signed certificate for trying the compose setup on https://localhost:8080.
# Browsers warn about it; in production put a real certificate (fullchain.pem) and
# its key (privkey.pem) in deploy/tls/ or point PARLEY_TLS_DIR at them.
set -eu
dir="${PARLEY_TLS_DIR:-$(dirname "$0")/tls}"
mkdir -p "$dir"
umask 077
openssl req -x509 -newkey rsa:3072 -nodes -days 30 -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$dir/privkey.pem" -out "$dir/fullchain.pem"
# The key stays 0600: nginx's master process, root in the container, loads it.
chmod 644 "$dir/fullchain.pem"
echo "Wrote $dir/fullchain.pem and $dir/privkey.pem (self-signed, 30 days)."

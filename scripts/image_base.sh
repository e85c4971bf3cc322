#!/usr/bin/env bash
# A stand-in for python:3.11-slim, built from Debian bookworm packages with mmdebstrap, for
# machines that cannot pull from Docker Hub. Like python:3.11-slim it has `python` and `pip`
# (installing system-wide), CA certificates and tzdata. It also trusts the CA bundle of the
# machine that builds it, so pip inside the image build works behind a TLS-intercepting proxy.
#
#   scripts/image_base.sh OUT.tar        write the root file system as a tarball (run as root)
#   scripts/image_base.sh --recipe-hash  a hash of what the tarball would hold (this script and
#                                        the host's CA bundle), to name and reuse a built base
set -euo pipefail

SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
PACKAGES=python3.11,python3-pip,ca-certificates,netbase,tzdata

host_ca_bundle() {
    local f
    for f in "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
        if [ -n "$f" ] && [ -s "$f" ]; then echo "$f"; return; fi
    done
    echo "image_base.sh: no CA bundle found on this machine (set SSL_CERT_FILE)" >&2
    exit 1
}

# Runs inside mmdebstrap (--customize-hook) on the finished root file system $2.
customize() {
    local ca=$1 root=$2 dir
    dir=$root/usr/local/share/ca-certificates/host
    mkdir -p "$dir"
    # update-ca-certificates wants one certificate per file
    awk -v dir="$dir" '/-----BEGIN CERTIFICATE-----/ { n++; f = sprintf("%s/host-%04d.crt", dir, n) }
                       f { print > f }
                       /-----END CERTIFICATE-----/ { close(f); f = "" }' "$ca"
    chroot "$root" update-ca-certificates --fresh >/dev/null 2>&1
    # As in python:3.11-slim: `python` and `pip` on PATH, and pip may install system-wide.
    rm -f "$root"/usr/lib/python3*/EXTERNALLY-MANAGED
    ln -sf /usr/bin/python3 "$root/usr/local/bin/python"
    ln -sf /usr/bin/pip3 "$root/usr/local/bin/pip"
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/log/*.log
}

case "${1:-}" in
    --recipe-hash)
        cat "$0" "$(host_ca_bundle)" | sha256sum | cut -d' ' -f1
        ;;
    --customize)
        customize "$2" "$3"
        ;;
    ""|-*)
        echo "usage: $0 OUT.tar | --recipe-hash" >&2
        exit 2
        ;;
    *)
        out=$1
        ca=$(host_ca_bundle)
        hooks=/usr/share/mmdebstrap/hooks/merged-usr  # merged /usr without the usrmerge package (and perl)
        extra=()
        [ -d "$hooks" ] && extra+=(--hook-dir="$hooks")
        mmdebstrap --variant=minbase --include="$PACKAGES" "${extra[@]}" \
            --aptopt='Acquire::Retries "3"' \
            --dpkgopt='path-exclude=/usr/share/man/*' \
            --dpkgopt='path-exclude=/usr/share/doc/*' \
            --dpkgopt='path-include=/usr/share/doc/*/copyright' \
            --dpkgopt='path-exclude=/usr/share/locale/*' \
            --dpkgopt='path-exclude=/usr/share/info/*' \
            --customize-hook="'$(readlink -f "$0")' --customize '$ca' \"\$1\"" \
            "$SUITE" "$out" \
            "deb $MIRROR $SUITE main" \
            "deb $MIRROR $SUITE-updates main" \
            "deb $SECURITY_MIRROR $SUITE-security main"
        ;;
esac

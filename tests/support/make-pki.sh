#!/bin/sh
# SPDX-License-Identifier: MIT
# make-pki.sh DIR HOST... - a test PKI made at run time with the openssl CLI: DIR/ca.pem
# (+ key), DIR/HOST.pem and DIR/HOST.key for every HOST (subjectAltName DNS:HOST, signed by
# the CA), and a rogue CA (DIR/rogue-ca.pem) that signed DIR/rogue-HOST.pem/.key for each.
# EC P-256 keys: fast to make. Usage errors exit 2.
set -eu
case "${1:-}" in
-h|--help) echo "usage: make-pki.sh DIR HOST..."; exit 0 ;;
'') echo "usage: make-pki.sh DIR HOST..." >&2; exit 2 ;;
esac
dir=$1; shift
mkdir -p "$dir"
cd "$dir"
ca() { # NAME
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=$1" -keyout "$1.key" -out "$1.pem" 2>/dev/null
}
leaf() { # CA HOST OUTPREFIX
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$2" \
        -keyout "$3.key" -out "$3.csr" 2>/dev/null
    printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$2" > "$3.ext"
    openssl x509 -req -in "$3.csr" -CA "$1.pem" -CAkey "$1.key" -CAcreateserial -days 2 \
        -extfile "$3.ext" -out "$3.pem" 2>/dev/null
    rm -f "$3.csr" "$3.ext"
}
ca ca
ca rogue-ca
for h in "$@"; do
    leaf ca "$h" "$h"
    leaf rogue-ca "$h" "rogue-$h"
done
chmod 600 ./*.key

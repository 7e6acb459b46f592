#!/bin/sh
# SPDX-License-Identifier: MIT
# check-symbols.sh LIBVRPC.so vrpc.h: the library exports exactly the functions the header
# marks VRPC_EXPORT (nothing of librpc, vchan or protobuf-c linked into it), all under the
# version node VRPC_0.1, and carries the SONAME libvrpc.so.0.
set -eu
lib=$1 header=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
nm -D --defined-only "$lib" | awk '$2 ~ /^[TtDdBbRrVvWwiu]$/ {print $3}' | sort > "$tmp/exported"
sed -n 's/^VRPC_EXPORT [^(]*[ *]\([a-z_0-9]*\)(.*/\1/p' "$header" | sort > "$tmp/declared"
test -s "$tmp/declared" || { echo "no VRPC_EXPORT declarations in $header"; exit 1; }
sed 's/@@VRPC_0\.1$//' "$tmp/exported" | sort > "$tmp/names"
if ! diff -u "$tmp/declared" "$tmp/names"; then
    echo "exported symbols differ from the header's VRPC_EXPORT list"
    exit 1
fi
if grep -v '@@VRPC_0\.1$' "$tmp/exported"; then
    echo "symbols above are not in version node VRPC_0.1"
    exit 1
fi
soname=$(objdump -p "$lib" | awk '$1 == "SONAME" {print $2}')
test "$soname" = libvrpc.so.0 || { echo "SONAME is '$soname'"; exit 1; }
echo "ok: $(wc -l < "$tmp/names") symbols, SONAME $soname"

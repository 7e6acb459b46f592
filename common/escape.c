/* SPDX-License-Identifier: MIT */
/*
 * escape.c - see escape.h. Used by every program for names, paths and arguments it did
 * not make itself (issue 12: vrpc-call echoed terminal escape sequences from its argv).
 */
#include "common/escape.h"

#include <stdio.h>
#include <string.h>

const char *vrpc_esc(const char *s, char *buf, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    if (!s)
        s = "(null)";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char tmp[4];
        size_t n;

        if (c == '\\') {
            memcpy(tmp, "\\\\", 2);
            n = 2;
        } else if (c >= 0x20 && c < 0x7f) {
            tmp[0] = (char)c;
            n = 1;
        } else {
            tmp[0] = '\\';
            tmp[1] = 'x';
            tmp[2] = hex[c >> 4];
            tmp[3] = hex[c & 15];
            n = 4;
        }
        if (size - o < n + 4) { /* keep room for "..." and the NUL */
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        memcpy(buf + o, tmp, n);
        o += n;
    }
    buf[o] = '\0';
    return buf;
}

char *vrpc_quote(char *buf, size_t size, const char *s, size_t len)
{
    size_t o = 0;
    size_t shown = len > 48 ? 45 : len;

    if (size < 16) {
        if (size)
            buf[0] = 0;
        return buf;
    }
    buf[o++] = '"';
    for (size_t i = 0; i < shown && o + 8 < size; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c >= 0x20 && c < 0x7f) {
            buf[o++] = (char)c;
        } else {
            o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
        }
    }
    if (shown < len && o + 5 < size) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '"';
    buf[o] = 0;
    return buf;
}

/* SPDX-License-Identifier: MIT */
/*
 * escape.h - showing text that came from outside (argv, environment, files, another
 * domain) in a message without letting it drive the terminal or forge log lines.
 */
#ifndef VRPC_COMMON_ESCAPE_H
#define VRPC_COMMON_ESCAPE_H

#include <stddef.h>

/* Room for an escaped name of up to 64 bytes (4 bytes each) with the ellipsis. */
#define VRPC_ESC_MAX 272

/*
 * Writes @s into @buf (@size > 4 bytes) with every byte outside printable ASCII written as
 * \xHH and a backslash as \\, so that the result holds no control or escape byte and reads
 * back unambiguously. Text that does not fit is cut and ends in "...". NULL shows as
 * "(null)". Returns @buf.
 */
const char *vrpc_esc(const char *s, char *buf, size_t size);

/* vrpc_esc() into a buffer that lives until the end of the enclosing block: for use as a
 * printf argument. */
#define VRPC_ESC(s) vrpc_esc((s), (char[VRPC_ESC_MAX]){0}, VRPC_ESC_MAX)

/*
 * vrpc_quote() - writes @len bytes of @s (untrusted; may hold NULs) into @buf (@size bytes) as
 * a double-quoted, printable string for a diagnostic: '"' and '\\' are escaped with a
 * backslash, other bytes outside printable ASCII as \xHH, and text over 48 bytes is shortened
 * to 45 and "...". A @buf under 16 bytes gets "". Returns @buf. Used for names in
 * FILE:LINE:COL messages, where the length (not a NUL) ends the text.
 */
char *vrpc_quote(char *buf, size_t size, const char *s, size_t len);

/* Enough room for vrpc_quote() of anything: 48 visible chars, escaped. */
#define VRPC_QUOTE_MAX (48 * 4 + 8)

#endif

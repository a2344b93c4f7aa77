/*
 * utf8.c -- UTF-8 validation for str values arriving from a peer.
 *
 * MessagePack says str holds UTF-8; remo checks it once, when a decoded
 * str becomes a value, so that code printing a remote string can trust
 * it.  Overlong forms, surrogates and code points above U+10FFFF are
 * refused (RFC 3629).
 */
#include "base/base.h"

bool remo__utf8_valid(const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		/* ASCII eight bytes at a time: most strings are all ASCII. */
		while (n - i >= 8) {
			uint64_t w;
			memcpy(&w, p + i, sizeof w);
			if (w & UINT64_C(0x8080808080808080))
				break;
			i += 8;
		}
		if (i >= n)
			break;
		uint8_t c = p[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t need;
		uint32_t cp, min;
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1; cp = c & 0x1f; min = 0x80;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2; cp = c & 0x0f; min = 0x800;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3; cp = c & 0x07; min = 0x10000;
		} else {
			return false;
		}
		if (n - i - 1 < need)
			return false;
		for (size_t k = 1; k <= need; k++) {
			uint8_t cc = p[i + k];
			if ((cc & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (cc & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += need + 1;
	}
	return true;
}

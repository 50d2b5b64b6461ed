/*
 * utf8: one code point as UTF-8, for the decoders that turn escapes into
 * text (JSON \u escapes in body views, XML character references in
 * documents). Invalid code points (surrogates, past U+10FFFF) are the
 * caller's to reject first; this only encodes.
 */
#ifndef DLPGATE_UTF8_H
#define DLPGATE_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Writes cp's UTF-8 to out; returns its length (1 to 4). */
size_t utf8_encode(uint32_t cp, uint8_t out[4]);

#endif

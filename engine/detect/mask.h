/*
 * mask: what is shown of a secret, and what replaces it in flight.
 *
 * Letters and digits are masked with '*' except the first keep_first and
 * the last keep_last of them; separators (spaces, dashes, dots...) stay,
 * so "4111 1111 1111 1111" becomes "4111 **** **** 1111" and keeps its
 * shape and length. At most half of a secret's letters and digits ever
 * show, so nothing short is shown nearly whole. Redaction uses the same rule in place: the length never
 * changes, which keeps Content-Length and streaming intact.
 */
#ifndef DLPGATE_MASK_H
#define DLPGATE_MASK_H

#include <stddef.h>
#include <stdint.h>

#define MASK_SAMPLE_MAX 48 /* a sample is never longer than this */

/* Writes a masked sample of s[0..n) into out (NUL-terminated, at most
 * MASK_SAMPLE_MAX + 1 bytes with the NUL); long secrets are shortened in
 * the middle with a length note. Returns out. */
char *mask_sample(char *out, const char *s, size_t n, uint8_t keep_first, uint8_t keep_last);
/* Masks s[0..n) in place with mask_char under the same rule. */
void mask_inplace(char *s, size_t n, uint8_t keep_first, uint8_t keep_last, char mask_char);

#endif

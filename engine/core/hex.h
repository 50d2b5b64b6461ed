/*
 * hex: the value of one hexadecimal digit, either case, or -1. One
 * definition for every decoder of outside input that reads %XX, \uXXXX
 * or <hex> (URL and JSON views, the coach form, PDF strings, JSON, the
 * policy's URL decoding, the key-reach parser).
 */
#ifndef DLPGATE_HEX_H
#define DLPGATE_HEX_H

static inline int hex_value(int c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

#endif

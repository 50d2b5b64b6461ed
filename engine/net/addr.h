/*
 * addr: the ADDR:PORT a person types on a command line (--listen,
 * --transparent, --metrics, the console's --listen), read one way for every
 * flag: an IPv4 address, an IPv6 address in brackets (or bare, where the
 * last colon is still the port's), or localhost, then a port 1..65535. No
 * name resolution: a listener's address is what the admin wrote.
 */
#ifndef DLPGATE_ADDR_H
#define DLPGATE_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* False with err "FLAG TEXT: what is wrong" (a usage error). */
bool addr_parse(const char *flag, const char *text, struct sockaddr_storage *ss, char *err, size_t errlen);
/* 127.0.0.0/8 or ::1. */
bool addr_is_loopback(const struct sockaddr_storage *ss);

#endif

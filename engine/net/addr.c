/* Command-line socket addresses; see addr.h. */
#include "net/addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

bool addr_parse(const char *flag, const char *text, struct sockaddr_storage *ss, char *err, size_t errlen)
{
	char host[64];
	const char *colon = strrchr(text, ':');
	size_t hl = colon ? (size_t)(colon - text) : 0;
	if (!colon || hl == 0 || hl >= sizeof host || !colon[1]) {
		snprintf(err, errlen, "%s %s: expected ADDR:PORT, e.g. 127.0.0.1:3128 or [::1]:3128", flag, text);
		return false;
	}
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (*end || port < 1 || port > 65535) {
		snprintf(err, errlen, "%s %s: port must be 1..65535", flag, text);
		return false;
	}
	memcpy(host, text, hl);
	host[hl] = '\0';
	if (!strcasecmp(host, "localhost"))
		snprintf(host, sizeof host, "127.0.0.1");
	const char *ip = host;
	if (host[0] == '[' && host[hl - 1] == ']') {
		host[hl - 1] = '\0';
		ip = host + 1;
	}
	memset(ss, 0, sizeof *ss);
	struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
	if (ip == host && inet_pton(AF_INET, ip, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)port);
		return true;
	}
	if (inet_pton(AF_INET6, ip, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
		return true;
	}
	snprintf(err, errlen, "%s %s: address must be an IPv4 address, [IPv6] or localhost", flag, text);
	return false;
}

bool addr_is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	return ss->ss_family == AF_INET6 && IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

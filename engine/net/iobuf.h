/*
 * iobuf: the fixed-size blocks all socket I/O goes through.
 *
 * A block carries its own uv_write_t, so handing a block to libuv for
 * writing needs no other allocation, and a spliced flow can pass the block a
 * read filled straight to the other socket. Blocks come from a per-worker
 * free list (no locks: a flow never leaves its worker). Reads are given a
 * block only when the socket is readable, and a block goes back as soon as
 * its bytes are consumed or written, so an idle connection holds none.
 */
#ifndef DLPGATE_IOBUF_H
#define DLPGATE_IOBUF_H

#include <stddef.h>
#include <uv.h>

#define IOBUF_CAP (64 * 1024 - 256)
#define IOBUF_FREE_MAX 32 /* blocks a worker keeps for reuse */

struct worker;

typedef struct iobuf {
	uv_write_t req;
	struct iobuf *next;
	struct worker *w;
	size_t len;
	char data[IOBUF_CAP];
} iobuf_t;

iobuf_t *iobuf_get(struct worker *w);
void iobuf_put(iobuf_t *b);

static inline iobuf_t *iobuf_of(char *data)
{
	return (iobuf_t *)(data - offsetof(iobuf_t, data));
}

#endif

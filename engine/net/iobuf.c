#include "net/iobuf.h"

#include "net/worker.h"

#include <stdlib.h>

iobuf_t *iobuf_get(struct worker *w)
{
	iobuf_t *b = w->free_blocks;
	if (b) {
		w->free_blocks = b->next;
		w->n_free_blocks--;
	} else {
		b = malloc(sizeof *b);
		if (!b)
			return NULL;
		b->w = w;
	}
	b->next = NULL;
	b->len = 0;
	return b;
}

void iobuf_put(iobuf_t *b)
{
	if (!b)
		return;
	struct worker *w = b->w;
	if (w->n_free_blocks < IOBUF_FREE_MAX && !w->stopping) {
		b->next = w->free_blocks;
		w->free_blocks = b;
		w->n_free_blocks++;
	} else {
		free(b);
	}
}

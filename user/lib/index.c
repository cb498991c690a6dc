// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Chained hash map from byte strings to pointers; see index.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "index.h"

struct ks_index_entry {
	struct ks_index_entry *next;
	uint64_t hash;
	void *value;
	size_t len;
	unsigned char key[];
};

/* FNV-1a: keys are short and not chosen by an attacker who could not
 * simply send more manifests. */
static uint64_t hash_of(const void *key, size_t len)
{
	const unsigned char *p = key;
	uint64_t h = 0xcbf29ce484222325ull;

	while (len--)
		h = (h ^ *p++) * 0x100000001b3ull;
	return h;
}

static struct ks_index_entry **slot_of(const struct ks_index *ix, const void *key, size_t len,
				       uint64_t hash)
{
	struct ks_index_entry **e = &ix->buckets[hash & (ix->nr_buckets - 1)];

	for (; *e; e = &(*e)->next)
		if ((*e)->hash == hash && (*e)->len == len && !memcmp((*e)->key, key, len))
			break;
	return e;
}

static int grow(struct ks_index *ix)
{
	size_t nr = ix->nr_buckets ? 2 * ix->nr_buckets : 64, i;
	struct ks_index_entry **b = calloc(nr, sizeof(*b)), *e, *next;

	if (!b)
		return -ENOMEM;
	for (i = 0; i < ix->nr_buckets; i++) {
		for (e = ix->buckets[i]; e; e = next) {
			next = e->next;
			e->next = b[e->hash & (nr - 1)];
			b[e->hash & (nr - 1)] = e;
		}
	}
	free(ix->buckets);
	ix->buckets = b;
	ix->nr_buckets = nr;
	return 0;
}

int ks_index_put(struct ks_index *ix, const void *key, size_t len, void *value)
{
	uint64_t hash = hash_of(key, len);
	struct ks_index_entry **slot, *e;

	if (ix->n >= ix->nr_buckets && grow(ix))
		return -ENOMEM;
	slot = slot_of(ix, key, len, hash);
	if (*slot) {
		(*slot)->value = value;
		return 0;
	}
	e = malloc(sizeof(*e) + len);
	if (!e)
		return -ENOMEM;
	e->next = NULL;
	e->hash = hash;
	e->value = value;
	e->len = len;
	memcpy(e->key, key, len);
	*slot = e;
	ix->n++;
	return 0;
}

void *ks_index_get(const struct ks_index *ix, const void *key, size_t len)
{
	struct ks_index_entry *e;

	if (!ix->nr_buckets)
		return NULL;
	e = *slot_of(ix, key, len, hash_of(key, len));
	return e ? e->value : NULL;
}

void *ks_index_del(struct ks_index *ix, const void *key, size_t len)
{
	struct ks_index_entry **slot, *e;
	void *value;

	if (!ix->nr_buckets)
		return NULL;
	slot = slot_of(ix, key, len, hash_of(key, len));
	e = *slot;
	if (!e)
		return NULL;
	*slot = e->next;
	value = e->value;
	free(e);
	ix->n--;
	return value;
}

void ks_index_destroy(struct ks_index *ix)
{
	struct ks_index_entry *e, *next;
	size_t i;

	for (i = 0; i < ix->nr_buckets; i++)
		for (e = ix->buckets[i]; e; e = next) {
			next = e->next;
			free(e);
		}
	free(ix->buckets);
	memset(ix, 0, sizeof(*ix));
}

int ks_index_foreach(const struct ks_index *ix,
		     int (*fn)(const void *key, size_t len, void *value, void *arg), void *arg)
{
	struct ks_index_entry *e, *next;
	size_t i;
	int ret;

	for (i = 0; i < ix->nr_buckets; i++)
		for (e = ix->buckets[i]; e; e = next) {
			next = e->next;
			ret = fn(e->key, e->len, e->value, arg);
			if (ret)
				return ret;
		}
	return 0;
}

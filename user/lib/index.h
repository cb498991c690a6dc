/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * A hash map from byte strings to pointers, so that lookups by shift name
 * or by frontend stay O(1) with tens of thousands of shifts.
 */
#ifndef KSHIFT_INDEX_H
#define KSHIFT_INDEX_H

#include <stddef.h>
#include <stdint.h>

struct ks_index_entry;

struct ks_index {
	struct ks_index_entry **buckets;
	size_t nr_buckets;
	size_t n;
};

/* Sets key to value, replacing what it had; 0 or -ENOMEM. */
int ks_index_put(struct ks_index *ix, const void *key, size_t len, void *value);
void *ks_index_get(const struct ks_index *ix, const void *key, size_t len);
/* Removes key; returns what it had, or NULL. */
void *ks_index_del(struct ks_index *ix, const void *key, size_t len);
void ks_index_destroy(struct ks_index *ix);
/* Calls fn for every entry, in no particular order, until it returns
 * nonzero (which is returned). fn may delete the entry it is given, and no
 * other. */
int ks_index_foreach(const struct ks_index *ix,
		     int (*fn)(const void *key, size_t len, void *value, void *arg), void *arg);

#endif /* KSHIFT_INDEX_H */

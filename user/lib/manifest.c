// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * TrafficShift manifests (YAML or JSON, one or more documents) into struct
 * ks_shift. libyaml loads each document as a node tree; we then walk the
 * schema field by field, so every value is checked before it is used and a
 * refusal names the line, the field path and the value.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <yaml.h>

#include "index.h"
#include "shift.h"

#define PATH_LEN  96 /* "spec.rules[12].sources[345]" and the like */
#define VALUE_MAX 64 /* longer values are cut in messages */
/* List items walked in one document, at most, unless the document has more
 * nodes than that: a bound on the work of a document whose aliases name one
 * list many times (libyaml shares an aliased node; our walk reads it each
 * time), which keeps the work linear in the input, while a plain document
 * of 100,000 endpoints still parses. */
#define MAX_ITEMS 65536

/*
 * Every duplicate check goes through a hash set (user/lib/index.h), never a
 * scan of what came before: a manifest of 100,000 endpoints, keys or shifts
 * must parse in linear time.
 */
struct ctx {
	yaml_document_t *doc;
	struct ks_shift *s;    /* the shift being built */
	struct ks_index names; /* "namespace/name" of every document so far */
	size_t items;	       /* list items walked in this document */
	size_t max_items;      /* and at most: MAX_ITEMS, or the document's nodes */
	void *list;	       /* the array parse_list is filling, for item fns that compare */
	struct ks_index *seen; /* its items so far, for item fns that refuse duplicates */
	char *err;
	size_t errlen;
};

/* Parses one list item into out; the item fns below share this shape. */
typedef int item_fn(struct ctx *c, yaml_node_t *n, const char *path, void *out);

static yaml_node_t *node(struct ctx *c, int id)
{
	return yaml_document_get_node(c->doc, id);
}

static const char *str(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

static const char *node_kind(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_MAPPING_NODE:
		return "a mapping";
	case YAML_SEQUENCE_NODE:
		return "a list";
	default:
		return "a string";
	}
}

/* Kubernetes reads a null value as an unset field, and so do we. */
static bool is_null(const yaml_node_t *n)
{
	const char *v;

	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	v = str(n);
	return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") ||
	       !strcmp(v, "NULL");
}

/* A value as it may appear in a one-line message: control characters
 * replaced (a quoted scalar can hold a newline), long ones cut on a UTF-8
 * character boundary. */
static void show(char *buf, size_t size, const char *v)
{
	size_t i, n = strlen(v);

	if (!n) {
		snprintf(buf, size, "\"\"");
		return;
	}
	if (n > VALUE_MAX) {
		n = VALUE_MAX;
		while (n && ((unsigned char)v[n] & 0xc0) == 0x80)
			n--;
	}
	for (i = 0; i < n && i + 4 < size; i++)
		buf[i] = (unsigned char)v[i] < 0x20 || v[i] == 0x7f ? '?' : v[i];
	strcpy(buf + i, i < strlen(v) ? "..." : "");
}

/*
 * The one way to refuse: writes "line N: path: value: reason" for node n
 * (the value only when n is a scalar, the path only when there is one) and
 * returns -EINVAL.
 */
__attribute__((format(printf, 4, 5))) static int fail(struct ctx *c, const yaml_node_t *n,
						      const char *path, const char *fmt, ...)
{
	char reason[256], value[VALUE_MAX + 8] = "";
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	if (n->type == YAML_SCALAR_NODE)
		show(value, sizeof(value), str(n));
	if (c->err && c->errlen)
		snprintf(c->err, c->errlen, "line %zu: %s%s%s%s%s", n->start_mark.line + 1, path,
			 *path ? ": " : "", value, *value ? ": " : "", reason);
	return -EINVAL;
}

/*
 * A plain decimal number: no sign, no leading zero, no 0x, 1_000 or 1e3,
 * which YAML 1.1, YAML 1.2 and JSON would each read differently.
 * -EINVAL: not such a number; -ERANGE: negative or over UINT64_MAX.
 */
static int parse_uint(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	bool neg = *s == '-';
	int ret = 0;

	s += neg;
	if (!*s || (s[0] == '0' && s[1]))
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		if (v > (UINT64_MAX - (*s - '0')) / 10)
			ret = -ERANGE;
		v = v * 10 + (*s - '0');
	}
	*out = v;
	return neg ? -ERANGE : ret;
}

/* DNS-1123 as Kubernetes checks it: a label is lowercase alphanumerics and
 * '-', alphanumeric at both ends, at most 63; a subdomain is labels joined
 * by '.', at most 253. */
static bool dns_ok(const char *s, bool subdomain)
{
	size_t len = strlen(s);
	const char *p;

	if (!len || len > (subdomain ? 253 : 63))
		return false;
	for (p = s; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9'))
			continue;
		if ((*p != '-' && !(*p == '.' && subdomain)) || p == s || !p[1] || p[-1] == '.' ||
		    p[1] == '.')
			return false;
	}
	return true;
}

/* The typed getters: each takes a value node and its path, and refuses
 * anything but its type. */

/* *out is set either way, which keeps gcc -O2 sure it is initialized */
static int scalar(struct ctx *c, yaml_node_t *n, const char *path, const char **out)
{
	*out = n->type == YAML_SCALAR_NODE ? str(n) : "";
	if (n->type != YAML_SCALAR_NODE)
		return fail(c, n, path, "must be a string, not %s", node_kind(n));
	return 0;
}

static int uint_of(struct ctx *c, yaml_node_t *n, const char *path, uint64_t min, uint64_t max,
		   uint64_t *out)
{
	int err;

	if (n->type != YAML_SCALAR_NODE)
		return fail(c, n, path, "must be an integer, not %s", node_kind(n));
	if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return fail(c, n, path, "must be an integer, not a quoted string");
	err = parse_uint(str(n), out);
	if (err == -EINVAL)
		return fail(c, n, path, "must be an integer");
	if (err || *out < min || *out > max)
		return fail(c, n, path, "must be %llu..%llu", (unsigned long long)min,
			    (unsigned long long)max);
	return 0;
}

/* A Kubernetes object name into out (KS_NAME_LEN bytes). */
static int name_of(struct ctx *c, yaml_node_t *n, const char *path, bool subdomain, char *out)
{
	const char *s;
	int err = scalar(c, n, path, &s);

	if (err)
		return err;
	if (!dns_ok(s, subdomain))
		return fail(c, n, path, "must be a DNS-1123 %s (lowercase letters, digits, '-'%s)",
			    subdomain ? "subdomain" : "label", subdomain ? ", '.'" : "");
	strcpy(out, s);
	return 0;
}

/* One of the NULL-terminated options; its index in *idx. */
static int choice(struct ctx *c, yaml_node_t *n, const char *path, const char *const *options,
		  int *idx)
{
	char want[128] = "";
	const char *s;
	int i, err = scalar(c, n, path, &s);

	if (err)
		return err;
	for (i = 0; options[i]; i++) {
		if (!strcmp(s, options[i])) {
			*idx = i;
			return 0;
		}
		snprintf(want + strlen(want), sizeof(want) - strlen(want), "%s%s", i ? " or " : "",
			 options[i]);
	}
	return fail(c, n, path, "must be %s", want);
}

/* Mappings of up to this many keys are checked for duplicates pair by pair,
 * which costs less than a hash set's allocations. */
#define SMALL_MAP 16

/*
 * Checks that n is a mapping whose keys are distinct strings out of known
 * (NULL-terminated; NULL: any key), so that a misspelt field is refused
 * rather than silently left at its default.
 */
static int check_map(struct ctx *c, yaml_node_t *n, const char *path, const char *const *known)
{
	struct ks_index keys = {};
	yaml_node_pair_t *a, *b;
	const char *const *k;
	bool small;
	int err = 0;

	if (n->type != YAML_MAPPING_NODE)
		return fail(c, n, path, "must be a mapping, not %s", node_kind(n));
	small = n->data.mapping.pairs.top - n->data.mapping.pairs.start <= SMALL_MAP;
	for (a = n->data.mapping.pairs.start; !err && a < n->data.mapping.pairs.top; a++) {
		yaml_node_t *key = node(c, a->key);
		size_t len;

		if (key->type != YAML_SCALAR_NODE) {
			err = fail(c, key, path, "field names must be strings");
			break;
		}
		for (k = known; k && *k && strcmp(*k, str(key)); k++)
			;
		if (k && !*k) {
			err = fail(c, key, path, "unknown field");
			break;
		}
		if (small) {
			for (b = n->data.mapping.pairs.start; b < a; b++)
				if (!strcmp(str(node(c, b->key)), str(key)))
					return fail(c, key, path, "field given twice");
			continue;
		}
		/* strlen, as field() compares: "a\0b" is "a" given twice */
		len = strlen(str(key));
		if (ks_index_get(&keys, str(key), len))
			err = fail(c, key, path, "field given twice");
		else if (ks_index_put(&keys, str(key), len, key))
			err = -ENOMEM;
	}
	ks_index_destroy(&keys);
	return err;
}

/* Paths are short; a cut one, marked "...", only shortens a message. */
static void path_cut(char *p, int len)
{
	if (len >= PATH_LEN)
		strcpy(p + PATH_LEN - 4, "...");
}

/* The value under key in mapping n (already through check_map), and its
 * path in p; NULL when the key is absent or null. */
static yaml_node_t *field(struct ctx *c, yaml_node_t *n, const char *path, const char *key, char *p)
{
	yaml_node_pair_t *pair;

	path_cut(p, snprintf(p, PATH_LEN, "%s%s%s", path, *path ? "." : "", key));
	for (pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top; pair++) {
		yaml_node_t *v = node(c, pair->value);

		if (!strcmp(str(node(c, pair->key)), key))
			return is_null(v) ? NULL : v;
	}
	return NULL;
}

static yaml_node_t *item(struct ctx *c, yaml_node_t *seq, const char *path, size_t i, char *p)
{
	path_cut(p, snprintf(p, PATH_LEN, "%s[%zu]", path, i));
	return node(c, seq->data.sequence.items.start[i]);
}

static int seq_len(struct ctx *c, yaml_node_t *n, const char *path, size_t min, size_t max,
		   size_t *len)
{
	if (n->type != YAML_SEQUENCE_NODE)
		return fail(c, n, path, "must be a list, not %s", node_kind(n));
	*len = n->data.sequence.items.top - n->data.sequence.items.start;
	if (*len < min)
		return fail(c, n, path, "must have at least %zu item%s", min, min > 1 ? "s" : "");
	if (*len > max)
		return fail(c, n, path, "has %zu items, at most %zu allowed", *len, max);
	c->items += *len;
	if (c->items > c->max_items)
		return fail(c, n, path, "more than %zu list items in one document", c->max_items);
	return 0;
}

/*
 * Parses list n (min items or more) with fn into a new array of size-byte
 * elements, refusing equal elements when unique: elements start zeroed, so
 * padding compares equal. *nr counts every element fn was given, so that
 * ks_shift_free also frees a partly parsed one. The array is returned even
 * on error (in *err), for the caller to hand to its shift.
 */
static void *parse_list(struct ctx *c, yaml_node_t *n, const char *path, size_t min, size_t size,
			bool unique, item_fn *fn, size_t *nr, int *err)
{
	struct ks_index seen = {};
	char p[PATH_LEN];
	size_t i, len;
	char *arr;

	*nr = 0;
	*err = seq_len(c, n, path, min, SIZE_MAX, &len);
	if (*err || !len)
		return NULL;
	arr = calloc(len, size);
	if (!arr) {
		*err = -ENOMEM;
		return NULL;
	}
	for (i = 0; i < len; i++) {
		yaml_node_t *it = item(c, n, path, i, p);

		*nr = i + 1;
		/* set for each item: fn may parse a list of its own */
		c->list = arr;
		c->seen = &seen;
		*err = fn(c, it, p, arr + i * size);
		if (!*err && unique) {
			if (ks_index_get(&seen, arr + i * size, size))
				*err = fail(c, it, p, "listed twice");
			else if (ks_index_put(&seen, arr + i * size, size, arr + i * size))
				*err = -ENOMEM;
		}
		if (*err)
			break;
	}
	ks_index_destroy(&seen);
	c->seen = NULL;
	return arr;
}

static int parse_address(struct ctx *c, yaml_node_t *n, const char *path, void *out)
{
	const char *s;
	int err = scalar(c, n, path, &s);

	if (!err && ks_ip_parse(s, out))
		err = fail(c, n, path, "not an IPv4 or IPv6 address");
	return err;
}

static int parse_port(struct ctx *c, yaml_node_t *n, const char *path, void *out)
{
	static const char *const keys[] = { "port", "protocol", NULL };
	static const char *const protocols[] = { "TCP", "UDP", NULL };
	struct ks_port *port = out;
	char p[PATH_LEN];
	yaml_node_t *v;
	uint64_t num;
	int proto = 0, err;

	err = check_map(c, n, path, keys);
	if (err)
		return err;
	v = field(c, n, path, "port", p);
	err = v ? uint_of(c, v, p, 1, 65535, &num) : fail(c, n, p, "required");
	if (err)
		return err;
	v = field(c, n, path, "protocol", p);
	err = v ? choice(c, v, p, protocols, &proto) : 0;
	port->port = num;
	port->proto = proto ? IPPROTO_UDP : IPPROTO_TCP;
	return err;
}

/* "198.18.2.2:8080", "[2001:2::2]:8080", or a bare address: port 0, which
 * means the frontend's port. */
static int endpoint_address(struct ctx *c, yaml_node_t *n, const char *path,
			    struct ks_endpoint_spec *ep)
{
	char buf[64], *host = buf, *port = NULL, *end;
	const char *s;
	uint64_t num;
	int err = scalar(c, n, path, &s);

	if (err)
		return err;
	if (strlen(s) >= sizeof(buf))
		goto bad;
	strcpy(buf, s);
	if (buf[0] == '[') {
		end = strchr(buf, ']');
		if (!end || end[1] != ':')
			goto bad;
		*end = '\0';
		host = buf + 1;
		port = end + 2;
	} else if ((end = strchr(buf, ':')) && !strchr(end + 1, ':')) {
		*end = '\0';
		port = end + 1;
	}
	if (ks_ip_parse(host, &ep->ip) || (host != buf && ep->ip.family != KS_FAMILY_V6))
		goto bad;
	if (port && (parse_uint(port, &num) || num < 1 || num > 65535))
		return fail(c, n, path, "port must be 1..65535");
	ep->port = port ? num : 0;
	return 0;
bad:
	return fail(c, n, path, "must be IP, IPv4:PORT or [IPv6]:PORT");
}

/* YAML 1.2's booleans, unquoted; YAML 1.1's yes/no/on/off are refused, since
 * parsers disagree on them. */
static int bool_of(struct ctx *c, yaml_node_t *n, const char *path, bool *out)
{
	static const char *const words[] = { "false", "False", "FALSE", "true", "True", "TRUE" };
	size_t i;

	if (n->type != YAML_SCALAR_NODE)
		return fail(c, n, path, "must be true or false, not %s", node_kind(n));
	if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return fail(c, n, path, "must be true or false, not a quoted string");
	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		if (!strcmp(str(n), words[i])) {
			*out = i >= 3;
			return 0;
		}
	}
	return fail(c, n, path, "must be true or false");
}

static bool same_endpoint(const struct ks_endpoint_spec *a, const struct ks_endpoint_spec *b)
{
	return a->ip.family == b->ip.family &&
	       !memcmp(&a->ip.addr, &b->ip.addr, sizeof(a->ip.addr)) && a->port == b->port &&
	       a->frontend_port == b->frontend_port && a->frontend_proto == b->frontend_proto;
}

/* An endpoint's identity (same_endpoint's fields) as a hash key, built on
 * zeroed memory since the index compares bytes. */
struct endpoint_id {
	struct ks_addr addr;
	uint16_t port, frontend_port;
	uint8_t family, frontend_proto;
};

static struct endpoint_id endpoint_id(const struct ks_endpoint_spec *ep)
{
	struct endpoint_id id;

	memset(&id, 0, sizeof(id));
	id.addr = ep->ip.addr;
	id.port = ep->port;
	id.frontend_port = ep->frontend_port;
	id.family = ep->ip.family;
	id.frontend_proto = ep->frontend_proto;
	return id;
}

/*
 * An endpoint: its address as a string ("198.18.2.2:8080"), or a mapping
 * {address: "198.18.2.2:8080", draining: true} for one that keeps its
 * connections and takes no new ones. The same address twice is refused
 * whatever its draining says, naming both items, since the two could not
 * both hold.
 */
static int parse_endpoint(struct ctx *c, yaml_node_t *n, const char *path, void *out)
{
	static const char *const keys[] = { "address", "draining", NULL };
	struct ks_endpoint_spec *ep = out, *first = c->list, *prev;
	struct endpoint_id id;
	char p[PATH_LEN];
	yaml_node_t *addr = n, *v;
	bool draining = false;
	int err;

	if (n->type == YAML_SEQUENCE_NODE)
		return fail(
			c, n, path,
			"must be an address or a mapping with address and draining, not a list");
	if (n->type == YAML_MAPPING_NODE) {
		err = check_map(c, n, path, keys);
		if (err)
			return err;
		addr = field(c, n, path, "address", p);
		err = addr ? endpoint_address(c, addr, p, ep) : fail(c, n, p, "required");
		if (err)
			return err;
		v = field(c, n, path, "draining", p);
		err = v ? bool_of(c, v, p, &draining) : 0;
	} else {
		err = endpoint_address(c, n, path, ep);
	}
	if (err)
		return err;
	ep->state = draining ? KS_EP_TERMINATING : KS_EP_READY;
	id = endpoint_id(ep);
	prev = ks_index_get(c->seen, &id, sizeof(id));
	if (prev)
		return fail(c, addr, path, "listed twice, as endpoints[%td] and endpoints[%td]%s",
			    prev - first, ep - first,
			    prev->state != ep->state ? ", draining in only one of them" : "");
	return ks_index_put(c->seen, &id, sizeof(id), ep);
}

/* "198.18.1.16/28", "2001:2:0:1::/64", or a bare address: one host. */
static int parse_prefix(struct ctx *c, yaml_node_t *n, const char *path, void *out)
{
	struct ks_prefix *pfx = out;
	char buf[64], *slash;
	struct ks_ip ip;
	const char *s;
	uint64_t len, max;
	bool host_bits = false;
	int i, err = scalar(c, n, path, &s);

	if (err)
		return err;
	if (strlen(s) >= sizeof(buf))
		return fail(c, n, path, "not an IPv4 or IPv6 prefix");
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	if (ks_ip_parse(buf, &ip))
		return fail(c, n, path, "not an IPv4 or IPv6 prefix");
	max = len = ip.family == KS_FAMILY_V4 ? 32 : 128;
	if (slash && (parse_uint(slash + 1, &len) || len > max))
		return fail(c, n, path, "prefix length must be 0..%llu", (unsigned long long)max);
	/* Masking silently would widen or move the rule; say what was meant. */
	for (i = 0; i < 16; i++) {
		int bits = (int)len - 8 * i;
		uint8_t mask = bits >= 8 ? 0xff : bits <= 0 ? 0 : 0xff << (8 - bits);

		host_bits |= ip.addr.bytes[i] & ~mask;
		ip.addr.bytes[i] &= mask;
	}
	if (host_bits) {
		char canon[INET6_ADDRSTRLEN];

		return fail(c, n, path, "host bits set, did you mean %s/%llu?",
			    ks_ip_str(&ip, canon, sizeof(canon)), (unsigned long long)len);
	}
	pfx->addr = ip.addr;
	pfx->family = ip.family;
	pfx->len = len;
	return 0;
}

/* The backend named under "backend" in mapping n, as an index. */
static int backend_ref(struct ctx *c, yaml_node_t *n, const char *path, int *idx)
{
	char p[PATH_LEN];
	yaml_node_t *v = field(c, n, path, "backend", p);
	const char *s;
	int err;

	if (!v)
		return fail(c, n, p, "required");
	err = scalar(c, v, p, &s);
	if (err)
		return err;
	*idx = ks_shift_backend(c->s, s);
	return *idx < 0 ? fail(c, v, p, "no such backend") : 0;
}

static int parse_rule(struct ctx *c, yaml_node_t *n, const char *path, void *out)
{
	static const char *const keys[] = { "sources", "backend", NULL };
	struct ks_rule_spec *rule = out;
	char p[PATH_LEN];
	yaml_node_t *v;
	int err;

	err = check_map(c, n, path, keys);
	if (err)
		return err;
	v = field(c, n, path, "sources", p);
	if (!v)
		return fail(c, n, p, "required");
	rule->sources = parse_list(c, v, p, 1, sizeof(*rule->sources), true, parse_prefix,
				   &rule->nr_sources, &err);
	return err ?: backend_ref(c, n, path, &rule->backend);
}

static int parse_backend(struct ctx *c, yaml_node_t *n, const char *path, struct ks_backend_spec *b)
{
	static const char *const keys[] = { "name", "service", "endpoints", "weight", NULL };
	char p[PATH_LEN];
	yaml_node_t *v;
	uint64_t weight = 1; /* Gateway API's default */
	int err;

	err = check_map(c, n, path, keys);
	if (err)
		return err;
	v = field(c, n, path, "name", p);
	err = v ? name_of(c, v, p, false, b->name) : fail(c, n, p, "required");
	if (err)
		return err;
	if (ks_shift_backend(c->s, b->name) < (int)(b - c->s->backends))
		return fail(c, v, p, "backend name given twice");
	v = field(c, n, path, "service", p);
	err = v ? name_of(c, v, p, false, b->service) : 0;
	if (err)
		return err;
	v = field(c, n, path, "weight", p);
	err = v ? uint_of(c, v, p, 0, KS_WEIGHT_MAX, &weight) : 0;
	if (err)
		return err;
	b->weight = weight;
	v = field(c, n, path, "endpoints", p);
	if (v)
		b->endpoints = parse_list(c, v, p, 0, sizeof(*b->endpoints), false, parse_endpoint,
					  &b->nr_endpoints, &err);
	if (err)
		return err;
	/* an empty list is an answer (a backend with no endpoint yet); no
	 * answer at all is more likely a forgotten field */
	if (!v && !*b->service)
		return fail(c, n, path, "needs a service or endpoints");
	return 0;
}

static int parse_frontend(struct ctx *c, yaml_node_t *n, const char *path, struct ks_shift *s)
{
	static const char *const keys[] = { "service", "addresses", "ports", NULL };
	char p[PATH_LEN];
	yaml_node_t *v;
	int err;

	err = check_map(c, n, path, keys);
	if (err)
		return err;
	v = field(c, n, path, "service", p);
	err = v ? name_of(c, v, p, false, s->frontend_service) : 0;
	if (err)
		return err;
	v = field(c, n, path, "addresses", p);
	if (v)
		s->addresses = parse_list(c, v, p, 0, sizeof(*s->addresses), true, parse_address,
					  &s->nr_addresses, &err);
	if (err)
		return err;
	if (!*s->frontend_service && !s->nr_addresses)
		return fail(c, n, path, "needs a service or addresses");
	/* without ports, the frontend Service's TCP and UDP ports (kube_model.c) */
	v = field(c, n, path, "ports", p);
	if (!v)
		return *s->frontend_service ? 0 : fail(c, n, p, "required without a service");
	s->ports = parse_list(c, v, p, 1, sizeof(*s->ports), true, parse_port, &s->nr_ports, &err);
	return err;
}

static int parse_mirror(struct ctx *c, yaml_node_t *n, const char *path, struct ks_shift *s)
{
	static const char *const keys[] = { "backend", "percent", NULL };
	char p[PATH_LEN];
	yaml_node_t *v;
	uint64_t percent = 100;
	int err;

	err = check_map(c, n, path, keys);
	if (err)
		return err;
	err = backend_ref(c, n, path, &s->mirror_backend);
	if (err)
		return err;
	v = field(c, n, path, "percent", p);
	err = v ? uint_of(c, v, p, 0, 100, &percent) : 0;
	s->mirror_percent = percent;
	return err;
}

static int parse_spec(struct ctx *c, yaml_node_t *n, struct ks_shift *s)
{
	static const char *const keys[] = { "frontend", "backends", "affinity",
					    "rules",	"mirror",   NULL };
	static const char *const affinities[] = { "connection", "client", NULL };
	const char *path = "spec";
	char p[PATH_LEN], q[PATH_LEN];
	yaml_node_t *v;
	size_t i, len;
	int affinity = KS_AFFINITY_CONNECTION, err;

	err = check_map(c, n, path, keys);
	if (err)
		return err;
	v = field(c, n, path, "frontend", p);
	err = v ? parse_frontend(c, v, p, s) : fail(c, n, p, "required");
	if (err)
		return err;
	/* backends is a fixed array, so not parse_list */
	v = field(c, n, path, "backends", p);
	err = v ? seq_len(c, v, p, 1, KS_MAX_BACKENDS, &len) : fail(c, n, p, "required");
	for (i = 0; !err && i < len; i++) {
		s->nr_backends = i + 1;
		err = parse_backend(c, item(c, v, p, i, q), q, &s->backends[i]);
	}
	if (err)
		return err;
	v = field(c, n, path, "affinity", p);
	err = v ? choice(c, v, p, affinities, &affinity) : 0;
	s->affinity = affinity;
	if (err)
		return err;
	v = field(c, n, path, "rules", p);
	if (v)
		s->rules = parse_list(c, v, p, 0, sizeof(*s->rules), false, parse_rule,
				      &s->nr_rules, &err);
	if (err)
		return err;
	v = field(c, n, path, "mirror", p);
	return v ? parse_mirror(c, v, p, s) : 0;
}

static int parse_metadata(struct ctx *c, yaml_node_t *n, struct ks_shift *s)
{
	const char *path = "metadata";
	char p[PATH_LEN], key[2 * KS_NAME_LEN];
	yaml_node_t *v, *name;
	uint64_t generation = 0;
	size_t len;
	int err;

	/* labels, annotations, uid, managedFields...: Kubernetes' business */
	err = check_map(c, n, path, NULL);
	if (err)
		return err;
	name = field(c, n, path, "name", p);
	err = name ? name_of(c, name, p, true, s->name) : fail(c, n, p, "required");
	if (err)
		return err;
	v = field(c, n, path, "namespace", p);
	err = v ? name_of(c, v, p, false, s->namespace) : 0;
	if (err)
		return err;
	len = snprintf(key, sizeof(key), "%s/%s", s->namespace, s->name);
	if (ks_index_get(&c->names, key, len))
		return fail(c, name, "metadata.name", "defined twice in namespace %s",
			    s->namespace);
	if (ks_index_put(&c->names, key, len, (void *)1)) /* arr moves: no pointer */
		return -ENOMEM;
	v = field(c, n, path, "generation", p);
	err = v ? uint_of(c, v, p, 0, INT64_MAX, &generation) : 0;
	s->generation = generation;
	return err;
}

static int parse_doc(struct ctx *c, yaml_node_t *root, struct ks_shift *s)
{
	static const char *const keys[] = {
		"apiVersion", "kind", "metadata", "spec", "status", NULL
	};
	static const char *const api_versions[] = { KS_API_VERSION, NULL };
	static const char *const kinds[] = { KS_KIND, NULL };
	char p[PATH_LEN];
	yaml_node_t *v;
	int idx, err;

	strcpy(s->namespace, "default");
	s->mirror_backend = -1;
	c->s = s;
	err = check_map(c, root, "", keys);
	if (err)
		return err;
	v = field(c, root, "", "apiVersion", p);
	err = v ? choice(c, v, p, api_versions, &idx) : fail(c, root, p, "required");
	if (err)
		return err;
	v = field(c, root, "", "kind", p);
	err = v ? choice(c, v, p, kinds, &idx) : fail(c, root, p, "required");
	if (err)
		return err;
	v = field(c, root, "", "metadata", p);
	err = v ? parse_metadata(c, v, s) : fail(c, root, p, "required");
	if (err)
		return err;
	/* status is written by kshift and ignored on input */
	v = field(c, root, "", "spec", p);
	return v ? parse_spec(c, v, s) : fail(c, root, p, "required");
}

/* The line of a syntax error: libyaml's reader (bad UTF-8, control
 * characters) gives a byte offset where the others give a mark. */
static size_t error_line(const yaml_parser_t *parser, const char *text, size_t len)
{
	size_t i, line = 1;

	if (parser->error != YAML_READER_ERROR)
		return parser->problem_mark.line + 1;
	for (i = 0; i < parser->problem_offset && i < len; i++)
		line += text[i] == '\n';
	return line;
}

int ks_manifest_parse(const char *text, size_t len, struct ks_shift **shifts, size_t *nr, char *err,
		      size_t errlen)
{
	struct ctx c = { .err = err, .errlen = errlen };
	struct ks_shift *arr = NULL, *bigger;
	yaml_parser_t parser;
	yaml_document_t doc;
	yaml_node_t *root;
	size_t n = 0, cap = 0;
	int ret = 0;

	*shifts = NULL;
	*nr = 0;
	if (err && errlen)
		err[0] = '\0';
	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	for (;;) {
		if (!yaml_parser_load(&parser, &doc)) {
			ret = parser.error == YAML_MEMORY_ERROR ? -ENOMEM : -EINVAL;
			if (err && errlen)
				snprintf(err, errlen, "line %zu: %s",
					 error_line(&parser, text, len),
					 parser.problem ?: "out of memory");
			break;
		}
		root = yaml_document_get_root_node(&doc);
		if (!root) { /* the end of the stream */
			yaml_document_delete(&doc);
			break;
		}
		if (!is_null(root)) {
			/* grown by half, not by one: 50,000 shifts of 4 KB each */
			bigger = n < cap ? arr : realloc(arr, (cap + cap / 2 + 4) * sizeof(*arr));
			if (bigger) {
				if (n == cap)
					cap += cap / 2 + 4;
				arr = bigger;
				memset(&arr[n], 0, sizeof(*arr));
				c.doc = &doc;
				c.items = 0;
				c.max_items = doc.nodes.top - doc.nodes.start;
				if (c.max_items < MAX_ITEMS)
					c.max_items = MAX_ITEMS;
				ret = parse_doc(&c, root, &arr[n++]);
			} else {
				ret = -ENOMEM;
			}
		}
		yaml_document_delete(&doc);
		if (ret)
			break;
	}
	yaml_parser_delete(&parser);
	ks_index_destroy(&c.names);
	if (ret) {
		ks_shifts_free(arr, n);
		return ret;
	}
	*shifts = arr;
	*nr = n;
	return 0;
}

/* n elements of size bytes, copied; NULL for none, or with *ok cleared. */
static void *dup_array(const void *src, size_t n, size_t size, bool *ok)
{
	void *dst;

	if (!n)
		return NULL;
	dst = calloc(n, size);
	if (!dst) {
		*ok = false;
		return NULL;
	}
	return memcpy(dst, src, n * size);
}

int ks_shift_copy(struct ks_shift *dst, const struct ks_shift *src)
{
	bool ok = true;
	size_t i;

	*dst = *src;
	dst->addresses = dup_array(src->addresses, src->nr_addresses, sizeof(*src->addresses), &ok);
	dst->ports = dup_array(src->ports, src->nr_ports, sizeof(*src->ports), &ok);
	for (i = 0; i < src->nr_backends; i++)
		dst->backends[i].endpoints =
			dup_array(src->backends[i].endpoints, src->backends[i].nr_endpoints,
				  sizeof(*src->backends[i].endpoints), &ok);
	dst->rules = dup_array(src->rules, src->nr_rules, sizeof(*src->rules), &ok);
	if (!dst->rules)
		dst->nr_rules = 0; /* so that ks_shift_free never frees src's sources */
	for (i = 0; i < dst->nr_rules; i++)
		dst->rules[i].sources = dup_array(src->rules[i].sources, src->rules[i].nr_sources,
						  sizeof(*src->rules[i].sources), &ok);
	if (ok)
		return 0;
	ks_shift_free(dst);
	return -ENOMEM;
}

static bool ip_equal(const struct ks_ip *a, const struct ks_ip *b)
{
	return a->family == b->family && !memcmp(&a->addr, &b->addr, sizeof(a->addr));
}

/* Field by field: padding need not match. */
bool ks_shift_equal(const struct ks_shift *a, const struct ks_shift *b)
{
	size_t i, j;

	if (strcmp(a->name, b->name) || strcmp(a->namespace, b->namespace) ||
	    strcmp(a->frontend_service, b->frontend_service) || a->generation != b->generation ||
	    a->nr_addresses != b->nr_addresses || a->nr_ports != b->nr_ports ||
	    a->nr_backends != b->nr_backends || a->affinity != b->affinity ||
	    a->nr_rules != b->nr_rules || a->mirror_backend != b->mirror_backend ||
	    (a->mirror_backend >= 0 && a->mirror_percent != b->mirror_percent))
		return false;
	for (i = 0; i < a->nr_addresses; i++)
		if (!ip_equal(&a->addresses[i], &b->addresses[i]))
			return false;
	for (i = 0; i < a->nr_ports; i++)
		if (a->ports[i].port != b->ports[i].port || a->ports[i].proto != b->ports[i].proto)
			return false;
	for (i = 0; i < a->nr_backends; i++) {
		const struct ks_backend_spec *x = &a->backends[i], *y = &b->backends[i];

		if (strcmp(x->name, y->name) || strcmp(x->service, y->service) ||
		    x->weight != y->weight || x->nr_endpoints != y->nr_endpoints)
			return false;
		for (j = 0; j < x->nr_endpoints; j++) {
			const struct ks_endpoint_spec *e = &x->endpoints[j], *f = &y->endpoints[j];

			if (!same_endpoint(e, f) || e->state != f->state)
				return false;
		}
	}
	for (i = 0; i < a->nr_rules; i++) {
		const struct ks_rule_spec *x = &a->rules[i], *y = &b->rules[i];

		if (x->backend != y->backend || x->nr_sources != y->nr_sources)
			return false;
		for (j = 0; j < x->nr_sources; j++)
			if (x->sources[j].family != y->sources[j].family ||
			    x->sources[j].len != y->sources[j].len ||
			    memcmp(&x->sources[j].addr, &y->sources[j].addr,
				   sizeof(x->sources[j].addr)))
				return false;
	}
	return true;
}

void ks_shift_free(struct ks_shift *shift)
{
	size_t i;

	if (!shift)
		return;
	free(shift->addresses);
	free(shift->ports);
	for (i = 0; i < shift->nr_backends; i++)
		free(shift->backends[i].endpoints);
	for (i = 0; i < shift->nr_rules; i++)
		free(shift->rules[i].sources);
	free(shift->rules);
	/* an empty shift, so that freeing it again is harmless */
	memset(shift, 0, sizeof(*shift));
	shift->mirror_backend = -1;
}

void ks_shifts_free(struct ks_shift *shifts, size_t nr)
{
	size_t i;

	for (i = 0; i < nr; i++)
		ks_shift_free(&shifts[i]);
	free(shifts);
}

int ks_shift_backend(const struct ks_shift *shift, const char *name)
{
	size_t i;

	for (i = 0; i < shift->nr_backends; i++)
		if (!strcmp(shift->backends[i].name, name))
			return i;
	return -1;
}

const char *ks_ip_str(const struct ks_ip *ip, char *buf, size_t len)
{
	int af = ip->family == KS_FAMILY_V4 ? AF_INET : AF_INET6;

	/* always a printable string, so callers can pass it straight to printf */
	if ((ip->family != KS_FAMILY_V4 && ip->family != KS_FAMILY_V6) ||
	    !inet_ntop(af, &ip->addr, buf, len))
		snprintf(buf, len, "?");
	return buf;
}

int ks_ip_parse(const char *s, struct ks_ip *ip)
{
	memset(ip, 0, sizeof(*ip));
	/* inet_pton refuses "1.2.3", "010.1.1.1", zones and spaces */
	if (inet_pton(AF_INET, s, &ip->addr.v4) == 1)
		ip->family = KS_FAMILY_V4;
	else if (inet_pton(AF_INET6, s, &ip->addr) == 1)
		ip->family = KS_FAMILY_V6;
	else
		return -EINVAL;
	return 0;
}

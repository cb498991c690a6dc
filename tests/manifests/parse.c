// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Runs TrafficShift manifests through kshiftd's own parser
 * (ks_manifest_parse), without a daemon: one line per file, "FILE: ok" or
 * "FILE: the parser's message". With -j, each accepted shift is printed
 * instead as one line of JSON, as `kshiftctl get -o json` writes it
 * (ks_shift_to_json). Exit status 0 when every file was accepted, 1 when
 * one was refused, 2 on usage or I/O errors.
 * Used by tests/e2e/test_manifests.sh to hold the CRD and the parser to
 * the same verdicts.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/shift.h"

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t cap = 0, n;

	if (!f)
		return NULL;
	*len = 0;
	do {
		if (*len + 4096 + 1 > cap) {
			char *bigger = realloc(buf, cap = 2 * cap + 4096 + 1);

			if (!bigger) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = bigger;
		}
		n = fread(buf + *len, 1, 4096, f);
		*len += n;
	} while (n);
	buf[*len] = '\0';
	fclose(f);
	return buf;
}

int main(int argc, char **argv)
{
	int i, first = 1, refused = 0, json = 0;

	if (argc > 1 && !strcmp(argv[1], "-j")) {
		json = 1;
		first = 2;
	}
	if (argc <= first) {
		fprintf(stderr, "usage: %s [-j] FILE...\n", argv[0]);
		return 2;
	}
	for (i = first; i < argc; i++) {
		char err[KS_ERR_LEN];
		struct ks_shift *shifts;
		size_t len, nr;
		char *text = slurp(argv[i], &len);

		if (!text) {
			fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
			return 2;
		}
		if (ks_manifest_parse(text, len, &shifts, &nr, err, sizeof(err))) {
			printf("%s: %s\n", argv[i], err);
			refused = 1;
		} else if (json) {
			size_t j;

			for (j = 0; j < nr; j++) {
				struct json_object *o = ks_shift_to_json(&shifts[j]);

				if (!o) {
					fprintf(stderr, "%s: out of memory\n", argv[i]);
					return 2;
				}
				printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
				json_object_put(o);
			}
			ks_shifts_free(shifts, nr);
		} else {
			printf("%s: ok (%zu shift%s)\n", argv[i], nr, nr == 1 ? "" : "s");
			ks_shifts_free(shifts, nr);
		}
		free(text);
	}
	return refused;
}

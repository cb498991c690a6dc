// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * libFuzzer harness of the manifest parser (user/lib/manifest.c), which
 * reads files anyone with write access to the config directory, or to the
 * control socket, hands it. Beyond "no crash, no leak, no undefined
 * behaviour" under ASan and UBSan, it holds the parser to two promises:
 * a refusal always says why (a non-empty message), and what it accepts,
 * written back as JSON (ks_shift_to_json, what `kshiftctl get -o json`
 * prints), parses again to the same shift.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/shift.h"

static void roundtrip(const struct ks_shift *s)
{
	struct json_object *o = ks_shift_to_json(s);
	const char *text;
	struct ks_shift *again;
	char err[KS_ERR_LEN];
	size_t nr;

	if (!o)
		return; /* ENOMEM */
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	if (ks_manifest_parse(text, strlen(text), &again, &nr, err, sizeof(err))) {
		fprintf(stderr, "JSON of an accepted shift refused: %s\n%s\n", err, text);
		abort();
	}
	if (nr != 1 || !ks_shift_equal(s, again)) {
		fprintf(stderr, "JSON of an accepted shift parses to another shift:\n%s\n", text);
		abort();
	}
	ks_shifts_free(again, nr);
	json_object_put(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ks_shift *shifts;
	char err[KS_ERR_LEN];
	size_t nr, i;
	int ret;

	ret = ks_manifest_parse((const char *)data, size, &shifts, &nr, err, sizeof(err));
	if (ret) {
		if (shifts || nr || !err[0] || !memchr(err, '\0', sizeof(err)))
			abort(); /* refused without a word, or half an answer */
		return 0;
	}
	for (i = 0; i < nr; i++)
		roundtrip(&shifts[i]);
	ks_shifts_free(shifts, nr);
	return 0;
}

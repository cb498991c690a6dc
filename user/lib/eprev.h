/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ks_eprev, the frontends each endpoint serves (include/kshift/abi.h), kept
 * by the dataplane (user/lib/dataplane.c) in step with the frontends and the
 * services they lead to.
 */
#ifndef KSHIFT_EPREV_H
#define KSHIFT_EPREV_H

#include "dataplane.h"

/*
 * Frontend fe (a key with port and protocol) now leads to eps[0..n): each
 * lists it, counted. Returns the flags fe needs from now on (enum
 * ks_frontend_flags), having added them to fe in ks_frontends if it is
 * there, and KS_FE_REPLY_AT_ONCE to the frontends that now share an
 * endpoint with it; or -ENOMEM, with nothing changed.
 */
int ks_eprev_link(struct ks_dp *dp, const struct ks_frontend_key *fe, const struct ks_endpoint *eps,
		  uint32_t n);
/* Undoes one ks_eprev_link(dp, fe, eps, n). */
void ks_eprev_unlink(struct ks_dp *dp, const struct ks_frontend_key *fe,
		     const struct ks_endpoint *eps, uint32_t n);
/* Frees the userspace copy; the map keeps its entries. */
void ks_eprev_destroy(struct ks_dp *dp);

#endif /* KSHIFT_EPREV_H */

/* SPDX-License-Identifier: MIT */
/*
 * select.h - private: ring geometry. libxenvchan's ring-size selection for servers, the
 * order checks a client applies to a control page, and where each ring and its grants live.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define VCHAN_ORDER_MIN 10u        /* 1 KiB ring at offset 1024 of the control page */
#define VCHAN_ORDER_INPAGE_MAX 11u /* 2 KiB ring at offset 2048 of the control page */
#define VCHAN_ORDER_EXT_MIN 12u    /* from here on: 2^(order-12) separately granted pages */
#define VCHAN_ORDER_MAX 20u        /* 1 MiB */
#define VCHAN_GRANTS_MAX 512u      /* 2 x 256 refs at order 20 */

typedef struct VchanGeom {
    unsigned left_order;  /* client -> server ring */
    unsigned right_order; /* server -> client ring */
} VchanGeom;

/*
 * Server: the orders libxenvchan picks for minimum sizes @read_min (left ring, which the
 * server reads) and @write_min (right ring). Returns 0 or -EINVAL (a size over 1 MiB).
 */
int vchan_geom_select(size_t read_min, size_t write_min, VchanGeom *geomp);

/*
 * Client: accept a control page's orders? Each must be 10..20 and the two may not both sit
 * at the same in-page offset. Accepts ocaml-vchan's (10, >=12) pairs.
 * Returns 0 or -EPROTO.
 */
int vchan_geom_check(unsigned left_order, unsigned right_order);

/* Pages granted for a ring of @order (0 for in-page rings). */
unsigned vchan_order_pages(unsigned order);

/* Offset of an in-page ring inside the control page (1024 or 2048); 0 for external rings. */
size_t vchan_order_page_offset(unsigned order);

/* Index in grants[] of the first ref of each ring (left first, then right). */
unsigned vchan_geom_left_grant0(const VchanGeom *g);
unsigned vchan_geom_right_grant0(const VchanGeom *g);
/* Total number of grants[] entries. */
unsigned vchan_geom_grants(const VchanGeom *g);

/* SPDX-License-Identifier: MIT */
/*
 * select.c - ring geometry: the server's choice of ring orders from minimum sizes, done the
 * way libxenvchan does it so that both libraries lay out identical pages; the client's
 * validation of orders read from a peer's page; and ring/grant placement.
 */
#include "select.h"

#include <errno.h>

#define SMALL_RING ((size_t)1 << VCHAN_ORDER_MIN)
#define LARGE_RING ((size_t)1 << VCHAN_ORDER_INPAGE_MAX)

/* Smallest external order (>= 12) holding @min bytes; @min <= 1 MiB was checked. */
static unsigned external_order(size_t min)
{
    unsigned order = VCHAN_ORDER_EXT_MIN;

    while (((size_t)1 << order) < min)
        order++;
    return order;
}

int vchan_geom_select(size_t read_min, size_t write_min, VchanGeom *geomp)
{
    size_t max = (size_t)1 << VCHAN_ORDER_MAX;
    VchanGeom g;

    if (read_min > max || write_min > max)
        return -EINVAL;

    /*
     * Both in the page when they fit (left at 1024 if it can, else right there); an in-page
     * ring next to an external one is always the 2 KiB slot; never 1 KiB next to external.
     */
    if (read_min <= SMALL_RING && write_min <= LARGE_RING)
        g = (VchanGeom){VCHAN_ORDER_MIN, VCHAN_ORDER_INPAGE_MAX};
    else if (read_min <= LARGE_RING && write_min <= SMALL_RING)
        g = (VchanGeom){VCHAN_ORDER_INPAGE_MAX, VCHAN_ORDER_MIN};
    else if (read_min <= LARGE_RING)
        g = (VchanGeom){VCHAN_ORDER_INPAGE_MAX, external_order(write_min)};
    else if (write_min <= LARGE_RING)
        g = (VchanGeom){external_order(read_min), VCHAN_ORDER_INPAGE_MAX};
    else
        g = (VchanGeom){external_order(read_min), external_order(write_min)};

    *geomp = g;
    return 0;
}

int vchan_geom_check(unsigned left_order, unsigned right_order)
{
    if (left_order < VCHAN_ORDER_MIN || left_order > VCHAN_ORDER_MAX)
        return -EPROTO;
    if (right_order < VCHAN_ORDER_MIN || right_order > VCHAN_ORDER_MAX)
        return -EPROTO;
    /* two in-page rings at the same offset would overlap */
    if (left_order == right_order && left_order < VCHAN_ORDER_EXT_MIN)
        return -EPROTO;
    return 0;
}

unsigned vchan_order_pages(unsigned order)
{
    if (order < VCHAN_ORDER_EXT_MIN)
        return 0;
    return 1u << (order - VCHAN_ORDER_EXT_MIN);
}

size_t vchan_order_page_offset(unsigned order)
{
    if (order >= VCHAN_ORDER_EXT_MIN)
        return 0;
    return (size_t)1 << order; /* 1024 for order 10, 2048 for order 11 */
}

unsigned vchan_geom_left_grant0(const VchanGeom *g)
{
    (void)g;
    return 0;
}

unsigned vchan_geom_right_grant0(const VchanGeom *g)
{
    return vchan_order_pages(g->left_order);
}

unsigned vchan_geom_grants(const VchanGeom *g)
{
    return vchan_order_pages(g->left_order) + vchan_order_pages(g->right_order);
}

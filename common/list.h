/* SPDX-License-Identifier: MIT */
/*
 * list.h - unlinking from the intrusive doubly linked lists (members prev and next, the
 * head's prev NULL) that hold clients, calls, peers, handlers and loop sources.
 */
#ifndef VRPC_COMMON_LIST_H
#define VRPC_COMMON_LIST_H

/* Unlink @n from the list at *@headp. A node that is not on it (prev NULL, not the head)
 * leaves the head alone. @n's own prev and next are left as they were. */
#define VRPC_LIST_UNLINK(headp, n)       \
    do {                                 \
        if ((n)->prev)                   \
            (n)->prev->next = (n)->next; \
        else if (*(headp) == (n))        \
            *(headp) = (n)->next;        \
        if ((n)->next)                   \
            (n)->next->prev = (n)->prev; \
    } while (0)

#endif

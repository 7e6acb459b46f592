/* SPDX-License-Identifier: MIT */
/*
 * test-sm.c - the per-stream state machine, exhaustively: for every state of either side,
 * every frame the peer could send (legal, moot or a violation) and every action the
 * application could ask for (allowed or which -errno), from a table written by hand from
 * docs/protocol.md. Includes the QSB-087 direction rule and the end-of-stream rules.
 */
#include <check.h>
#include <errno.h>
#include <string.h>

#include "stream-sm.h"
#include "leak.h"

/* RX events in table order. */
static const struct {
    RpcSmEvent ev;
    RpcChannel ch;
    const char *name;
} rx_events[] = {
    {RPC_SM_ACCEPT, RPC_CH_STDIN, "ACCEPT"},       {RPC_SM_REFUSE, RPC_CH_STDIN, "REFUSE"},
    {RPC_SM_EXIT, RPC_CH_STDIN, "EXIT"},           {RPC_SM_DATA, RPC_CH_STDIN, "DATA stdin"},
    {RPC_SM_DATA, RPC_CH_STDOUT, "DATA stdout"},   {RPC_SM_DATA, RPC_CH_STDERR, "DATA stderr"},
    {RPC_SM_EOF, RPC_CH_STDIN, "EOF stdin"},       {RPC_SM_EOF, RPC_CH_STDOUT, "EOF stdout"},
    {RPC_SM_EOF, RPC_CH_STDERR, "EOF stderr"},     {RPC_SM_RESET, RPC_CH_STDIN, "RESET"},
    {RPC_SM_RESET_ACK, RPC_CH_STDIN, "RESET ack"}, {RPC_SM_WINDOW, RPC_CH_STDIN, "WINDOW"},
};
#define NRX (sizeof(rx_events) / sizeof(rx_events[0]))

/* TX actions in table order. */
static const struct {
    RpcSmEvent ev;
    RpcChannel ch;
} tx_events[] = {
    {RPC_SM_ACCEPT, RPC_CH_STDOUT}, {RPC_SM_REFUSE, RPC_CH_STDOUT}, {RPC_SM_EXIT, RPC_CH_STDOUT},
    {RPC_SM_DATA, RPC_CH_STDIN},    {RPC_SM_DATA, RPC_CH_STDOUT},   {RPC_SM_DATA, RPC_CH_STDERR},
    {RPC_SM_EOF, RPC_CH_STDIN},     {RPC_SM_EOF, RPC_CH_STDOUT},    {RPC_SM_EOF, RPC_CH_STDERR},
    {RPC_SM_RESET, RPC_CH_STDIN},
};
#define NTX (sizeof(tx_events) / sizeof(tx_events[0]))

typedef struct StateCase {
    const char *name;
    void (*build)(RpcStreamSm *sm);
    const char *rx; /* O ok, D discard, V violation; one letter per rx_events entry */
    int tx[NTX];
} StateCase;

static void must_rx(RpcStreamSm *sm, RpcSmEvent ev, RpcChannel ch)
{
    const char *why;
    ck_assert_int_eq(rpc_stream_sm_rx(sm, ev, ch, &why), RPC_SM_OK);
}

static void must_tx(RpcStreamSm *sm, RpcSmEvent ev, RpcChannel ch)
{
    ck_assert_int_eq(rpc_stream_sm_tx(sm, ev, ch), 0);
}

static void c_pending(RpcStreamSm *sm)
{
    rpc_stream_sm_init(sm, true);
}
static void c_accepted(RpcStreamSm *sm)
{
    c_pending(sm), must_rx(sm, RPC_SM_ACCEPT, 0);
}
static void c_out_eof(RpcStreamSm *sm)
{
    c_accepted(sm);
    must_rx(sm, RPC_SM_EOF, RPC_CH_STDOUT);
}
static void c_stdin_closed(RpcStreamSm *sm)
{
    c_accepted(sm);
    must_tx(sm, RPC_SM_EOF, RPC_CH_STDIN);
}
static void c_reset_sent(RpcStreamSm *sm)
{
    c_accepted(sm);
    must_tx(sm, RPC_SM_RESET, 0);
}
static void c_done(RpcStreamSm *sm)
{
    c_accepted(sm);
    must_rx(sm, RPC_SM_EXIT, 0);
    ck_assert(sm->done);
}
static void h_pending(RpcStreamSm *sm)
{
    rpc_stream_sm_init(sm, false);
}
static void h_accepted(RpcStreamSm *sm)
{
    h_pending(sm), must_tx(sm, RPC_SM_ACCEPT, 0);
}
static void h_stdin_eof(RpcStreamSm *sm)
{
    h_accepted(sm);
    must_rx(sm, RPC_SM_EOF, RPC_CH_STDIN);
}
static void h_exited(RpcStreamSm *sm)
{
    h_accepted(sm);
    must_tx(sm, RPC_SM_EXIT, 0);
    ck_assert(!sm->done);
}
static void h_refused(RpcStreamSm *sm)
{
    h_pending(sm);
    must_tx(sm, RPC_SM_REFUSE, 0);
    ck_assert(!sm->done);
}
static void h_reset_sent(RpcStreamSm *sm)
{
    h_accepted(sm);
    must_tx(sm, RPC_SM_RESET, 0);
}
static void h_done(RpcStreamSm *sm)
{
    h_exited(sm);
    const char *why;
    ck_assert_int_eq(rpc_stream_sm_rx(sm, RPC_SM_EOF, RPC_CH_STDIN, &why), RPC_SM_DISCARD);
    ck_assert(sm->done);
}

#define NC (-ENOTCONN)
static const StateCase cases[] = {
    /*                                      ACC REF EXI Din Dout Derr Ein Eout Eerr RST ACK WIN */
    {"caller pending",
     c_pending,
     "OOVVVVVVVOVO",
     {-EPERM, -EPERM, -EPERM, 0, -EBADF, -EBADF, 0, -EBADF, -EBADF, 0}},
    {"caller accepted",
     c_accepted,
     "VVOVOOVOOOVO",
     {-EPERM, -EPERM, -EPERM, 0, -EBADF, -EBADF, 0, -EBADF, -EBADF, 0}},
    {"caller stdout at EOF",
     c_out_eof,
     "VVOVVOVVOOVO",
     {-EPERM, -EPERM, -EPERM, 0, -EBADF, -EBADF, 0, -EBADF, -EBADF, 0}},
    {"caller stdin closed",
     c_stdin_closed,
     "VVOVOOVOOOVO",
     {-EPERM, -EPERM, -EPERM, -EPIPE, -EBADF, -EBADF, -EALREADY, -EBADF, -EBADF, 0}},
    {"caller reset sent", c_reset_sent, "DDDVDDVDDOOD", {NC, NC, NC, NC, NC, NC, NC, NC, NC, NC}},
    {"caller done", c_done, "VVVVVVVVVVVV", {NC, NC, NC, NC, NC, NC, NC, NC, NC, NC}},
    {"handler pending",
     h_pending,
     "VVVOVVOVVOVO",
     {0, 0, -EPROTO, -EBADF, -EPROTO, -EPROTO, -EBADF, -EPROTO, -EPROTO, 0}},
    {"handler accepted",
     h_accepted,
     "VVVOVVOVVOVO",
     {-EALREADY, -EALREADY, 0, -EBADF, 0, 0, -EBADF, 0, 0, 0}},
    {"handler stdin at EOF",
     h_stdin_eof,
     "VVVVVVVVVOVO",
     {-EALREADY, -EALREADY, 0, -EBADF, 0, 0, -EBADF, 0, 0, 0}},
    {"handler exited",
     h_exited,
     "VVVDVVDVVOVO",
     {-EALREADY, -EALREADY, -EALREADY, -EBADF, -EPIPE, -EPIPE, -EBADF, -EALREADY, -EALREADY, 0}},
    {"handler refused",
     h_refused,
     "VVVDVVDVVOVO",
     {-EALREADY, -EALREADY, -EALREADY, -EBADF, -EPIPE, -EPIPE, -EBADF, -EALREADY, -EALREADY, 0}},
    {"handler reset sent", h_reset_sent, "VVVDVVDVVOOD", {NC, NC, NC, NC, NC, NC, NC, NC, NC, NC}},
    {"handler done", h_done, "VVVVVVVVVVVV", {NC, NC, NC, NC, NC, NC, NC, NC, NC, NC}},
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

START_TEST(every_rx_event_in_every_state)
{
    const StateCase *c = &cases[_i];
    ck_assert_uint_eq(strlen(c->rx), NRX);
    for (size_t e = 0; e < NRX; e++) {
        RpcStreamSm sm;
        const char *why = NULL;
        c->build(&sm);
        RpcSmResult r = rpc_stream_sm_rx(&sm, rx_events[e].ev, rx_events[e].ch, &why);
        char got = r == RPC_SM_OK ? 'O' : r == RPC_SM_DISCARD ? 'D' : 'V';
        ck_assert_msg(got == c->rx[e], "state '%s', frame %s: got %c, want %c", c->name,
                      rx_events[e].name, got, c->rx[e]);
        if (r == RPC_SM_VIOLATION)
            ck_assert_ptr_nonnull(why);
    }
}
END_TEST

START_TEST(every_tx_action_in_every_state)
{
    const StateCase *c = &cases[_i];
    for (size_t e = 0; e < NTX; e++) {
        RpcStreamSm sm;
        c->build(&sm);
        int r = rpc_stream_sm_tx(&sm, tx_events[e].ev, tx_events[e].ch);
        ck_assert_msg(r == c->tx[e], "state '%s', action %s/%d: got %d, want %d", c->name,
                      rpc_sm_event_name(tx_events[e].ev), tx_events[e].ch, r, c->tx[e]);
        /* can_send agrees with DATA. */
        if (tx_events[e].ev == RPC_SM_DATA) {
            RpcStreamSm again;
            c->build(&again);
            ck_assert(rpc_stream_sm_can_send(&again, tx_events[e].ch) == (c->tx[e] == 0));
        }
    }
}
END_TEST

/* QSB-087: a caller can never inject output, in any state; a handler never input. */
START_TEST(direction_never_ok)
{
    for (size_t i = 0; i < NCASES; i++) {
        RpcStreamSm sm;
        const char *why;
        cases[i].build(&sm);
        bool caller = sm.caller;
        for (int ch = 0; ch < 3; ch++) {
            bool wrong = caller ? ch == RPC_CH_STDIN : ch != RPC_CH_STDIN;
            if (!wrong)
                continue;
            RpcStreamSm a = sm, b = sm;
            ck_assert_int_eq(rpc_stream_sm_rx(&a, RPC_SM_DATA, (RpcChannel)ch, &why),
                             RPC_SM_VIOLATION);
            ck_assert_int_eq(rpc_stream_sm_rx(&b, RPC_SM_EOF, (RpcChannel)ch, &why),
                             RPC_SM_VIOLATION);
        }
        /* Out-of-range channels are violations too. */
        RpcStreamSm c = sm;
        ck_assert_int_eq(rpc_stream_sm_rx(&c, RPC_SM_DATA, (RpcChannel)7, &why), RPC_SM_VIOLATION);
        ck_assert_int_lt(rpc_stream_sm_tx(&c, RPC_SM_DATA, (RpcChannel)7), 0);
    }
}
END_TEST

START_TEST(completion_rules)
{
    RpcStreamSm sm;
    const char *why;

    /* Caller: EXIT ends the stream and implies EOF on stdout/stderr. */
    c_accepted(&sm);
    must_rx(&sm, RPC_SM_EXIT, 0);
    ck_assert(sm.done && sm.exit_done && sm.in_eof == 6);
    ck_assert(rpc_stream_sm_completed(&sm));
    /* Caller: REFUSE ends it too. */
    c_pending(&sm);
    must_rx(&sm, RPC_SM_REFUSE, 0);
    ck_assert(sm.done);
    ck_assert_int_eq(sm.answer, RPC_ANSWER_REFUSED);
    /* Caller: an answer crossing our RESET ends it (the handler will not acknowledge). */
    c_reset_sent(&sm);
    ck_assert_int_eq(rpc_stream_sm_rx(&sm, RPC_SM_EXIT, 0, &why), RPC_SM_DISCARD);
    ck_assert(sm.done);
    /* Handler: exit first, then stdin EOF -> done. */
    h_exited(&sm);
    ck_assert_int_eq(rpc_stream_sm_rx(&sm, RPC_SM_DATA, RPC_CH_STDIN, &why), RPC_SM_DISCARD);
    ck_assert(!sm.done);
    ck_assert_int_eq(rpc_stream_sm_rx(&sm, RPC_SM_EOF, RPC_CH_STDIN, &why), RPC_SM_DISCARD);
    ck_assert(sm.done);
    /* Handler: stdin EOF first, then exit -> done at once. */
    h_stdin_eof(&sm);
    must_tx(&sm, RPC_SM_EXIT, 0);
    ck_assert(sm.done);
    /* Handler: refusal after stdin EOF -> done at once. */
    h_pending(&sm);
    must_rx(&sm, RPC_SM_EOF, RPC_CH_STDIN);
    must_tx(&sm, RPC_SM_REFUSE, 0);
    ck_assert(sm.done);
    /* RESET from the peer ends either side; our ack is then the last word. */
    h_accepted(&sm);
    must_rx(&sm, RPC_SM_RESET, 0);
    ck_assert(sm.done);
    c_reset_sent(&sm);
    must_rx(&sm, RPC_SM_RESET_ACK, 0);
    ck_assert(sm.done);
    /* An ack without a reset is a violation. */
    h_accepted(&sm);
    ck_assert_int_eq(rpc_stream_sm_rx(&sm, RPC_SM_RESET_ACK, 0, &why), RPC_SM_VIOLATION);
    /* No second exit: a caller that got EXIT is done, so another EXIT is a violation. */
    c_done(&sm);
    ck_assert_int_eq(rpc_stream_sm_rx(&sm, RPC_SM_EXIT, 0, &why), RPC_SM_VIOLATION);
}
END_TEST

START_TEST(names)
{
    for (int e = 0; e < RPC_SM__COUNT; e++)
        ck_assert_str_ne(rpc_sm_event_name((RpcSmEvent)e), "invalid");
    ck_assert_str_eq(rpc_sm_event_name(RPC_SM__COUNT), "invalid");
    ck_assert_str_eq(rpc_answer_name(RPC_ANSWER_ACCEPTED), "accepted");
    ck_assert_str_eq(rpc_answer_name(RPC_ANSWER__COUNT), "invalid");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("librpc-sm");
    TCase *tc = tcase_create("sm");
    vt_leak_fixture(tc);
    tcase_add_loop_test(tc, every_rx_event_in_every_state, 0, (int)NCASES);
    tcase_add_loop_test(tc, every_tx_action_in_every_state, 0, (int)NCASES);
    tcase_add_test(tc, direction_never_ok);
    tcase_add_test(tc, completion_rules);
    tcase_add_test(tc, names);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

//! How many times a call allocates, both ends together: a client and a
//! server in this process over a real WebSocket on 127.0.0.1, AES-256-GCM,
//! a 32-byte argument echoed back. The count is deterministic enough to
//! bound (unlike a time): the test fails if it grows past the budget.
//!
//! One test in this binary on purpose: the allocator is global.

use std::alloc::System;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tests::{client, server, within};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The benchmark's method, in the same shape.
#[sockets::service]
pub trait Echo {
    /// Returns its argument.
    async fn echo(&self, payload: Vec<u8>) -> Vec<u8>;
}

struct Echoer;

impl Echo for Echoer {
    async fn echo(&self, payload: Vec<u8>) -> Vec<u8> {
        payload
    }
}

const WARM_UP: usize = 500;
const CALLS: usize = 2_000;

/// Allocations per call, both ends, from `Region` over `CALLS` sequential
/// calls after a warm-up (buffers grown, tables sized). The arguments are
/// made before counting: they are the application's.
///
/// Before this budget existed a call allocated 18 times: the encoded
/// arguments and result each needed a second block when they became
/// `Bytes`, each batch built two short-lived lists to seal, and each
/// received frame was copied out of the read buffer to be decrypted (and
/// promoted to a shared block when a `bin` was sliced from it).
#[tokio::test]
async fn a_call_allocates_a_bounded_number_of_times_on_both_ends() {
    let server = server()
        .serve(EchoServer::new(Echoer))
        .start()
        .await
        .unwrap();
    let client = within(client(server.local_addr()).connect()).await.unwrap();
    let echo = EchoClient::new(client.peer());

    for _ in 0..WARM_UP {
        assert_eq!(echo.echo(vec![7; 32]).await.unwrap().len(), 32);
    }
    let payloads: Vec<Vec<u8>> = (0..CALLS).map(|_| vec![7; 32]).collect();
    let mut answers = Vec::with_capacity(CALLS);
    let region = Region::new(GLOBAL);
    for payload in payloads {
        answers.push(echo.echo(payload).await.unwrap());
    }
    let change = region.change();
    assert!(answers.iter().all(|a| a == &[7; 32]));

    let per_call = (change.allocations + change.reallocations) as f64 / CALLS as f64;
    let bytes_per_call = change.bytes_allocated as f64 / CALLS as f64;
    println!(
        "per call, both ends: {per_call:.2} allocations ({} allocs, {} reallocs over {CALLS} \
         calls), {bytes_per_call:.0} bytes allocated",
        change.allocations, change.reallocations
    );
    // Measured: 4.00. Two are the caller's: the boxed call future `dyn
    // Caller` needs, and the `Vec<u8>` the reply decodes into (the
    // application's value). Two are the server's: the boxed handler `dyn
    // Service` needs, and the `Vec<u8>` argument (the application's value).
    // The encoded arguments and result (34 bytes each) are held inline in
    // their envelopes (`EncodedValue`; each cost one allocation until
    // 2026-12-06); the reply waits in the connection's table of calls, not
    // in a oneshot; the method name is looked up where it arrived. A
    // received reply's small value is copied out of its frame, so the read
    // buffer is not shared with a reply its caller has yet to take and is
    // reused in place (4.04 while the reply was a slice of the frame: a new
    // 4 KiB read buffer every ~50 messages).
    assert!(
        per_call <= BUDGET,
        "a call allocates {per_call:.2} times on both ends, past the budget of {BUDGET}"
    );
}

/// Allocations per call, both ends together: the 4 listed above, and room for
/// an occasional block (a table or a buffer growing under a loaded
/// machine's different timing), not for one more per call.
const BUDGET: f64 = 4.25;

//! Ring semantics with explicitly flagged chunks: order, GOP-cache join,
//! lag + resync, raw readers, close, wakeups.

use std::sync::Arc;

use bytes::Bytes;
use os_hub::{Buffer, Chunk, Closed, Hub, Item, TryRecvError};

fn chunk(i: u64) -> Bytes {
    Bytes::from(i.to_be_bytes().to_vec())
}

/// Write `n` chunks numbered from the buffer head; access points where `ap(seq)`.
fn fill(buf: &Buffer, n: u64, ap: impl Fn(u64) -> bool) {
    for _ in 0..n {
        let seq = buf.head();
        buf.write_raw(chunk(seq), ap(seq)).ok();
    }
}

fn expect_chunk(item: Result<Item, TryRecvError>) -> Chunk {
    match item {
        Ok(Item::Chunk(c)) => c,
        other => panic!("expected a chunk, got {other:?}"),
    }
}

#[test]
fn in_step_reader_gets_every_chunk_in_order() {
    let buf = Arc::new(Buffer::new("s", 16));
    fill(&buf, 1, |_| true);
    let mut r = buf.subscribe("r");
    fill(&buf, 10, |_| false);
    for seq in 0..11 {
        let c = expect_chunk(r.try_recv());
        assert_eq!(c.seq, seq);
        assert_eq!(c.data, chunk(seq));
        assert_eq!(c.resume, seq == 0);
    }
    assert_eq!(r.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn late_joiner_starts_at_latest_access_point() {
    let buf = Arc::new(Buffer::new("s", 32));
    fill(&buf, 9, |s| s % 6 == 0); // APs at 0 and 6
    let mut r = buf.subscribe("late");
    let first = expect_chunk(r.try_recv());
    assert_eq!(
        (first.seq, first.access_point, first.resume),
        (6, true, true)
    );
    assert_eq!(expect_chunk(r.try_recv()).seq, 7);
    assert_eq!(expect_chunk(r.try_recv()).seq, 8);
    assert_eq!(r.try_recv(), Err(TryRecvError::Empty));
    // No gap, no duplicate across the subscribe/write boundary.
    fill(&buf, 2, |_| false);
    assert_eq!(expect_chunk(r.try_recv()).seq, 9);
    assert_eq!(expect_chunk(r.try_recv()).seq, 10);
}

#[test]
fn next_ap_joiner_skips_the_gop_backlog() {
    let buf = Arc::new(Buffer::new("s", 32));
    fill(&buf, 9, |s| s % 6 == 0); // APs at 0 and 6: a backlog of 6..=8
    let mut r = buf.subscribe_next("srt");
    assert_eq!(r.try_recv(), Err(TryRecvError::Empty), "no backlog");
    fill(&buf, 3, |_| false);
    assert_eq!(
        r.try_recv(),
        Err(TryRecvError::Empty),
        "chunks before the next access point are skipped"
    );
    fill(&buf, 2, |s| s == 12);
    let first = expect_chunk(r.try_recv());
    assert_eq!(
        (first.seq, first.access_point, first.resume),
        (12, true, true)
    );
    assert_eq!(expect_chunk(r.try_recv()).seq, 13);
    assert_eq!(r.lost(), 0, "skipping to the first access point is no loss");
}

#[test]
fn joiner_waits_for_next_access_point_when_gop_left_the_ring() {
    let buf = Arc::new(Buffer::new("s", 4));
    fill(&buf, 10, |s| s == 0);
    let mut r = buf.subscribe("late");
    assert_eq!(r.try_recv(), Err(TryRecvError::Empty));
    fill(&buf, 2, |_| false);
    assert_eq!(
        r.try_recv(),
        Err(TryRecvError::Empty),
        "non-AP chunks skipped"
    );
    fill(&buf, 2, |_| true);
    let c = expect_chunk(r.try_recv());
    assert_eq!((c.seq, c.access_point), (12, true));
    assert_eq!(expect_chunk(r.try_recv()).seq, 13);
    assert_eq!(r.lost(), 0, "skipping before the first chunk is not a loss");
}

#[test]
fn lagging_reader_is_told_and_resumes_at_access_point() {
    let buf = Arc::new(Buffer::new("s", 8));
    fill(&buf, 1, |_| true);
    let mut r = buf.subscribe("slow");
    let mut fast = buf.subscribe("fast");
    assert_eq!(expect_chunk(r.try_recv()).seq, 0);
    for _ in 0..19 {
        fill(&buf, 1, |s| s % 5 == 0); // APs 5, 10, 15; ring ends at 12..20
        while fast.try_recv().is_ok() {}
    }
    // Ring holds 12..=19; the next AP in it is 15; the reader was at 1.
    assert_eq!(r.try_recv(), Ok(Item::Lagged { lost: 14 }));
    let c = expect_chunk(r.try_recv());
    assert_eq!((c.seq, c.access_point, c.resume), (15, true, true));
    for seq in 16..20 {
        assert_eq!(expect_chunk(r.try_recv()).seq, seq);
    }
    let st = buf.stats();
    assert_eq!((st.dropped, st.lag_events), (14, 1));
    let slow = st
        .readers
        .iter()
        .find(|x| x.name == "slow")
        .map(|x| (x.lost, x.lag_events));
    assert_eq!(slow, Some((14, 1)));
    let fast = st.readers.iter().find(|x| x.name == "fast").map(|x| x.lost);
    assert_eq!(fast, Some(0));
}

#[test]
fn lagging_reader_waits_for_access_point_not_yet_written() {
    let buf = Arc::new(Buffer::new("s", 4));
    fill(&buf, 1, |_| true);
    let mut r = buf.subscribe("slow");
    fill(&buf, 10, |_| false);
    assert_eq!(r.try_recv(), Err(TryRecvError::Empty));
    fill(&buf, 1, |_| true); // seq 11
    assert_eq!(r.try_recv(), Ok(Item::Lagged { lost: 11 }));
    assert_eq!(expect_chunk(r.try_recv()).seq, 11);
}

#[test]
fn raw_reader_resumes_at_oldest_chunk() {
    let buf = Arc::new(Buffer::new("s", 4));
    fill(&buf, 3, |_| false);
    let mut r = buf.subscribe_raw("health");
    fill(&buf, 10, |_| false); // 3..13, ring holds 9..13
    assert_eq!(r.try_recv(), Ok(Item::Lagged { lost: 6 }));
    let c = expect_chunk(r.try_recv());
    assert_eq!((c.seq, c.resume), (9, false));
}

#[test]
fn close_lets_readers_drain_then_ends_them() {
    let hub = Hub::new();
    let buf = hub.get_or_create("s", 8);
    fill(&buf, 1, |_| true);
    let mut r = buf.subscribe("r");
    fill(&buf, 2, |_| false);
    assert!(hub.remove("s").is_some());
    assert!(hub.get("s").is_none());
    assert_eq!(buf.write_raw(chunk(99), false), Err(Closed));
    for seq in 0..3 {
        assert_eq!(expect_chunk(r.try_recv()).seq, seq);
    }
    assert_eq!(r.try_recv(), Err(TryRecvError::Closed));
}

#[test]
fn discontinuity_flag_marks_next_chunk() {
    let buf = Arc::new(Buffer::new("s", 8));
    fill(&buf, 1, |_| true);
    let mut r = buf.subscribe("r");
    buf.discontinuity();
    fill(&buf, 2, |_| false);
    let flags: Vec<bool> = (0..3)
        .map(|_| expect_chunk(r.try_recv()).discontinuity)
        .collect();
    assert_eq!(flags, [false, true, false]);
}

#[test]
fn hub_registry_and_stats() {
    let hub = Hub::new();
    let a = hub.get_or_create("$raw$cam", 8);
    let again = hub.get_or_create("$raw$cam", 100);
    assert!(Arc::ptr_eq(&a, &again));
    assert_eq!(again.capacity(), 8);
    hub.get_or_create("cam", 4);
    assert_eq!(hub.ids(), ["$raw$cam", "cam"]);
    let r = a.subscribe("dvr");
    fill(&a, 3, |_| false);
    let st = hub.stats();
    assert_eq!(st.len(), 2);
    assert_eq!(st[0].chunks, 3);
    assert_eq!(st[0].bytes, 24);
    assert_eq!(st[0].readers.len(), 1);
    assert_eq!(st[0].readers[0].behind, 3);
    drop(r);
    assert!(hub.stats()[0].readers.is_empty(), "dropping unsubscribes");
}

#[tokio::test(start_paused = true)]
async fn recv_wakes_on_write_and_ends_on_close() {
    let buf = Arc::new(Buffer::new("s", 8));
    fill(&buf, 1, |_| true);
    let mut r = buf.subscribe("r");
    let task = tokio::spawn(async move {
        let mut seqs = Vec::new();
        while let Ok(item) = r.recv().await {
            if let Item::Chunk(c) = item {
                seqs.push(c.seq);
            }
        }
        seqs
    });
    for _ in 0..5 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        fill(&buf, 1, |_| false);
    }
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    buf.close();
    let seqs = task.await.ok();
    assert_eq!(seqs, Some(vec![0, 1, 2, 3, 4, 5]));
}

/// Many readers on one runtime: fast ones see every chunk in order, stalled
/// ones get `Lagged` and resume at an access point.
#[tokio::test(start_paused = true)]
async fn stress_fast_and_stalled_readers() {
    const CHUNKS: u64 = 2_000;
    const GOP: u64 = 50;
    let buf = Arc::new(Buffer::new("s", 128));
    fill(&buf, 1, |_| true);
    let mut fast = Vec::new();
    for i in 0..200 {
        let mut r = buf.subscribe(format!("fast{i}"));
        fast.push(tokio::spawn(async move {
            let mut next = 0;
            while let Ok(item) = r.recv().await {
                match item {
                    Item::Chunk(c) => {
                        assert_eq!(c.seq, next, "fast reader saw a gap");
                        next += 1;
                    }
                    Item::Lagged { .. } => panic!("fast reader lagged"),
                }
            }
            next
        }));
    }
    let mut stalled = Vec::new();
    for i in 0..20 {
        let mut r = buf.subscribe(format!("stalled{i}"));
        stalled.push(tokio::spawn(async move {
            let mut out = Vec::new();
            // Stalled until the writer is far ahead, then read everything.
            tokio::time::sleep(std::time::Duration::from_secs(1_000)).await;
            while let Ok(item) = r.recv().await {
                out.push(item);
                if out.len() == 2 {
                    break;
                }
            }
            out
        }));
    }
    for _ in 1..CHUNKS {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        fill(&buf, 1, |s| s % GOP == 0);
    }
    tokio::time::sleep(std::time::Duration::from_secs(2_000)).await;
    buf.close();
    for t in fast {
        assert_eq!(t.await.ok(), Some(CHUNKS));
    }
    for t in stalled {
        let got = t.await.ok().unwrap_or_default();
        // Ring holds 1872..2000; the first AP in it is 1900.
        assert_eq!(got.first(), Some(&Item::Lagged { lost: 1900 }));
        match got.get(1) {
            Some(Item::Chunk(c)) => assert!(c.access_point && c.seq == 1900),
            other => panic!("expected the AP chunk, got {other:?}"),
        }
    }
    let st = buf.stats();
    assert_eq!(st.lag_events, 20);
    assert_eq!(st.dropped, 20 * 1900);
}

/// A 1 KiB chunk carrying its sequence number.
fn big(seq: u64) -> Bytes {
    let mut v = vec![0u8; 1024];
    v[..8].copy_from_slice(&seq.to_be_bytes());
    Bytes::from(v)
}

fn fill_big(buf: &Buffer, n: u64, ap: impl Fn(u64) -> bool) {
    for _ in 0..n {
        let seq = buf.head();
        buf.write_raw(big(seq), ap(seq)).ok();
    }
}

#[test]
fn byte_budget_releases_old_chunks_but_keeps_the_gop_cache() {
    // Room for 1,000 chunks, budget 16 KiB: GOPs of 10 chunks (10 KiB).
    let buf = Arc::new(Buffer::with_max_bytes("s", 1000, 16 << 10));
    let mut slow = buf.subscribe_raw("slow");
    fill_big(&buf, 500, |seq| seq % 10 == 0);
    // Held: within the budget, or exactly the GOP cache when that is larger.
    assert!(buf.held_bytes() <= 16 << 10, "{}", buf.held_bytes());
    // A joiner still starts at the latest keyframe, with the whole GOP.
    let mut joiner = buf.subscribe("join");
    let first = expect_chunk(joiner.try_recv());
    assert_eq!((first.seq, first.access_point), (490, true));
    assert_eq!(&first.data[..8], &490u64.to_be_bytes());
    for seq in 491..500 {
        assert_eq!(expect_chunk(joiner.try_recv()).seq, seq);
    }
    // A raw reader left at 0 lost what was released, counted, and goes on
    // with the oldest chunk still held.
    match slow.try_recv() {
        Ok(Item::Lagged { lost }) => assert!((480..=490).contains(&lost), "lost {lost}"),
        other => panic!("expected Lagged, got {other:?}"),
    }
    let c = expect_chunk(slow.try_recv());
    assert!(c.seq >= 480 && c.seq <= 490, "resumed at {}", c.seq);
    assert_eq!(&c.data[..8], &c.seq.to_be_bytes());
    assert_eq!(buf.stats().dropped, c.seq);
}

#[test]
fn a_gop_longer_than_the_budget_is_kept_whole() {
    let buf = Arc::new(Buffer::with_max_bytes("s", 1000, 4 << 10));
    // One keyframe, then 40 KiB of the same GOP: ten times the budget.
    fill_big(&buf, 41, |seq| seq == 0);
    assert_eq!(buf.held_bytes(), 41 << 10);
    let mut joiner = buf.subscribe("join");
    for seq in 0..41 {
        assert_eq!(expect_chunk(joiner.try_recv()).seq, seq);
    }
    // The next keyframe lets the old GOP go.
    fill_big(&buf, 2, |seq| seq == 41);
    assert!(buf.held_bytes() <= 4 << 10, "{}", buf.held_bytes());
}

#[test]
fn an_in_step_reader_loses_nothing_to_the_budget() {
    let buf = Arc::new(Buffer::with_max_bytes("s", 1000, 8 << 10));
    fill_big(&buf, 1, |_| true);
    let mut r = buf.subscribe("r");
    for seq in 0..5000u64 {
        if seq > 0 {
            fill_big(&buf, 1, |s| s % 25 == 0);
        }
        let c = expect_chunk(r.try_recv());
        assert_eq!(c.seq, seq);
        assert_eq!(&c.data[..8], &seq.to_be_bytes());
    }
    assert_eq!(r.lost(), 0);
}

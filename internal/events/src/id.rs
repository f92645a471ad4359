//! Event ids: 128 bits as 32 lowercase hex digits.
//!
//! The high half is random per process (seeded from the standard library's
//! randomly keyed hasher) mixed with the clock; the low half is a bijective
//! mix of a process-wide counter, so ids never repeat within a process and
//! collide across processes only if both 64-bit halves do.

use std::hash::{BuildHasher, RandomState};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// SplitMix64 finaliser: a bijection on u64 with good avalanche.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

struct Seeds {
    hi: u64,
    lo: u64,
}

fn seeds() -> &'static Seeds {
    static SEEDS: OnceLock<Seeds> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Seeds {
            hi: RandomState::new().hash_one(nanos),
            lo: RandomState::new().hash_one(std::process::id()),
        }
    })
}

/// A new unique id.
pub fn new_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let s = seeds();
    let hi = mix(s.hi ^ n.rotate_left(32));
    let lo = mix(s.lo.wrapping_add(n));
    format!("{hi:016x}{lo:016x}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_hex() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| new_id()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids.iter().all(|i| i.len() == 32));
    }
}

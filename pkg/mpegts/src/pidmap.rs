//! [`PidMap`]: per-PID state, looked up on every packet.
//!
//! A hash map costs a SipHash per packet; a transport stream has a handful
//! of PIDs, so the state lives in a dense `Vec` and a 13-bit PID indexes a
//! table of positions (16 KiB). Lookups are two array reads whatever the
//! input, so a stream of garbage PIDs cannot slow it down.

/// No entry for this PID.
const ABSENT: u16 = u16::MAX;

/// Number of PIDs (13 bits).
const PIDS: usize = 1 << 13;

/// A map from PID to `T`.
#[derive(Debug, Clone)]
pub struct PidMap<T> {
    index: Box<[u16]>,
    entries: Vec<(u16, T)>,
}

impl<T> Default for PidMap<T> {
    fn default() -> Self {
        Self {
            index: vec![ABSENT; PIDS].into_boxed_slice(),
            entries: Vec::new(),
        }
    }
}

impl<T> PidMap<T> {
    pub fn new() -> Self {
        Self::default()
    }

    fn slot(pid: u16) -> usize {
        usize::from(pid) & (PIDS - 1)
    }

    /// The state of `pid`.
    pub fn get(&self, pid: u16) -> Option<&T> {
        let i = self.index[Self::slot(pid)];
        (i != ABSENT).then(|| &self.entries[usize::from(i)].1)
    }

    /// The state of `pid`, mutable.
    pub fn get_mut(&mut self, pid: u16) -> Option<&mut T> {
        let i = self.index[Self::slot(pid)];
        (i != ABSENT).then(|| &mut self.entries[usize::from(i)].1)
    }

    /// The state of `pid`, created with `make` when absent.
    pub fn get_or_insert_with(&mut self, pid: u16, make: impl FnOnce() -> T) -> &mut T {
        let slot = Self::slot(pid);
        let mut i = self.index[slot];
        if i == ABSENT {
            // At most 8192 entries: always below ABSENT.
            i = self.entries.len() as u16;
            self.entries.push((pid & (PIDS as u16 - 1), make()));
            self.index[slot] = i;
        }
        &mut self.entries[usize::from(i)].1
    }

    /// Set the state of `pid`; returns the previous one.
    pub fn insert(&mut self, pid: u16, value: T) -> Option<T> {
        match self.get_mut(pid) {
            Some(v) => Some(std::mem::replace(v, value)),
            None => {
                self.get_or_insert_with(pid, || value);
                None
            }
        }
    }

    /// Every state, in insertion order.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.entries.iter_mut().map(|(_, v)| v)
    }

    /// Every (PID, state), in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (u16, &T)> {
        self.entries.iter().map(|(p, v)| (*p, v))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forget every PID.
    pub fn clear(&mut self) {
        for (pid, _) in self.entries.drain(..) {
            self.index[usize::from(pid)] = ABSENT;
        }
    }
}

impl<T: Default> PidMap<T> {
    /// The state of `pid`, created with `T::default()` when absent.
    pub fn entry(&mut self, pid: u16) -> &mut T {
        self.get_or_insert_with(pid, T::default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_like_a_map_over_every_pid() {
        let mut m: PidMap<u32> = PidMap::new();
        assert_eq!(m.get(0x100), None);
        assert_eq!(m.insert(0x100, 1), None);
        assert_eq!(m.insert(0x100, 2), Some(1));
        *m.entry(0x1FFF) += 5;
        *m.entry(0) += 1;
        assert_eq!(
            (m.get(0x100), m.get(0x1FFF), m.get(0)),
            (Some(&2), Some(&5), Some(&1))
        );
        // Bits above the 13 PID bits are ignored, as in a packet header.
        assert_eq!(m.get(0x2100), Some(&2));
        for v in m.values_mut() {
            *v *= 10;
        }
        let all: Vec<_> = m.iter().collect();
        assert_eq!(all, vec![(0x100, &20), (0x1FFF, &50), (0, &10)]);
        m.clear();
        assert!(m.is_empty() && m.get(0x100).is_none());
        // Every PID at once.
        for pid in 0..8192u16 {
            m.insert(pid, u32::from(pid));
        }
        assert_eq!(m.len(), 8192);
        assert_eq!(m.get(4242), Some(&4242));
    }
}

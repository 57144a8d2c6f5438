//! A fixed-size bitmap of taken offsets (upstream's allocator.AllocationBitmap): 8 KB for a
//! /16 of service IPs, 346 bytes for the default NodePort range.

use rand::Rng;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bitmap {
    size: usize,
    bits: Vec<u8>,
}

impl Bitmap {
    pub fn new(size: usize) -> Self {
        Bitmap { size, bits: vec![0; size.div_ceil(8)] }
    }

    /// A bitmap from stored bytes; missing bytes are free, bits past `size` are dropped.
    pub fn from_bytes(size: usize, data: &[u8]) -> Self {
        let mut b = Bitmap::new(size);
        let n = b.bits.len().min(data.len());
        b.bits[..n].copy_from_slice(&data[..n]);
        if size % 8 != 0 {
            if let Some(last) = b.bits.last_mut() {
                *last &= (1u8 << (size % 8)) - 1;
            }
        }
        b
    }

    pub fn size(&self) -> usize {
        self.size
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bits
    }

    pub fn has(&self, i: usize) -> bool {
        i < self.size && self.bits[i / 8] & (1 << (i % 8)) != 0
    }

    /// Takes `i`; false when it was taken already (or is out of the bitmap).
    pub fn set(&mut self, i: usize) -> bool {
        if i >= self.size || self.has(i) {
            return false;
        }
        self.bits[i / 8] |= 1 << (i % 8);
        true
    }

    /// Frees `i`; false when it was free.
    pub fn clear(&mut self, i: usize) -> bool {
        if !self.has(i) {
            return false;
        }
        self.bits[i / 8] &= !(1 << (i % 8));
        true
    }

    pub fn count(&self) -> usize {
        self.bits.iter().map(|b| b.count_ones() as usize).sum()
    }

    /// A free offset at or after `start`, wrapping around; None when full.
    pub fn free_from(&self, start: usize) -> Option<usize> {
        if self.size == 0 {
            return None;
        }
        let start = start % self.size;
        (start..self.size).chain(0..start).find(|&i| !self.has(i))
    }

    /// A free offset, as upstream's random scan: dynamic allocations start at a random
    /// point of the upper band so statically requested (low) values rarely collide.
    pub fn free_random(&self, reserved_low: usize) -> Option<usize> {
        if self.size == 0 {
            return None;
        }
        let low = reserved_low.min(self.size.saturating_sub(1));
        let start = rand::rng().random_range(low..self.size);
        // The upper band first, then the reserved lower band as upstream's fallback.
        (start..self.size).chain(low..start).chain(0..low).find(|&i| !self.has(i))
    }

    /// Every taken offset.
    pub fn taken(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.size).filter(|&i| self.has(i))
    }
}

/// Upstream's calculateRangeOffset: the lower band kept for static requests,
/// min(max(16, size/16), 256).
pub fn static_band(size: usize) -> usize {
    (size / 16).clamp(16, 256).min(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_clear_and_count() {
        let mut b = Bitmap::new(10);
        assert!(b.set(3));
        assert!(!b.set(3), "taken twice");
        assert!(!b.set(10), "out of the bitmap");
        assert!(b.has(3) && !b.has(4));
        assert_eq!(b.count(), 1);
        assert!(b.clear(3));
        assert!(!b.clear(3));
        assert_eq!(b.count(), 0);
    }

    #[test]
    fn free_offsets_wrap_and_run_out() {
        let mut b = Bitmap::new(4);
        for i in [1, 2, 3] {
            b.set(i);
        }
        assert_eq!(b.free_from(2), Some(0));
        assert_eq!(b.free_random(1), Some(0));
        b.set(0);
        assert_eq!(b.free_from(0), None);
        assert_eq!(b.free_random(0), None);
    }

    #[test]
    fn random_choices_are_free_and_distinct() {
        let mut b = Bitmap::new(300);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..300 {
            let i = b.free_random(static_band(300)).expect("room left");
            assert!(b.set(i));
            assert!(seen.insert(i));
        }
        assert_eq!(b.free_random(16), None);
    }

    #[test]
    fn bytes_round_trip_and_trailing_bits_are_dropped() {
        let mut b = Bitmap::new(12);
        b.set(0);
        b.set(11);
        let c = Bitmap::from_bytes(12, b.bytes());
        assert_eq!(b, c);
        let d = Bitmap::from_bytes(12, &[0xff, 0xff, 0xff]);
        assert_eq!(d.count(), 12);
        assert_eq!(d.bytes().len(), 2);
    }

    #[test]
    fn a_slash_16_is_8_kib() {
        assert_eq!(Bitmap::new(65534).bytes().len(), 8192);
        assert_eq!(static_band(65534), 256);
        assert_eq!(static_band(2768), 173);
        assert_eq!(static_band(100), 16);
    }
}

//! A tiny deterministic PRNG (xorshift64*) for property-style tests; no external crates.

/// xorshift64* generator; the same seed always yields the same sequence.
pub(crate) struct Rng(u64);

impl Rng {
    /// Seeds the generator (a zero seed is replaced, xorshift would stay at zero).
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(if seed == 0 { 0x9e37_79b9_7f4a_7c15 } else { seed })
    }

    /// Next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-enough value in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: usize, hi: usize) -> usize {
        let span = (hi - lo) as u64 + 1;
        lo + (self.next_u64() % span) as usize
    }

    /// `len` random bytes.
    pub(crate) fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }

    /// Splits `data` into random chunks of 1..=`max` bytes.
    pub(crate) fn chunks<'a>(&mut self, data: &'a [u8], max: usize) -> Vec<&'a [u8]> {
        let mut out = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let n = self.range(1, max.min(rest.len()));
            let (a, b) = rest.split_at(n);
            out.push(a);
            rest = b;
        }
        out
    }
}

//! The accept loop's back-off: when `accept` fails (usually: out of file descriptors), the
//! loop waits before retrying instead of spinning, longer each time it fails in a row, and
//! starts over after an accept succeeds.

use std::time::Duration;

/// Exponential back-off for a failing accept: 10 ms doubling up to 1 s.
#[derive(Default)]
pub(super) struct Backoff(u32);

impl Backoff {
    pub(super) fn next(&mut self) -> Duration {
        let delay = Duration::from_millis(10) * 2u32.pow(self.0.min(7));
        self.0 = self.0.saturating_add(1);
        delay.min(Duration::from_secs(1))
    }

    pub(super) fn reset(&mut self) {
        self.0 = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let mut b = Backoff::default();
        assert_eq!(b.next(), Duration::from_millis(10));
        assert_eq!(b.next(), Duration::from_millis(20));
        for _ in 0..20 {
            b.next();
        }
        assert_eq!(b.next(), Duration::from_secs(1));
        b.reset();
        assert_eq!(b.next(), Duration::from_millis(10));
    }
}

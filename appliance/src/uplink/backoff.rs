//! Reconnect delays: exponential (1 s doubling to 60 s by default) with random jitter, so that
//! many appliances cut off together do not come back in lockstep. Sans-IO: the caller passes
//! the random source and sleeps.

use std::time::Duration;

use rand::Rng;

/// Largest share of a step removed at random: delays fall in `[0.8 × step, step]`, so the
/// maximum is never exceeded.
const JITTER: f64 = 0.2;

/// The delay sequence of one uplink.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    step: Duration,
}

impl Backoff {
    /// Starts at `initial`, doubles up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        let initial = initial.min(max);
        Backoff {
            initial,
            max,
            step: initial,
        }
    }

    /// The delay before the next attempt; the step doubles for the one after.
    pub fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        let cut = rng.random_range(0.0..=JITTER);
        let delay = self.step.mul_f64(1.0 - cut);
        self.step = (self.step * 2).min(self.max);
        delay
    }

    /// Back to `initial`, after a successful session.
    pub fn reset(&mut self) {
        self.step = self.initial;
    }

    /// The step the next delay is drawn from.
    pub fn step(&self) -> Duration {
        self.step
    }
}

#[cfg(test)]
mod test {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn doubles_to_the_maximum_with_jitter_below_the_step() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let steps = [1, 2, 4, 8, 16, 32, 60, 60, 60];
        for s in steps {
            let step = Duration::from_secs(s);
            assert_eq!(b.step(), step);
            let d = b.next_delay(&mut rng);
            assert!(
                d <= step && d >= step.mul_f64(0.8),
                "{d:?} for step {step:?}"
            );
        }
        b.reset();
        assert_eq!(b.step(), Duration::from_secs(1));
    }

    #[test]
    fn jitter_spreads_delays() {
        let mut rng = StdRng::seed_from_u64(1);
        let delays: Vec<Duration> = (0..20)
            .map(|_| {
                Backoff::new(Duration::from_secs(60), Duration::from_secs(60)).next_delay(&mut rng)
            })
            .collect();
        let distinct: std::collections::BTreeSet<_> = delays.iter().collect();
        assert!(distinct.len() > 10, "{delays:?}");
    }
}

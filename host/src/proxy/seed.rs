//! The numbers an experiment draws per request, all derived from its seed
//! and the request's sequence number (splitmix64 mixing), one independent
//! stream per use, so the same seed replays the same experiment.

/// The plugin's `random` for a request.
pub const STREAM_PLUGIN: u64 = 0;
/// The blast-radius sample.
pub const STREAM_BLAST_RADIUS: u64 = 1;
/// Positions (and masks) of corrupted body bytes.
pub const STREAM_CORRUPT: u64 = 2;

const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;
const STREAM_GAMMA: u64 = 0xd1b5_4a32_d192_ed03;

/// splitmix64's output function.
pub fn splitmix64_mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The number of `stream` for request `sequence` of an experiment with
/// `seed`.
pub fn request_random(seed: u64, sequence: u64, stream: u64) -> u64 {
    let state = seed
        .wrapping_add(GOLDEN_GAMMA.wrapping_mul(sequence.wrapping_add(1)))
        .wrapping_add(splitmix64_mix(
            stream.wrapping_mul(STREAM_GAMMA) ^ GOLDEN_GAMMA,
        ));
    splitmix64_mix(splitmix64_mix(state))
}

/// A number in `[0, 1)` from 53 bits of `value`.
pub fn unit_interval(value: u64) -> f64 {
    (value >> 11) as f64 / (1u64 << 53) as f64
}

/// Whether request `sequence` falls inside a blast radius of `percent`
/// (0..=100): 0 never, 100 always, otherwise with that probability.
pub fn inside_blast_radius(seed: u64, sequence: u64, percent: f64) -> bool {
    if percent >= 100.0 {
        return true;
    }
    if percent <= 0.0 {
        return false;
    }
    unit_interval(request_random(seed, sequence, STREAM_BLAST_RADIUS)) * 100.0 < percent
}

/// A splitmix64 generator, for drawing several numbers from one.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(state: u64) -> SplitMix64 {
        SplitMix64 { state }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        splitmix64_mix(self.state)
    }

    /// Uniform in `0..bound` (`bound` > 0), without modulo bias.
    pub fn below(&mut self, bound: u64) -> u64 {
        debug_assert!(bound > 0);
        let zone = u64::MAX - (u64::MAX % bound);
        loop {
            let value = self.next_u64();
            if value < zone {
                return value % bound;
            }
        }
    }
}

/// A byte to flip and the mask it is XORed with (never 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corruption {
    pub position: u64,
    pub mask: u8,
}

/// `count` distinct positions in `0..len`, sorted, with their masks: the
/// bytes a corrupt fault flips in request `sequence`'s response body.
pub fn corrupt_positions(seed: u64, sequence: u64, count: u32, len: u64) -> Vec<Corruption> {
    let count = u64::from(count).min(len);
    let mut rng = SplitMix64::new(request_random(seed, sequence, STREAM_CORRUPT));
    let mut positions: Vec<u64> = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    if count == len {
        positions.extend(0..len);
    } else {
        let mut chosen = std::collections::BTreeSet::new();
        while (chosen.len() as u64) < count {
            chosen.insert(rng.below(len));
        }
        positions.extend(chosen);
    }
    positions
        .into_iter()
        .map(|position| Corruption {
            position,
            mask: (rng.next_u64() as u8) | 1,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_and_sequence_give_the_same_numbers() {
        for sequence in 0..100 {
            assert_eq!(
                request_random(42, sequence, STREAM_PLUGIN),
                request_random(42, sequence, STREAM_PLUGIN)
            );
        }
        assert_ne!(
            request_random(42, 0, STREAM_PLUGIN),
            request_random(43, 0, STREAM_PLUGIN)
        );
        assert_ne!(
            request_random(42, 0, STREAM_PLUGIN),
            request_random(42, 1, STREAM_PLUGIN)
        );
    }

    #[test]
    fn streams_are_independent_of_one_another() {
        // Over many sequences, the plugin's number and the blast sample
        // agree on their top bit about half the time, no more.
        let n = 20_000u64;
        let agree = (0..n)
            .filter(|&s| {
                (request_random(7, s, STREAM_PLUGIN) >> 63)
                    == (request_random(7, s, STREAM_BLAST_RADIUS) >> 63)
            })
            .count() as f64;
        let ratio = agree / n as f64;
        assert!((0.48..0.52).contains(&ratio), "{ratio}");
    }

    #[test]
    fn blast_radius_sampling_matches_its_percentage() {
        let n = 100_000u64;
        for percent in [1.0, 10.0, 25.0, 50.0, 90.0] {
            let inside = (0..n)
                .filter(|&s| inside_blast_radius(1234, s, percent))
                .count() as f64;
            let observed = inside / n as f64 * 100.0;
            // Binomial standard deviation, 5 sigma.
            let p = percent / 100.0;
            let sigma = (p * (1.0 - p) / n as f64).sqrt() * 100.0;
            assert!(
                (observed - percent).abs() < 5.0 * sigma,
                "{percent}%: observed {observed}%"
            );
        }
        assert!((0..1000).all(|s| inside_blast_radius(9, s, 100.0)));
        assert!((0..1000).all(|s| !inside_blast_radius(9, s, 0.0)));
    }

    #[test]
    fn unit_interval_is_uniform_in_ten_buckets() {
        let n = 100_000u64;
        let mut buckets = [0u32; 10];
        for s in 0..n {
            let u = unit_interval(request_random(5, s, STREAM_PLUGIN));
            assert!((0.0..1.0).contains(&u));
            buckets[(u * 10.0) as usize] += 1;
        }
        for count in buckets {
            assert!((9_500..10_500).contains(&count), "{buckets:?}");
        }
    }

    #[test]
    fn corrupt_positions_are_distinct_sorted_within_the_length_and_repeatable() {
        let positions = corrupt_positions(3, 17, 10, 100);
        assert_eq!(positions.len(), 10);
        assert!(positions.windows(2).all(|w| w[0].position < w[1].position));
        assert!(positions.iter().all(|c| c.position < 100 && c.mask != 0));
        assert_eq!(positions, corrupt_positions(3, 17, 10, 100));
        assert_ne!(positions, corrupt_positions(3, 18, 10, 100));
        // More bytes than the body has: every byte, once.
        let all = corrupt_positions(3, 17, 50, 8);
        assert_eq!(
            all.iter().map(|c| c.position).collect::<Vec<_>>(),
            (0..8).collect::<Vec<_>>()
        );
        assert!(corrupt_positions(3, 17, 5, 0).is_empty());
    }

    #[test]
    fn bounded_draws_stay_below_the_bound() {
        let mut rng = SplitMix64::new(1);
        let mut seen = [false; 7];
        for _ in 0..1000 {
            let v = rng.below(7);
            seen[v as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }
}

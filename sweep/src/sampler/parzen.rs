//! Univariate Parzen estimators, the densities TPE compares: a mixture of truncated normals
//! for a numeric parameter and a smoothed histogram for a choice, each with a prior
//! component, built the way Optuna's TPE sampler builds them (its defaults: prior weight 1,
//! the "magic clip" of bandwidths, no extra weight at the bounds, and older observations
//! weighted down once there are more than 25).

use std::f64::consts::{PI, SQRT_2};

use rand::Rng;

/// Optuna's default observation weights: 1 each for up to 25 observations; beyond that the
/// newest 25 weigh 1 and older ones ramp linearly from `1/n` up.
pub fn observation_weights(n: usize) -> Vec<f64> {
    const FLAT: usize = 25;
    if n < FLAT {
        return vec![1.0; n];
    }
    let ramp = n - FLAT;
    let mut weights: Vec<f64> = (0..ramp)
        .map(|i| {
            let start = 1.0 / n as f64;
            if ramp == 1 {
                start
            } else {
                start + (1.0 - start) * i as f64 / (ramp - 1) as f64
            }
        })
        .collect();
    weights.extend(std::iter::repeat_n(1.0, FLAT));
    weights
}

/// A mixture of normals truncated to `[low, high]`: one per observation plus a wide prior
/// centred on the range.
#[derive(Debug, Clone)]
pub struct NumericParzen {
    low: f64,
    high: f64,
    mus: Vec<f64>,
    sigmas: Vec<f64>,
    weights: Vec<f64>,
}

impl NumericParzen {
    /// The estimator of `observations` (oldest first) in `[low, high]`.
    pub fn new(observations: &[f64], low: f64, high: f64, prior_weight: f64) -> NumericParzen {
        let span = high - low;
        let n = observations.len();
        let mut sigmas = vec![0.0; n];
        if n > 0 {
            // Each kernel is as wide as the larger gap to its sorted neighbours (the bounds
            // count as neighbours); the outermost two take their inner gap instead.
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| observations[a].total_cmp(&observations[b]));
            let sorted: Vec<f64> = order.iter().map(|&i| observations[i]).collect();
            let with_bounds: Vec<f64> = std::iter::once(low)
                .chain(sorted.iter().copied())
                .chain(std::iter::once(high))
                .collect();
            let mut sorted_sigmas: Vec<f64> = (1..=n)
                .map(|i| {
                    (with_bounds[i] - with_bounds[i - 1]).max(with_bounds[i + 1] - with_bounds[i])
                })
                .collect();
            if n >= 2 {
                sorted_sigmas[0] = sorted[1] - sorted[0];
                sorted_sigmas[n - 1] = sorted[n - 1] - sorted[n - 2];
            }
            for (rank, &index) in order.iter().enumerate() {
                sigmas[index] = sorted_sigmas[rank];
            }
        }
        // The magic clip: no kernel narrower than the span over the number of kernels.
        let min_sigma = span / (1.0 + (n + 1) as f64).min(100.0);
        let mut sigmas: Vec<f64> = sigmas
            .into_iter()
            .map(|s| s.clamp(min_sigma, span.max(min_sigma)))
            .collect();
        let mut mus = observations.to_vec();
        let mut weights = observation_weights(n);
        mus.push((low + high) / 2.0);
        sigmas.push(span);
        weights.push(prior_weight);
        let total: f64 = weights.iter().sum();
        weights.iter_mut().for_each(|w| *w /= total);
        NumericParzen {
            low,
            high,
            mus,
            sigmas,
            weights,
        }
    }

    /// A draw from the mixture.
    pub fn sample(&self, rng: &mut impl Rng) -> f64 {
        if self.high <= self.low {
            return self.low;
        }
        let k = pick(&self.weights, rng);
        let (mu, sigma) = (self.mus[k], self.sigmas[k]);
        // Every kernel's centre lies in the range and its width is at most the range's, so
        // at least a third of its mass is inside: rejection ends quickly.
        for _ in 0..1000 {
            let x = mu + sigma * standard_normal(rng);
            if (self.low..=self.high).contains(&x) {
                return x;
            }
        }
        mu.clamp(self.low, self.high)
    }

    /// The mixture's log density at `x`.
    pub fn log_density(&self, x: f64) -> f64 {
        if self.high <= self.low {
            return 0.0;
        }
        let terms: Vec<f64> = (0..self.mus.len())
            .map(|k| {
                let (mu, sigma) = (self.mus[k], self.sigmas[k]);
                let z = (x - mu) / sigma;
                let mass =
                    normal_cdf((self.high - mu) / sigma) - normal_cdf((self.low - mu) / sigma);
                self.weights[k].ln()
                    - 0.5 * z * z
                    - sigma.ln()
                    - 0.5 * (2.0 * PI).ln()
                    - mass.max(f64::MIN_POSITIVE).ln()
            })
            .collect();
        log_sum_exp(&terms)
    }
}

/// A smoothed histogram over `n` choices: each observation's kernel puts weight 1 on its
/// choice over a floor shared by all choices, plus a uniform prior kernel.
#[derive(Debug, Clone)]
pub struct ChoiceParzen {
    probabilities: Vec<f64>,
}

impl ChoiceParzen {
    /// The estimator of `observations` (choice indices, oldest first) among `n` choices.
    pub fn new(observations: &[usize], n: usize, prior_weight: f64) -> ChoiceParzen {
        let kernels = observations.len() + 1;
        let floor = prior_weight / kernels as f64;
        let mut weights = observation_weights(observations.len());
        weights.push(prior_weight);
        let total: f64 = weights.iter().sum();
        let mut probabilities = vec![0.0; n];
        for (k, weight) in weights.iter().enumerate() {
            let own = observations.get(k).copied();
            let row_total = floor * n as f64 + if own.is_some() { 1.0 } else { 0.0 };
            for (choice, p) in probabilities.iter_mut().enumerate() {
                let mass = floor + if own == Some(choice) { 1.0 } else { 0.0 };
                *p += weight / total * mass / row_total;
            }
        }
        ChoiceParzen { probabilities }
    }

    /// A draw: a choice's index.
    pub fn sample(&self, rng: &mut impl Rng) -> usize {
        pick(&self.probabilities, rng)
    }

    /// The log probability of choice `index`.
    pub fn log_probability(&self, index: usize) -> f64 {
        self.probabilities[index].ln()
    }
}

/// An index drawn with probability proportional to `weights`.
fn pick(weights: &[f64], rng: &mut impl Rng) -> usize {
    let total: f64 = weights.iter().sum();
    let mut u = rng.random::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        if u < *w {
            return i;
        }
        u -= w;
    }
    weights.len() - 1
}

fn standard_normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos()
}

fn normal_cdf(z: f64) -> f64 {
    0.5 * libm::erfc(-z / SQRT_2)
}

fn log_sum_exp(terms: &[f64]) -> f64 {
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return max;
    }
    max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln()
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn weights_ramp_only_past_twenty_five_observations() {
        assert_eq!(observation_weights(3), [1.0; 3]);
        let weights = observation_weights(30);
        assert_eq!(weights.len(), 30);
        assert!((weights[0] - 1.0 / 30.0).abs() < 1e-12);
        assert!(weights[..5].windows(2).all(|w| w[0] < w[1]));
        assert!(weights[5..].iter().all(|&w| w == 1.0));
    }

    #[test]
    fn the_numeric_density_integrates_to_one_and_peaks_at_the_observations() {
        let parzen = NumericParzen::new(&[0.2, 0.25, 0.8], 0.0, 1.0, 1.0);
        let n = 20_000;
        let integral: f64 = (0..n)
            .map(|i| parzen.log_density((i as f64 + 0.5) / n as f64).exp() / n as f64)
            .sum();
        assert!((integral - 1.0).abs() < 1e-3, "{integral}");
        assert!(parzen.log_density(0.22) > parzen.log_density(0.5));
        let mut rng = StdRng::seed_from_u64(1);
        let draws: Vec<f64> = (0..2000).map(|_| parzen.sample(&mut rng)).collect();
        assert!(draws.iter().all(|x| (0.0..=1.0).contains(x)));
        let near = draws.iter().filter(|x| (0.1..0.35).contains(*x)).count();
        assert!(
            near > 600,
            "{near} of 2000 draws near the two close observations"
        );
    }

    #[test]
    fn with_no_observation_the_prior_alone_is_nearly_flat() {
        let parzen = NumericParzen::new(&[], -1.0, 1.0, 1.0);
        let centre = parzen.log_density(0.0).exp();
        let edge = parzen.log_density(0.99).exp();
        assert!(centre > edge && edge > 0.5 * centre, "{centre} {edge}");
    }

    #[test]
    fn choices_favour_what_was_observed_and_keep_the_rest_possible() {
        let parzen = ChoiceParzen::new(&[2, 2, 0], 4, 1.0);
        let total: f64 = (0..4).map(|c| parzen.log_probability(c).exp()).sum();
        assert!((total - 1.0).abs() < 1e-12);
        assert!(parzen.log_probability(2) > parzen.log_probability(0));
        assert!(parzen.log_probability(0) > parzen.log_probability(1));
        assert!(parzen.log_probability(3).exp() > 0.0);
    }
}

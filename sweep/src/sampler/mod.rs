//! Samplers: the parameters of the next trial, from the search space and the trials finished
//! so far. Each trial's draw uses its own random stream (the sweep's seed and the trial's
//! number), so a sweep rebuilt from its ledger suggests what an uninterrupted one would.

pub mod parzen;
pub mod tpe;

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::error::Result;
use crate::ledger::TrialRecord;
use crate::space::{Assignment, Space};
use crate::spec::{Goal, Method, Sweep};

/// Chooses trials' parameters.
#[derive(Debug, Clone)]
pub enum Sampler {
    /// The grid's points in order: trial `n` gets point `n`.
    Grid(Vec<Assignment>),
    /// Independent uniform draws.
    Random,
    /// The tree-structured Parzen estimator.
    Tpe(tpe::TpeSettings),
}

impl Sampler {
    /// The sampler `sweep.spec.method` names.
    pub fn new(sweep: &Sweep) -> Result<Sampler> {
        Ok(match sweep.spec.method {
            Method::Grid => Sampler::Grid(sweep.space.grid()?),
            Method::Random => Sampler::Random,
            Method::Tpe => Sampler::Tpe(sweep.spec.tpe.clone()),
        })
    }

    /// The parameters of trial `trial`, given every trial the ledger holds.
    pub fn suggest(
        &self,
        space: &Space,
        goal: Goal,
        seed: u64,
        trial: u64,
        trials: &BTreeMap<u64, TrialRecord>,
    ) -> Assignment {
        let mut rng = trial_rng(seed, trial);
        match self {
            Sampler::Grid(points) => points[trial as usize % points.len()].clone(),
            Sampler::Random => space.sample_uniform(&mut rng),
            Sampler::Tpe(settings) => tpe::suggest(settings, space, goal, trials, &mut rng),
        }
    }
}

/// The random stream of trial `trial` of a sweep seeded `seed`.
fn trial_rng(seed: u64, trial: u64) -> StdRng {
    StdRng::seed_from_u64(seed ^ (trial + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

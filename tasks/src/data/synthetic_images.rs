//! Seeded MNIST-like images for local experiments: 28×28 grey images of ten classes, each
//! class a fixed pattern of strokes, every example shifted, re-weighted and noisy so that a
//! model must learn the patterns rather than memorise pixels.

use rand::Rng;
use rand_distr::{Distribution, Normal};

use grove_core::rng::{stream_rng, Stream};

use super::image_set::ImageSet;

/// Side of a synthetic image.
pub const SIDE: usize = 28;
/// Number of classes.
pub const NUM_CLASSES: usize = 10;
/// Strokes per class pattern.
const STROKES: usize = 3;
/// Indices of the data stream reserved for the class patterns (examples use 0, 1, 2, ...).
const PATTERN_STREAM_BASE: u64 = 1 << 62;

/// A line segment in pixel coordinates.
#[derive(Debug, Clone, Copy)]
struct Stroke {
    from: (f64, f64),
    to: (f64, f64),
}

/// The class patterns of `seed`.
fn patterns(seed: u64) -> Vec<[Stroke; STROKES]> {
    (0..NUM_CLASSES as u64)
        .map(|class| {
            let mut rng = stream_rng(seed, Stream::Data, PATTERN_STREAM_BASE + class);
            let mut point = || (rng.random_range(6.0..22.0), rng.random_range(6.0..22.0));
            [(); STROKES].map(|_| Stroke {
                from: point(),
                to: point(),
            })
        })
        .collect()
}

/// Ink at `(x, y)` from a stroke of half-width 1.2 pixels.
fn ink(stroke: &Stroke, x: f64, y: f64) -> f64 {
    let (dx, dy) = (stroke.to.0 - stroke.from.0, stroke.to.1 - stroke.from.1);
    let length2 = (dx * dx + dy * dy).max(1e-9);
    let t = (((x - stroke.from.0) * dx + (y - stroke.from.1) * dy) / length2).clamp(0.0, 1.0);
    let (px, py) = (stroke.from.0 + t * dx, stroke.from.1 + t * dy);
    let distance = ((x - px).powi(2) + (y - py).powi(2)).sqrt();
    (1.0 - (distance - 0.6).max(0.0) / 1.2).clamp(0.0, 1.0)
}

/// `count` examples starting at example index `first` of the seed's endless sequence (labels
/// cycle through a seeded draw; images are the class pattern shifted by up to 3 pixels, each
/// stroke re-weighted, plus Gaussian pixel noise).
pub fn synthetic_images(seed: u64, first: usize, count: usize) -> ImageSet {
    let patterns = patterns(seed);
    let noise = Normal::new(0.0, 0.25).expect("a valid normal");
    let mut set = ImageSet {
        height: SIDE,
        width: SIDE,
        channels: 1,
        pixels: Vec::with_capacity(count * SIDE * SIDE),
        labels: Vec::with_capacity(count),
    };
    for index in first..first + count {
        let mut rng = stream_rng(seed, Stream::Data, index as u64);
        let label = rng.random_range(0..NUM_CLASSES);
        let (sx, sy) = (rng.random_range(-3.0..3.0), rng.random_range(-3.0..3.0));
        let weights: [f64; STROKES] = [(); STROKES].map(|_| rng.random_range(0.5..1.0));
        for y in 0..SIDE {
            for x in 0..SIDE {
                let (fx, fy) = (x as f64 - sx, y as f64 - sy);
                let value = patterns[label]
                    .iter()
                    .zip(weights)
                    .map(|(stroke, w)| w * ink(stroke, fx, fy))
                    .fold(0.0, f64::max);
                let noisy = value + noise.sample(&mut rng);
                set.pixels
                    .push((noisy.clamp(0.0, 1.0) * 255.0).round() as u8);
            }
        }
        set.labels.push(label as u32);
    }
    set
}

//! Runs a kernel's inner loops compiled for the widest vector instructions the CPU has.
//!
//! Grove builds for the baseline x86-64 target, so one binary runs on any x86-64 CPU, and
//! there LLVM vectorises the fused kernels' loops with SSE2: 4 f32 lanes. [`vectorized!`]
//! evaluates an expression inside a function compiled with AVX-512 (16 lanes) or AVX2 (8
//! lanes) when the CPU has them, detected at run time (std caches the answer), and as it is
//! elsewhere. The macro writes the expression out once per path, so each copy is a closure
//! with one call site, which LLVM inlines into its function and compiles for that
//! instruction set, together with the `#[inline(always)]` helpers it calls (a helper that is
//! not inlined runs its baseline code). The call belongs around a serial loop: inside a
//! rayon task, not around the parallel iterator (a rayon task runs in rayon's own code).
//!
//! Both wide paths enable FMA, but LLVM never fuses a separate multiply and add on its own:
//! only an explicit `mul_add` becomes one fused instruction (and a correctly rounded libm call
//! on the baseline path). Every operation the loops use is correctly rounded, so all three
//! paths give the same bits. Written here rather than taken from the
//! `multiversion` crate, which dispatches whole function items: the kernels' loops are
//! closures inside rayon tasks, and one macro serves them all.

/// The widest vector instructions this CPU has, of those the kernels are compiled for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Level {
    /// AVX-512 (F, BW, DQ, VL): 16 f32 lanes.
    Avx512,
    /// AVX2 with FMA: 8 f32 lanes.
    Avx2,
    /// What the build targets (SSE2 on x86-64).
    Baseline,
}

/// This CPU's [`Level`]: each level needs every feature its `with_*` function enables, and
/// AVX-512 needs AVX2's as well.
#[inline(always)]
pub fn level() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let avx2 = has!("avx2") && has!("avx") && has!("fma") && has!("bmi1") && has!("bmi2");
        if avx2 && has!("avx512f") && has!("avx512bw") && has!("avx512dq") && has!("avx512vl") {
            return Level::Avx512;
        }
        if avx2 {
            return Level::Avx2;
        }
    }
    Level::Baseline
}

/// Evaluates the expression compiled for this CPU's [`Level`] (see the module docs).
#[macro_export]
macro_rules! vectorized {
    ($body:expr) => {
        match $crate::simd::level() {
            // SAFETY: `level` found every feature the function is compiled with.
            #[allow(unused_unsafe)]
            $crate::simd::Level::Avx512 => unsafe { $crate::simd::with_avx512(|| $body) },
            // SAFETY: as above.
            #[allow(unused_unsafe)]
            $crate::simd::Level::Avx2 => unsafe { $crate::simd::with_avx2(|| $body) },
            $crate::simd::Level::Baseline => $body,
        }
    };
}
pub use crate::vectorized;

/// `f()`, compiled with AVX-512.
///
/// # Safety
/// The CPU must have AVX-512 F, BW, DQ and VL and the AVX2 level's features ([`level`] says
/// [`Level::Avx512`]).
#[cfg_attr(
    target_arch = "x86_64",
    target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,avx,fma,bmi1,bmi2")
)]
pub unsafe fn with_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// `f()`, compiled with AVX2.
///
/// # Safety
/// The CPU must have AVX2, AVX, FMA, BMI1 and BMI2 ([`level`] says [`Level::Avx2`] or
/// better).
#[cfg_attr(
    target_arch = "x86_64",
    target_feature(enable = "avx2,avx,fma,bmi1,bmi2")
)]
pub unsafe fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(test)]
mod tests {

    #[inline(always)]
    fn kernel(xs: &[f32]) -> Vec<f32> {
        xs.iter()
            .map(|&x| (x * x + 1.0).sqrt() / x.abs().mul_add(0.75, 1.0) - x.max(0.5))
            .collect()
    }

    #[test]
    fn every_path_gives_the_same_bits_as_the_baseline() {
        let xs: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.37).sin() * 10.0).collect();
        let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
        let plain = bits(kernel(&xs));
        assert_eq!(bits(vectorized!(kernel(&xs))), plain);
        if !matches!(super::level(), super::Level::Baseline) {
            // SAFETY: the CPU has the AVX2 level's features.
            assert_eq!(bits(unsafe { super::with_avx2(|| kernel(&xs)) }), plain);
        }
    }
}

//! Runs a kernel's inner loops compiled for the widest vector instructions the CPU has.
//!
//! Grove builds for the baseline x86-64 target, so one binary runs on any x86-64 CPU, and
//! there LLVM vectorises the fused kernels' loops with SSE2: 4 f32 lanes. [`vectorized`] runs
//! a closure inside a function compiled with AVX-512 (16 lanes) or AVX2 (8 lanes) when the CPU
//! has them, detected at run time (std caches the answer), and as it is elsewhere. The
//! closure and the `#[inline]` helpers it calls are inlined into that function and compiled
//! for its instruction set, so the call belongs around a serial loop: inside a rayon task,
//! not around the parallel iterator (a rayon task runs in rayon's own, baseline code).
//!
//! No fused multiply-add is enabled, and every operation the loops use is correctly rounded,
//! so all three paths give the same bits. Written here rather than taken from the
//! `multiversion` crate, which dispatches whole function items: the kernels' loops are
//! closures inside rayon tasks, and one generic function serves them all.

/// Runs `f`, compiled for AVX-512 or AVX2 where the CPU has them (see the module docs).
#[inline(always)]
pub(crate) fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            // SAFETY: the CPU has every feature the function is compiled with.
            return unsafe { x86::with_avx512(f) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: as above.
            return unsafe { x86::with_avx2(f) };
        }
    }
    f()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    /// `f()`, compiled with AVX-512.
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,avx,bmi1,bmi2")]
    pub(super) unsafe fn with_avx512<R>(f: impl FnOnce() -> R) -> R {
        f()
    }

    /// `f()`, compiled with AVX2.
    #[target_feature(enable = "avx2,avx,bmi1,bmi2")]
    pub(super) unsafe fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
        f()
    }
}

#[cfg(test)]
mod tests {
    use super::vectorized;

    #[test]
    fn every_path_gives_the_same_bits_as_the_baseline() {
        let xs: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.37).sin() * 10.0).collect();
        let kernel = |xs: &[f32]| -> Vec<f32> {
            xs.iter()
                .map(|&x| (x * x + 1.0).sqrt() / (1.0 + x.abs()) - x.max(0.5))
                .collect()
        };
        let plain = kernel(&xs);
        let wide = vectorized(|| kernel(&xs));
        assert_eq!(
            plain.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            wide.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
    }
}

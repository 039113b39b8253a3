//! The core's f32 multiply-add ceiling, measured: chains of fused multiply-adds on
//! registers, as many independent chains as keep every FMA unit busy, no memory
//! traffic. Every other kernel's speed is a share of what this does.

/// Independent accumulator chains: more than an FMA's latency (4-5 cycles) times the
/// FMA units (2), so that no unit waits on a result.
const CHAINS: usize = 16;

/// Runs `rounds` rounds of one fused multiply-add `x = x * a + b` on each of
/// [`CHAINS`] vectors of the widest kind the CPU has, and returns the flops done (two
/// per lane per FMA) and the sum of every lane's final `x` (so that the work cannot be
/// optimised away, and so that a test can check it against the scalar recurrence).
pub(crate) fn fma_chains(rounds: usize, a: f32, b: f32) -> (f64, f32) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F, checked just above.
            let sum = unsafe { avx512(rounds, a, b) };
            return (flops(rounds, 16), sum);
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports AVX2 and FMA, checked just above.
            let sum = unsafe { avx2(rounds, a, b) };
            return (flops(rounds, 8), sum);
        }
    }
    let mut x = [0.0f32; CHAINS];
    for _ in 0..rounds {
        for v in &mut x {
            *v = v.mul_add(a, b);
        }
    }
    (flops(rounds, 1), x.iter().sum())
}

fn flops(rounds: usize, lanes: usize) -> f64 {
    2.0 * (rounds * CHAINS * lanes) as f64
}

/// [`fma_chains`] on 512-bit vectors.
///
/// # Safety
/// The CPU supports AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn avx512(rounds: usize, a: f32, b: f32) -> f32 {
    use std::arch::x86_64::{_mm512_fmadd_ps, _mm512_reduce_add_ps, _mm512_set1_ps};
    let (va, vb) = (_mm512_set1_ps(a), _mm512_set1_ps(b));
    let mut x = [_mm512_set1_ps(0.0); CHAINS];
    for _ in 0..rounds {
        for v in &mut x {
            *v = _mm512_fmadd_ps(*v, va, vb);
        }
    }
    x.iter().map(|&v| _mm512_reduce_add_ps(v)).sum()
}

/// [`fma_chains`] on 256-bit vectors.
///
/// # Safety
/// The CPU supports AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2(rounds: usize, a: f32, b: f32) -> f32 {
    use std::arch::x86_64::{_mm256_fmadd_ps, _mm256_set1_ps, _mm256_storeu_ps};
    let (va, vb) = (_mm256_set1_ps(a), _mm256_set1_ps(b));
    let mut x = [_mm256_set1_ps(0.0); CHAINS];
    for _ in 0..rounds {
        for v in &mut x {
            *v = _mm256_fmadd_ps(*v, va, vb);
        }
    }
    let mut sum = 0.0;
    for v in x {
        let mut lanes = [0.0f32; 8];
        // SAFETY: `lanes` holds the 8 f32 a 256-bit store writes.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), v) };
        sum += lanes.iter().sum::<f32>();
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every lane runs exactly the scalar fused recurrence the flop count assumes.
    #[test]
    fn chains_compute_the_counted_recurrence() {
        let (a, b, rounds) = (0.999_9_f32, 0.001_f32, 1000);
        let mut x = 0.0f32;
        for _ in 0..rounds {
            x = x.mul_add(a, b);
        }
        let (flops, sum) = fma_chains(rounds, a, b);
        let lanes = flops / (2.0 * (rounds * CHAINS) as f64);
        assert!([1.0, 8.0, 16.0].contains(&lanes), "{lanes} lanes");
        // Every lane holds the same value, so the sum is exact up to the additions'
        // rounding; one round more or less would move it a thousand times further.
        let expected = x * (CHAINS as f32) * lanes as f32;
        assert!(
            (sum - expected).abs() <= expected * 1e-5,
            "{sum} vs {expected}"
        );
    }
}

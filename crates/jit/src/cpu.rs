//! What the host CPU offers, in one place (std caches the CPUID reads behind the macro).

/// AVX-512F and FMA: the AVX-512 kernels, the few-rows GEMM and the peak's `zmm` loop need both.
pub(crate) fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    return is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// AVX2 and FMA.
pub(crate) fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    return is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

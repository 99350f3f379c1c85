//! One method compiled for the CPU's fused multiply-add set, chosen at run time.

/// Defines the method `$name(&self, args)`, which runs `self.$body::<FMA>(args)` compiled for
/// the widest set `$simd` (a [`overparam_device::vmath::Simd`]) names: inside the
/// `#[target_feature]` methods `$avx512` (AVX-512, AVX2 and FMA) or `$avx2` (AVX2 and FMA)
/// that it also defines, with FMA on a target whose baseline has it, and without FMA (the C
/// library's functions; `mul_add` would be a slow software routine) elsewhere. `$body` must
/// be `#[inline(always)]`, so that its loops are compiled inside each variant.
macro_rules! fma_variants {
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident(&$this:ident $(, $arg:ident: $ty:ty)*) $(-> $ret:ty)?
        = $body:ident on $simd:expr, via $avx512:ident, $avx2:ident
    ) => {
        $(#[$meta])*
        $vis fn $name(&$this $(, $arg: $ty)*) $(-> $ret)? {
            match $simd {
                // SAFETY: each variant runs only where `Simd::detect` found its features.
                #[cfg(target_arch = "x86_64")]
                overparam_device::vmath::Simd::Avx512 => unsafe { $this.$avx512($($arg),*) },
                #[cfg(target_arch = "x86_64")]
                overparam_device::vmath::Simd::Avx2 => unsafe { $this.$avx2($($arg),*) },
                overparam_device::vmath::Simd::Baseline => $this.$body::<true>($($arg),*),
                _ => $this.$body::<false>($($arg),*),
            }
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx512dq,avx512vl,avx2,fma")]
        fn $avx512(&$this $(, $arg: $ty)*) $(-> $ret)? {
            $this.$body::<true>($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        fn $avx2(&$this $(, $arg: $ty)*) $(-> $ret)? {
            $this.$body::<true>($($arg),*)
        }
    };
}

pub(crate) use fma_variants;

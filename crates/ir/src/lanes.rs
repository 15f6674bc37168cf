//! Lane programs: the primitives every kernel backend provides ([`Lanes`]) and the elementary
//! functions written once on top of them.
//!
//! [`Lanes`] is the handful of lane-wise primitives a backend provides (float arithmetic, bit
//! casts, integer shifts, compare masks, selects); the transcendentals are provided methods
//! built from them, so the Cranelift emitter (`trellis_jit::math::ClifLanes`: one `f32` or an
//! `f32x4`, as IR) and the AVX-512 evaluator (`trellis_jit`'s `avx512`: sixteen lanes, computed
//! directly) run the same algorithm with the same constants and give bit-identical results.
//! The trait lives here, below both backends, so that each elementwise function's lane
//! implementation sits in its one declaration ([`crate::functions`]) and an outside crate can
//! compose new primitives from the same set ([`crate::prim`]).
//!
//! There are no transcendental instructions to lean on, so `exp`, `log`, `tanh`, `sigmoid`,
//! `erf`, `sin`, `cos` and `atan` are range-reduced polynomials (Cephes and FreeBSD `msun`
//! coefficients) evaluated with FMA. Their measured accuracy against the correctly rounded f64
//! result is the `ulp` column of [`crate::functions`]'s table, asserted by the sweep in
//! `crates/jit/tests/math.rs` on both backends.
//!
//! `sqrt`, `recip`, `abs`, `neg`, `min`, `max`, `relu`, `sign` and the comparisons are exact
//! (correctly rounded). `pow` with a constant integer exponent `|n| <= 16` ([`Lanes::powi`]) is
//! within about `(|n| + 1) / 2` ulp; the general `pow` ([`Lanes::pow`]) is `exp(b ln a)` in f32
//! and loses accuracy with `|b ln a|` (3 ulp for `|b ln a| <= 2`, about `2 |b ln a|` ulp beyond).
// The Cephes coefficients are kept as published (their f32 rounding is what is used).
#![allow(clippy::excessive_precision)]

const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer in the low bits

/// A float comparison. `Ne` is true when either side is NaN, the others are then false (as
/// Rust's `!=` and `<`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

/// How `exp` scales its polynomial by `2^n`, by the range of `n` its caller guarantees.
#[derive(Clone, Copy)]
pub enum Scale {
    /// `n` in `[-150, 0]`: a shifted factor and a constant one (subnormal results round once).
    NonPos,
    /// `n` in `[-150, 128]`: two factors of `2^(n/2)` (overflow to inf and subnormals).
    Full,
}

/// Lane-wise primitives of one backend: `F` a group of f32 lanes, `I` the same lanes as i32
/// bit patterns, `M` a comparison mask. Every method is one or two machine instructions; the
/// provided methods (the math) are written once on top of them.
pub trait Lanes {
    type F: Copy;
    type I: Copy;
    type M: Copy;

    /// A float constant in every lane.
    fn f(&mut self, c: f32) -> Self::F;
    /// An integer constant in every lane.
    fn i(&mut self, c: i32) -> Self::I;
    fn f_to_bits(&mut self, x: Self::F) -> Self::I;
    fn bits_to_f(&mut self, x: Self::I) -> Self::F;

    fn add(&mut self, a: Self::F, b: Self::F) -> Self::F;
    fn sub(&mut self, a: Self::F, b: Self::F) -> Self::F;
    fn mul(&mut self, a: Self::F, b: Self::F) -> Self::F;
    fn div(&mut self, a: Self::F, b: Self::F) -> Self::F;
    /// `a * b + c`, fused where the host has FMA.
    fn fma(&mut self, a: Self::F, b: Self::F, c: Self::F) -> Self::F;
    fn neg(&mut self, x: Self::F) -> Self::F;
    fn abs(&mut self, x: Self::F) -> Self::F;
    fn sqrt(&mut self, x: Self::F) -> Self::F;
    fn floor(&mut self, x: Self::F) -> Self::F;
    /// NaN-propagating maximum with `+0 > -0` (IEEE 754-2019 `maximum`).
    fn max(&mut self, a: Self::F, b: Self::F) -> Self::F;
    /// NaN-propagating minimum with `-0 < +0`.
    fn min(&mut self, a: Self::F, b: Self::F) -> Self::F;

    fn cmp(&mut self, cc: Cmp, a: Self::F, b: Self::F) -> Self::M;
    /// Signed integer `a < b`.
    fn ilt(&mut self, a: Self::I, b: Self::I) -> Self::M;
    fn mask_and(&mut self, a: Self::M, b: Self::M) -> Self::M;
    fn mask_or(&mut self, a: Self::M, b: Self::M) -> Self::M;
    fn mask_not(&mut self, a: Self::M) -> Self::M;
    /// Lane-wise `if m { a } else { b }`.
    fn sel(&mut self, m: Self::M, a: Self::F, b: Self::F) -> Self::F;
    /// A mask as a float: 1.0 where true, 0.0 where false.
    fn flag(&mut self, m: Self::M) -> Self::F;

    fn iadd(&mut self, a: Self::I, b: Self::I) -> Self::I;
    fn isub(&mut self, a: Self::I, b: Self::I) -> Self::I;
    fn iand(&mut self, a: Self::I, b: Self::I) -> Self::I;
    fn ior(&mut self, a: Self::I, b: Self::I) -> Self::I;
    fn shl(&mut self, a: Self::I, n: u8) -> Self::I;
    /// Logical (zero-filling) right shift.
    fn ushr(&mut self, a: Self::I, n: u8) -> Self::I;
    /// Arithmetic (sign-filling) right shift.
    fn sshr(&mut self, a: Self::I, n: u8) -> Self::I;
    /// Signed integer to float.
    fn i_to_f(&mut self, a: Self::I) -> Self::F;

    /// Horner evaluation of `coeffs[0] * x^(n-1) + ... + coeffs[n-1]` with FMA.
    #[inline(always)]
    fn poly(&mut self, x: Self::F, coeffs: &[f32]) -> Self::F {
        let mut acc = self.f(coeffs[0]);
        for &c in &coeffs[1..] {
            let cv = self.f(c);
            acc = self.fma(acc, x, cv);
        }
        acc
    }

    /// Estrin evaluation of `coeffs[0] * x^(n-1) + ... + coeffs[n-1]` for an even `n <= 16`,
    /// given `x2 = x * x`: the pairs `coeffs[2k] x + coeffs[2k+1]`, then Horner in `x2` over
    /// the pairs (half the dependent depth of [`Lanes::poly`], so more elements fit in flight).
    #[inline(always)]
    fn estrin(&mut self, x: Self::F, x2: Self::F, coeffs: &[f32]) -> Self::F {
        debug_assert!(coeffs.len().is_multiple_of(2) && (2..=16).contains(&coeffs.len()));
        // (Not `array::map`: it is not inlined, which the AVX-512 backend needs.)
        let mut c: [Option<Self::F>; 16] = [None; 16];
        for (k, &v) in coeffs.iter().enumerate() {
            c[k] = Some(self.f(v));
        }
        let mut pairs: [Option<Self::F>; 8] = [None; 8];
        for k in 0..coeffs.len() / 2 {
            let (a, b) = (c[2 * k].expect("set"), c[2 * k + 1].expect("set"));
            pairs[k] = Some(self.fma(a, x, b));
        }
        let mut acc = pairs[0].expect("at least one pair");
        for p in pairs.iter().take(coeffs.len() / 2).skip(1) {
            acc = self.fma(acc, x2, p.expect("set"));
        }
        acc
    }

    /// `max(x, 0)`, NaN-propagating.
    #[inline(always)]
    fn relu(&mut self, x: Self::F) -> Self::F {
        let z = self.f(0.0);
        self.max(x, z)
    }

    /// `if c != 0 { a } else { b }` (a NaN condition counts as nonzero, as in `ScalarFn::eval`).
    #[inline(always)]
    fn select_nonzero(&mut self, c: Self::F, a: Self::F, b: Self::F) -> Self::F {
        let z = self.f(0.0);
        let m = self.cmp(Cmp::Ne, c, z);
        self.sel(m, a, b)
    }

    /// `2^n` for integer lanes `n` in `[-126, 127]`.
    #[inline(always)]
    fn pow2i(&mut self, n: Self::I) -> Self::F {
        let bias = self.i(127);
        let e = self.iadd(n, bias);
        let e = self.shl(e, 23);
        self.bits_to_f(e)
    }

    /// `exp(x)`: max 1 ulp. `n = round(x / ln2)` by the 1.5*2^23 trick, Cody-Waite reduction
    /// `r = x - n ln2` (|r| <= ln2/2), Cephes degree-7 polynomial, then `* 2^n` as two
    /// power-of-two factors so the subnormal range rounds once and `x > ln(FLT_MAX)` overflows to
    /// inf. Inputs are clamped to `[-104, 89]` first (NaN stays NaN).
    #[inline(always)]
    fn exp(&mut self, x: Self::F) -> Self::F {
        let hi = self.f(89.0);
        let lo = self.f(-104.0);
        // Compare-and-select clamps: NaN fails both tests and passes through, in three
        // instructions each instead of the long NaN-exact fmin/fmax sequences.
        let above = self.cmp(Cmp::Gt, x, hi);
        let x = self.sel(above, hi, x);
        let below = self.cmp(Cmp::Lt, x, lo);
        let x = self.sel(below, lo, x);
        self.exp_core(x, Scale::Full)
    }

    /// `exp(x)` for `x <= 0` (or NaN): only the lower clamp.
    #[inline(always)]
    fn exp_nonpos(&mut self, x: Self::F) -> Self::F {
        let lo = self.f(-104.0);
        let below = self.cmp(Cmp::Lt, x, lo);
        let x = self.sel(below, lo, x);
        self.exp_core(x, Scale::NonPos)
    }

    /// Range reduction, polynomial and scaling by `2^n` (see [`Scale`]).
    #[inline(always)]
    fn exp_core(&mut self, x: Self::F, scale: Scale) -> Self::F {
        let (tb, em1) = self.exp_reduced(x);
        let one = self.f(1.0);
        let y = self.add(em1, one);
        match scale {
            Scale::NonPos => {
                // n in [-150, 0]: y 2^(n+64) is normal and exact, the factor 2^-64 then rounds
                // once (into the subnormals where the result is one).
                let s = self.pow2_of_magic(tb, 127 + 64);
                let y = self.mul(y, s);
                let k = self.f(f32::from_bits((127 - 64) << 23));
                self.mul(y, k)
            }
            Scale::Full => {
                let mb = self.i(MAGIC.to_bits() as i32);
                let ni = self.isub(tb, mb);
                let n1 = self.sshr(ni, 1);
                let n2 = self.isub(ni, n1);
                let s1 = self.pow2i(n1);
                let s2 = self.pow2i(n2);
                let y = self.mul(y, s1);
                self.mul(y, s2)
            }
        }
    }

    /// The reduced exponential: `n = round(x / ln2)` by the 1.5*2^23 trick, Cody-Waite
    /// `r = x - n ln2` (|r| <= ln2/2, ln2 = C1 + C2 with n C1 exact), and the Cephes polynomial
    /// `expm1(r) = r + r^2 P(r)`. Returns the bits of `t = 1.5*2^23 + n` (n in the low bits)
    /// and `expm1(r)`; `exp(x) = 2^n (1 + expm1(r))`.
    #[inline(always)]
    fn exp_reduced(&mut self, x: Self::F) -> (Self::I, Self::F) {
        let log2e = self.f(std::f32::consts::LOG2_E);
        let magic = self.f(MAGIC);
        let t = self.fma(x, log2e, magic);
        let n = self.sub(t, magic);
        let c1 = self.f(-0.693_359_375);
        let c2 = self.f(2.121_944_4e-4);
        let r = self.fma(n, c1, x);
        let r = self.fma(n, c2, r);
        // P(r) = (a0 r + a1) r^4 + (a2 r + a3) r^2 + (a4 r + a5) (Estrin: three FMAs deep
        // instead of Horner's five, so more elements fit in flight).
        let z = self.mul(r, r);
        let p = self.estrin(
            r,
            z,
            &[
                1.987_569_15e-4,
                1.398_199_950_7e-3,
                8.333_451_907_3e-3,
                4.166_579_589_4e-2,
                1.666_666_545_9e-1,
                5.000_000_120_1e-1,
            ],
        );
        let em1 = self.fma(p, z, r);
        (self.f_to_bits(t), em1)
    }

    /// `2^(n + bias - 127)` as a float from `tb`, the bits of `1.5*2^23 + n`: the exponent field
    /// is `tb - bits(1.5*2^23) + bias`, one integer add of a folded constant and a shift.
    #[inline(always)]
    fn pow2_of_magic(&mut self, tb: Self::I, bias: i32) -> Self::F {
        let k = self.i(bias.wrapping_sub(MAGIC.to_bits() as i32));
        let e = self.iadd(tb, k);
        let e = self.shl(e, 23);
        self.bits_to_f(e)
    }

    /// `ln(x)`: max 1 ulp. `x = m 2^e` with `m` in `[sqrt(1/2), sqrt(2))` (subnormals are scaled
    /// by 2^23 first), Cephes degree-9 polynomial in `m - 1`, `e ln2` added in two parts.
    /// `ln(0) = -inf`, `ln(x < 0) = NaN`, `ln(inf) = inf`, `ln(NaN) = NaN`.
    #[inline(always)]
    fn log(&mut self, x: Self::F) -> Self::F {
        let tiny = self.f(f32::MIN_POSITIVE);
        let sub = self.cmp(Cmp::Lt, x, tiny);
        let two23 = self.f(8_388_608.0);
        let xs = self.mul(x, two23);
        let xs = self.sel(sub, xs, x);
        let bits = self.f_to_bits(xs);
        let ex = self.ushr(bits, 23);
        let b126 = self.i(126);
        let ex = self.isub(ex, b126);
        let e = self.i_to_f(ex);
        let c23 = self.f(23.0);
        let zero = self.f(0.0);
        let adj = self.sel(sub, c23, zero);
        let e = self.sub(e, adj);
        // m in [0.5, 1)
        let mant = self.i(0x007f_ffff);
        let half = self.i(0x3f00_0000);
        let mb = self.iand(bits, mant);
        let mb = self.ior(mb, half);
        let m = self.bits_to_f(mb);
        let sqrth = self.f(std::f32::consts::FRAC_1_SQRT_2);
        let small = self.cmp(Cmp::Lt, m, sqrth);
        let one = self.f(1.0);
        let e1 = self.sub(e, one);
        let e = self.sel(small, e1, e);
        let m2 = self.add(m, m);
        let m = self.sel(small, m2, m);
        let m = self.sub(m, one);
        let z = self.mul(m, m);
        let p = self.poly(
            m,
            &[
                7.037_683_629_2e-2,
                -1.151_461_031_0e-1,
                1.167_699_874_0e-1,
                -1.242_014_084_6e-1,
                1.424_932_278_7e-1,
                -1.666_805_766_5e-1,
                2.000_071_476_5e-1,
                -2.499_999_399_3e-1,
                3.333_333_117_4e-1,
            ],
        );
        let mz = self.mul(m, z);
        let y = self.mul(p, mz);
        let c2 = self.f(-2.121_944_4e-4);
        let y = self.fma(e, c2, y);
        let mhalf = self.f(-0.5);
        let y = self.fma(z, mhalf, y);
        let r = self.add(m, y);
        let c1 = self.f(0.693_359_375);
        let r = self.fma(e, c1, r);
        // Special values.
        let ninf = self.f(f32::NEG_INFINITY);
        let is0 = self.cmp(Cmp::Eq, x, zero);
        let r = self.sel(is0, ninf, r);
        let inf = self.f(f32::INFINITY);
        let isinf = self.cmp(Cmp::Eq, x, inf);
        let r = self.sel(isinf, inf, r);
        let nan = self.f(f32::NAN);
        let ok = self.cmp(Cmp::Ge, x, zero);
        self.sel(ok, r, nan)
    }

    /// `tanh(x)`: max 2 ulp. `tanh|x| = m / (m + 2)` with `m = expm1(2|x|)`, and
    /// `expm1(y) = 2^n expm1(r) + (2^n - 1)` (one FMA; exact `expm1(r)` when n = 0, so tanh keeps
    /// its relative accuracy near 0 and subnormals come back exactly); the sign of `x` is put
    /// back with an `or`. `|x|` is clamped at 9.1, where tanh rounds to exactly 1 in f32, so
    /// `2^n` stays normal. NaN gives NaN.
    #[inline(always)]
    fn tanh(&mut self, x: Self::F) -> Self::F {
        let ax = self.abs(x);
        let cap = self.f(9.1);
        let big_x = self.cmp(Cmp::Gt, ax, cap);
        let axc = self.sel(big_x, cap, ax);
        let y = self.add(axc, axc);
        let (tb, em1r) = self.exp_reduced(y);
        let s = self.pow2_of_magic(tb, 127);
        let one = self.f(1.0);
        let sm1 = self.sub(s, one);
        let m = self.fma(s, em1r, sm1);
        let two = self.f(2.0);
        let d = self.add(m, two);
        let q = self.div(m, d);
        let xb = self.f_to_bits(x);
        let sign = self.i(i32::MIN);
        let sx = self.iand(xb, sign);
        let qb = self.f_to_bits(q);
        let r = self.ior(qb, sx);
        self.bits_to_f(r)
    }

    /// `1 / (1 + exp(-x))`: max 2 ulp. With `e = exp(-|x|)`: `1 / (1 + e)` for `x >= 0` and
    /// `e / (1 + e)` for `x < 0`, so there is no cancellation and the subnormal tail for
    /// `x < -87` is kept; the result saturates to exactly 1 for `x > 17` and to exactly 0 for
    /// `x < -104`. NaN gives NaN.
    #[inline(always)]
    fn sigmoid(&mut self, x: Self::F) -> Self::F {
        // -|x|: set the sign bit (one `or`).
        let xb = self.f_to_bits(x);
        let sign = self.i(i32::MIN);
        let nax = self.ior(xb, sign);
        let nax = self.bits_to_f(nax);
        let e = self.exp_nonpos(nax);
        let one = self.f(1.0);
        let d = self.add(one, e);
        let zero = self.f(0.0);
        let pos = self.cmp(Cmp::Ge, x, zero);
        let num = self.sel(pos, one, e);
        self.div(num, d)
    }

    /// `x^n` for a small integer constant `n` by square-and-multiply (`1 / x^|n|` for `n < 0`,
    /// 1 for `n == 0`). The sign of a negative base comes out right (`(-2)^3 = -8`); the error is
    /// a few ulp for large `|n|` (each squaring doubles the relative error: at most
    /// `(|n| - 1) / 2 + 1` ulp or so for `|n| <= 16`).
    #[inline(always)]
    fn powi(&mut self, x: Self::F, n: i32) -> Self::F {
        if n == 0 {
            return self.f(1.0);
        }
        let mut k = n.unsigned_abs();
        let mut base = x;
        let mut acc: Option<Self::F> = None;
        loop {
            if k & 1 == 1 {
                acc = Some(match acc {
                    None => base,
                    Some(a) => self.mul(a, base),
                });
            }
            k >>= 1;
            if k == 0 {
                break;
            }
            base = self.mul(base, base);
        }
        let acc = acc.expect("n != 0");
        if n < 0 {
            let one = self.f(1.0);
            self.div(one, acc)
        } else {
            acc
        }
    }

    /// `a^b` (powf) for a general exponent: `exp(b ln|a|)`, then
    /// - `b == 0` or `a == 1`: 1 (even for NaN), `a == -1` and `b == +-inf`: 1;
    /// - negative `a` (sign bit set, so `-0` and `-inf` too): the sign of the result is `-` when
    ///   `b` is an odd integer; a non-integer `b` with finite `a < 0` gives NaN (with `-inf`,
    ///   0 or inf as powf);
    /// - zeros and infinities of `a` and `b` otherwise follow from `exp`/`log` (`0^b` is 0 for
    ///   `b > 0` and inf for `b < 0`, and so on), as in powf.
    ///
    /// What differs from powf: accuracy. `ln a` is rounded to f32 before the product, so the
    /// relative error grows with the size of `t = |b ln a|`. Measured (a in [0.01, 200], b in
    /// [-8, 8]): at most 3 ulp when `t <= 2`, 60 ulp at `t` about 35; expect roughly `2 t` ulp,
    /// i.e. up to ~180 ulp for results near the f32 overflow or underflow limits (`t` about 88),
    /// and less relative accuracy for subnormal results. The sign of a zero result for a `-0`
    /// base follows the odd-integer rule as in powf.
    #[inline(always)]
    fn pow(&mut self, a: Self::F, b: Self::F) -> Self::F {
        let aa = self.abs(a);
        let la = self.log(aa);
        let t = self.mul(b, la);
        let y = self.exp(t);
        // Is b an integer, and an odd one?
        let fb = self.floor(b);
        let is_int = self.cmp(Cmp::Eq, fb, b);
        let half = self.f(0.5);
        let hb = self.mul(b, half);
        let fhb = self.floor(hb);
        let half_int = self.cmp(Cmp::Eq, fhb, hb);
        let not_even = self.mask_not(half_int);
        let odd = self.mask_and(is_int, not_even);
        // Sign bit of a.
        let ab = self.f_to_bits(a);
        let zero_i = self.i(0);
        let neg = self.ilt(ab, zero_i);
        let flip = self.mask_and(neg, odd);
        let ny = self.neg(y);
        let y = self.sel(flip, ny, y);
        let zero = self.f(0.0);
        // (-inf)^b for a non-integer b is +0 or +inf as for +inf, not NaN.
        let ninf = self.f(f32::NEG_INFINITY);
        let a_neg = self.cmp(Cmp::Lt, a, zero);
        let a_finite = self.cmp(Cmp::Ne, a, ninf);
        let a_neg = self.mask_and(a_neg, a_finite);
        let not_int = self.mask_not(is_int);
        let bad = self.mask_and(a_neg, not_int);
        let nan = self.f(f32::NAN);
        let y = self.sel(bad, nan, y);
        // One-results: b == 0, a == 1, a == -1 with b = +-inf.
        let one = self.f(1.0);
        let b0 = self.cmp(Cmp::Eq, b, zero);
        let a1 = self.cmp(Cmp::Eq, a, one);
        let inf = self.f(f32::INFINITY);
        let ab_ = self.abs(b);
        let binf = self.cmp(Cmp::Eq, ab_, inf);
        let aa1 = self.cmp(Cmp::Eq, aa, one);
        let m1 = self.mask_and(binf, aa1);
        let ones = self.mask_or(b0, a1);
        let ones = self.mask_or(ones, m1);
        self.sel(ones, one, y)
    }

    /// `1 / sqrt(x)`: two correctly rounded steps, max 1 ulp.
    #[inline(always)]
    fn rsqrt(&mut self, x: Self::F) -> Self::F {
        let s = self.sqrt(x);
        let one = self.f(1.0);
        self.div(one, s)
    }

    /// `1` for `x > 0`, `-1` for `x < 0`, `x` itself for `+-0` and NaN. Exact.
    #[inline(always)]
    fn sign(&mut self, x: Self::F) -> Self::F {
        let zero = self.f(0.0);
        let one = self.f(1.0);
        let minus = self.f(-1.0);
        let neg = self.cmp(Cmp::Lt, x, zero);
        let y = self.sel(neg, minus, x);
        let pos = self.cmp(Cmp::Gt, x, zero);
        self.sel(pos, one, y)
    }

    /// `ln(1 + u)` for `u` in `[0, 1]` (or NaN), without the cancellation of `ln(1 + u)` for
    /// small `u` (Goldberg): with `w = 1 + u` rounded, `ln(w) * u / (w - 1)`, and `u` where
    /// `w == 1`.
    #[inline(always)]
    fn log1p_unit(&mut self, u: Self::F) -> Self::F {
        let one = self.f(1.0);
        let w = self.add(one, u);
        let l = self.log(w);
        let d = self.sub(w, one);
        let q = self.div(u, d);
        let y = self.mul(l, q);
        let same = self.cmp(Cmp::Eq, w, one);
        self.sel(same, u, y)
    }

    /// `ln(1 + exp(x))` as `max(x, 0) + ln(1 + exp(-|x|))`: no overflow for large `x`, and the
    /// `exp(x)` tail for very negative `x` is kept.
    #[inline(always)]
    fn softplus(&mut self, x: Self::F) -> Self::F {
        let ax = self.abs(x);
        let nax = self.neg(ax);
        let e = self.exp_nonpos(nax);
        let l = self.log1p_unit(e);
        let m = self.relu(x);
        self.add(m, l)
    }

    /// `x sigmoid(x)` (SiLU, swish): with `e = exp(-|x|)`, `x / (1 + e)` for `x >= 0` and
    /// `x e / (1 + e)` for `x < 0`. The negative side works on `e 2^64` and scales by `2^-64`
    /// last, so a result in the subnormal range rounds once (`x sigmoid(x)` would carry the
    /// subnormal sigmoid's error times `|x|`); below -120 the result is `-0`.
    #[inline(always)]
    fn silu(&mut self, x: Self::F) -> Self::F {
        let xb = self.f_to_bits(x);
        let sign = self.i(i32::MIN);
        let nax = self.ior(xb, sign);
        let nax = self.bits_to_f(nax);
        let lo = self.f(-120.0);
        let below = self.cmp(Cmp::Lt, nax, lo);
        let t = self.sel(below, lo, nax);
        let (tb, em1) = self.exp_reduced(t);
        let one = self.f(1.0);
        let y = self.add(em1, one);
        let s = self.pow2_of_magic(tb, 127 + 64);
        let e64 = self.mul(y, s);
        let k = self.f(f32::from_bits((127 - 64) << 23));
        let e = self.mul(e64, k);
        let d = self.add(one, e);
        let pos_r = self.div(x, d);
        let xe = self.mul(x, e64);
        let q = self.div(xe, d);
        let neg_r = self.mul(q, k);
        let zero = self.f(0.0);
        let neg = self.cmp(Cmp::Lt, x, zero);
        let r = self.sel(neg, neg_r, pos_r);
        let mz = self.f(-0.0);
        let tiny = self.cmp(Cmp::Lt, x, lo);
        self.sel(tiny, mz, r)
    }

    /// Rational approximations of `erf` and `erfc` (FreeBSD `s_erff.c`, branch-free: every
    /// range is computed and the lane's own is selected). Returns `(erf(x), erfc(x))`.
    ///
    /// - `|x| < 0.84375`: `erf = x + x R(x^2)/S(x^2)`;
    /// - `|x| < 1.25`: `erf = erx + P(s)/Q(s)`, `s = |x| - 1`;
    /// - `|x| < 28`: `erfc = exp(-z^2 - 0.5625) exp((z - |x|)(z + |x|) + R(1/x^2)/S(1/x^2)) / |x|`
    ///   with `z` = `|x|` cut to 12 bits (so `z^2` is exact), two coefficient sets split at
    ///   `1/0.35`; `erf = 1 - erfc`;
    /// - beyond, `erf = +-1`, `erfc` 0 or 2.
    ///
    /// With `halve`, the argument is `x / sqrt 2` (for GELU): the tail's `exp(-a^2)` is then
    /// taken from `x` itself (`a^2 = x^2 / 2`, exact through the 12-bit cut of `x`), so the
    /// rounding of `x / sqrt 2` does not cost `a^2` ulps in the left tail.
    #[inline(always)]
    fn erf_erfc(&mut self, x0: Self::F, halve: bool) -> (Self::F, Self::F) {
        const ERX: f32 = 8.450_629_115e-1;
        let zero = self.f(0.0);
        let one = self.f(1.0);
        let x = if halve {
            let k = self.f(std::f32::consts::FRAC_1_SQRT_2);
            self.mul(x0, k)
        } else {
            x0
        };
        let ax = self.abs(x);
        // |x| < 0.84375
        let z = self.mul(x, x);
        let r = self.poly(
            z,
            &[
                -2.376_301_745_2e-5,
                -5.770_270_247_0e-3,
                -2.848_174_981_8e-2,
                -3.250_420_987_6e-1,
                1.283_791_661_3e-1,
            ],
        );
        let s = self.poly(
            z,
            &[
                -3.960_228_241_3e-6,
                1.324_947_370_4e-4,
                5.081_306_211_7e-3,
                6.502_225_250_0e-2,
                3.979_172_110_6e-1,
                1.0,
            ],
        );
        let y = self.div(r, s);
        let small_erf = self.fma(x, y, x);
        // erfc there: 1 - (x + x y) for x < 1/4, else 0.5 - (x - 0.5 + x y)
        let xy = self.mul(x, y);
        let half = self.f(0.5);
        let xh = self.sub(x, half);
        let t = self.add(xh, xy);
        let small_erfc_hi = self.sub(half, t);
        let small_erfc_lo = self.sub(one, small_erf);
        let quarter = self.f(0.25);
        let lt_q = self.cmp(Cmp::Lt, x, quarter);
        let small_erfc = self.sel(lt_q, small_erfc_lo, small_erfc_hi);
        // |x| in [0.84375, 1.25)
        let sm = self.sub(ax, one);
        let p = self.poly(
            sm,
            &[
                -2.166_375_517_8e-3,
                3.547_830_507_2e-2,
                -1.108_946_949_2e-1,
                3.183_466_196_1e-1,
                -3.722_078_800_2e-1,
                4.148_561_060_4e-1,
                -2.362_118_568_3e-3,
            ],
        );
        let q = self.poly(
            sm,
            &[
                1.198_450_010_3e-2,
                1.363_708_358_3e-2,
                1.261_712_163_7e-1,
                7.182_865_589_9e-2,
                5.403_979_420_7e-1,
                1.064_208_820_5e-1,
                1.0,
            ],
        );
        let pq = self.div(p, q);
        let erx = self.f(ERX);
        let mid_erf = self.add(erx, pq); // of |x|
        let omerx = self.f(1.0 - ERX);
        let mid_erfc = self.sub(omerx, pq); // of |x|
                                            // |x| in [1.25, 28): erfc(|x|) with the coefficient set of |x|'s range.
        let cut = self.f(1.0 / 0.35);
        let near = self.cmp(Cmp::Lt, ax, cut);
        let ax2 = self.mul(ax, ax);
        let s2 = self.div(one, ax2);
        let ra: [f32; 8] = [
            -9.814_329_147_3e0,
            -8.128_743_743_9e1,
            -1.846_050_872_8e2,
            -1.623_966_674_8e2,
            -6.237_533_187_9e1,
            -1.055_862_617_5e1,
            -6.938_585_639_0e-1,
            -9.864_944_033_3e-3,
        ];
        let rb: [f32; 8] = [
            0.0,
            -4.835_191_955_6e2,
            -1.025_095_092_8e3,
            -6.375_664_672_9e2,
            -1.606_363_830_6e2,
            -1.775_795_555_1e1,
            -7.992_832_660_7e-1,
            -9.864_943_102_0e-3,
        ];
        let sa: [f32; 9] = [
            -6.042_441_353_2e-2,
            6.570_249_557_5e0,
            1.086_350_021_4e2,
            4.290_081_481_9e2,
            6.453_872_680_7e2,
            4.345_658_874_5e2,
            1.376_577_606_2e2,
            1.965_127_182_0e1,
            1.0,
        ];
        let sb: [f32; 9] = [
            0.0,
            -2.244_095_230_1e1,
            4.745_285_339_4e2,
            2.553_050_293_0e3,
            3.199_858_154_3e3,
            1.536_729_614_3e3,
            3.257_925_109_9e2,
            3.033_806_037_9e1,
            1.0,
        ];
        let rr = self.poly_of(near, s2, &ra, &rb);
        let ss = self.poly_of(near, s2, &sa, &sb);
        let rs = self.div(rr, ss);
        // exp(-a^2) = exp(-z^2 - 0.5625) exp((z - |x|)(z + |x|) + R/S) s^2 terms, `z` the
        // 12-bit cut of |x| (of `x0` when halving: a^2 = x0^2 / 2).
        let ax0 = if halve { self.abs(x0) } else { ax };
        let axb = self.f_to_bits(ax0);
        let keep = self.i(0xffff_e000_u32 as i32);
        let zb = self.iand(axb, keep);
        let zc = self.bits_to_f(zb);
        let k = self.f(-0.5625);
        let nz = self.neg(zc);
        let zs = if halve {
            let h = self.f(0.5);
            self.mul(zc, h)
        } else {
            zc
        };
        let e1a = self.fma(nz, zs, k);
        let e1 = self.exp(e1a);
        let d = self.sub(zc, ax0);
        let d = if halve {
            let h = self.f(0.5);
            self.mul(d, h)
        } else {
            d
        };
        let su = self.add(zc, ax0);
        let e2a = self.fma(d, su, rs);
        let e2 = self.exp(e2a);
        let e12 = self.mul(e1, e2);
        let big_erfc = self.div(e12, ax); // of |x|
        let big_erf = self.sub(one, big_erfc);
        // erf(|x|) and erfc(|x|) by range, then the sign.
        let lim_mid = self.f(1.25);
        let in_mid = self.cmp(Cmp::Lt, ax, lim_mid);
        let far = self.f(28.0);
        let is_far = self.cmp(Cmp::Ge, ax, far);
        let erf_a = self.sel(in_mid, mid_erf, big_erf);
        let erf_a = self.sel(is_far, one, erf_a);
        let erfc_a = self.sel(in_mid, mid_erfc, big_erfc);
        let erfc_a = self.sel(is_far, zero, erfc_a);
        let lim_small = self.f(0.843_75);
        let is_small = self.cmp(Cmp::Lt, ax, lim_small);
        let neg = self.cmp(Cmp::Lt, x, zero);
        let erf_n = self.neg(erf_a);
        let erf_s = self.sel(neg, erf_n, erf_a);
        let erf = self.sel(is_small, small_erf, erf_s);
        let two = self.f(2.0);
        let erfc_n = self.sub(two, erfc_a);
        let erfc_s = self.sel(neg, erfc_n, erfc_a);
        let erfc = self.sel(is_small, small_erfc, erfc_s);
        // NaN stays NaN (every range test above is false for it).
        let nan = self.cmp(Cmp::Ne, x, x);
        let erf = self.sel(nan, x, erf);
        let erfc = self.sel(nan, x, erfc);
        (erf, erfc)
    }

    /// Horner evaluation with per-lane coefficients: `a`'s where `m`, else `b`'s.
    #[inline(always)]
    fn poly_of(&mut self, m: Self::M, x: Self::F, a: &[f32], b: &[f32]) -> Self::F {
        let mut acc: Option<Self::F> = None;
        for (&ca, &cb) in a.iter().zip(b) {
            let va = self.f(ca);
            let vb = self.f(cb);
            let c = self.sel(m, va, vb);
            acc = Some(match acc {
                None => c,
                Some(acc) => self.fma(acc, x, c),
            });
        }
        acc.expect("coefficients")
    }

    /// The error function.
    #[inline(always)]
    fn erf(&mut self, x: Self::F) -> Self::F {
        self.erf_erfc(x, false).0
    }

    /// Exact GELU, `x Phi(x) = x erfc(-x / sqrt 2) / 2` (through `erfc`, so the left tail keeps
    /// its relative accuracy instead of cancelling in `1 + erf`).
    #[inline(always)]
    fn gelu(&mut self, x: Self::F) -> Self::F {
        let nx = self.neg(x);
        let c = self.erf_erfc(nx, true).1;
        let half = self.f(0.5);
        let hx = self.mul(x, half);
        self.mul(hx, c)
    }

    /// `sin(x + shift pi/2)` (`shift` 0: sin, 1: cos). `n = round(2x/pi)` by the 1.5*2^23
    /// trick, `r = x - n pi/2` in four FMA steps (pi/2 split in 8, 12, 24 and 24 bits: the first
    /// two steps are exact for `|n| < 2^16`), the Cephes `sinf` /
    /// `cosf` polynomials on `|r| <= pi/4`, the quadrant `n + shift` picks one and its sign.
    /// The reduction holds for `|x| <= 2^16`
    /// ([`SIN_COS_LIMIT`]); beyond it the result is NaN rather than a wrong number.
    #[inline(always)]
    fn sin_shifted(&mut self, x: Self::F, shift: i32) -> Self::F {
        let two_pi = self.f(std::f32::consts::FRAC_2_PI);
        let magic = self.f(MAGIC);
        let t = self.fma(x, two_pi, magic);
        let n = self.sub(t, magic);
        let p1 = self.f(-1.570_312_5);
        let p2 = self.f(-4.837_512_969_970_703_125e-4);
        let p3 = self.f(-7.549_790_126_404_332e-8);
        let p4 = self.f(1.715_124_510_005_881_9e-15);
        let r = self.fma(n, p1, x);
        let r = self.fma(n, p2, r);
        let r = self.fma(n, p3, r);
        let r = self.fma(n, p4, r);
        let z = self.mul(r, r);
        let ps = self.poly(
            z,
            &[-1.951_529_589_1e-4, 8.332_160_873_6e-3, -1.666_665_461_1e-1],
        );
        let rz = self.mul(r, z);
        let s = self.fma(ps, rz, r);
        let pc = self.poly(
            z,
            &[
                2.443_315_711_809_948e-5,
                -1.388_731_625_493_765e-3,
                4.166_664_568_298_827e-2,
            ],
        );
        let mhalf = self.f(-0.5);
        let one = self.f(1.0);
        let c0 = self.fma(z, mhalf, one);
        let zz = self.mul(z, z);
        let c = self.fma(pc, zz, c0);
        let tb = self.f_to_bits(t);
        let base = self.i((MAGIC.to_bits() as i32).wrapping_sub(shift));
        let q = self.isub(tb, base);
        let zero_i = self.i(0);
        let bit0 = self.i(1);
        let q0 = self.iand(q, bit0);
        let odd = self.ilt(zero_i, q0);
        let y = self.sel(odd, c, s);
        let bit1 = self.i(2);
        let q1 = self.iand(q, bit1);
        let flip = self.ilt(zero_i, q1);
        let ny = self.neg(y);
        let y = self.sel(flip, ny, y);
        let ax = self.abs(x);
        let lim = self.f(SIN_COS_LIMIT);
        let ok = self.cmp(Cmp::Le, ax, lim);
        let nan = self.f(f32::NAN);
        self.sel(ok, y, nan)
    }

    #[inline(always)]
    fn sin(&mut self, x: Self::F) -> Self::F {
        self.sin_shifted(x, 0)
    }

    #[inline(always)]
    fn cos(&mut self, x: Self::F) -> Self::F {
        self.sin_shifted(x, 1)
    }

    /// `atan(x)` (Cephes `atanf`): `|x|` reduced to `[0, tan(pi/8)]` by `atan x = pi/2 -
    /// atan(1/x)` above `tan(3pi/8)` and `pi/4 + atan((x - 1)/(x + 1))` above `tan(pi/8)`,
    /// then a degree-4 polynomial in `x^2`; the sign of `x` put back.
    #[inline(always)]
    fn atan(&mut self, x: Self::F) -> Self::F {
        let ax = self.abs(x);
        let one = self.f(1.0);
        let zero = self.f(0.0);
        let t3 = self.f(2.414_213_562_373_095);
        let t1 = self.f(0.414_213_562_373_095);
        let big = self.cmp(Cmp::Gt, ax, t3);
        let mid = self.cmp(Cmp::Gt, ax, t1);
        let mone = self.f(-1.0);
        let inv = self.div(mone, ax);
        let am1 = self.sub(ax, one);
        let ap1 = self.add(ax, one);
        let red = self.div(am1, ap1);
        let xr = self.sel(mid, red, ax);
        let xr = self.sel(big, inv, xr);
        let q4 = self.f(std::f32::consts::FRAC_PI_4);
        let q2 = self.f(std::f32::consts::FRAC_PI_2);
        let y0 = self.sel(mid, q4, zero);
        let y0 = self.sel(big, q2, y0);
        let z = self.mul(xr, xr);
        let p = self.poly(
            z,
            &[
                8.053_744_495_38e-2,
                -1.387_768_560_32e-1,
                1.997_771_064_78e-1,
                -3.333_294_915_39e-1,
            ],
        );
        let zx = self.mul(z, xr);
        let y = self.fma(p, zx, xr);
        let y = self.add(y0, y);
        let neg = self.cmp(Cmp::Lt, x, zero);
        let ny = self.neg(y);
        let y = self.sel(neg, ny, y);
        // NaN: every test above is false, and `y` is NaN through `xr`.
        y
    }
}

/// Beyond this `|x|`, [`Lanes::sin`] and [`Lanes::cos`] give NaN: the three-part reduction by
/// `pi/2` is no longer accurate (an f32 can be as close to a multiple of `pi/2` as its
/// reduction error).
pub const SIN_COS_LIMIT: f32 = 65_536.0;

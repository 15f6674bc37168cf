//! Elementary functions written once against [`Lanes`], for every kernel backend.
//!
//! [`Lanes`] is the handful of lane-wise primitives a backend provides (float arithmetic, bit
//! casts, integer shifts, compare masks, selects); the transcendentals are provided methods
//! built from them, so the Cranelift emitter ([`ClifLanes`]: one `f32` or an `f32x4`, as IR)
//! and the AVX-512 evaluator (`crate::avx512`: sixteen lanes, computed directly) run the same
//! algorithm with the same constants and give bit-identical results.
//!
//! There are no transcendental instructions to lean on, so `exp`, `log`, `tanh` and
//! `sigmoid` are range-reduced polynomials (Cephes `expf`/`logf` coefficients) evaluated with
//! FMA. Measured accuracy against the correctly rounded f64 result, over every 997th f32 bit
//! pattern plus edge values (see `tests/math.rs`), identical on every path:
//!
//! | function | max error |
//! |---|---|
//! | `exp` | 1 ulp |
//! | `log` | 1 ulp |
//! | `tanh` | 2 ulp |
//! | `sigmoid` | 2 ulp |
//!
//! `sqrt`, `recip`, `abs`, `neg`, `min`, `max`, `relu` and the comparisons are exact (correctly
//! rounded). `pow` with a constant integer exponent `|n| <= 16` ([`Lanes::powi`]) is within
//! about `(|n| + 1) / 2` ulp; the general `pow` ([`Lanes::pow`]) is `exp(b ln a)` in f32 and
//! loses accuracy with `|b ln a|` (3 ulp for `|b ln a| <= 2`, about `2 |b ln a|` ulp beyond).
// The Cephes coefficients are kept as published (their f32 rounding is what is used).
#![allow(clippy::excessive_precision)]

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{types, InstBuilder, MemFlagsData, Type, Value};
use cranelift_frontend::FunctionBuilder;
use trellis_ir::{Binary, Unary};

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
        // (Not `array::map`: it is not inlined, which the AVX-512 backend needs.)
        let a0 = self.f(1.987_569_15e-4);
        let a1 = self.f(1.398_199_950_7e-3);
        let a2 = self.f(8.333_451_907_3e-3);
        let a3 = self.f(4.166_579_589_4e-2);
        let a4 = self.f(1.666_666_545_9e-1);
        let a5 = self.f(5.000_000_120_1e-1);
        let p01 = self.fma(a0, r, a1);
        let p23 = self.fma(a2, r, a3);
        let p45 = self.fma(a4, r, a5);
        let q = self.fma(p01, z, p23);
        let p = self.fma(q, z, p45);
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
}

/// One unary node of a `ScalarFn` on any backend.
#[inline(always)]
pub fn unary<L: Lanes>(l: &mut L, f: Unary, x: L::F) -> L::F {
    match f {
        Unary::Neg => l.neg(x),
        Unary::Exp => l.exp(x),
        Unary::Log => l.log(x),
        Unary::Sqrt => l.sqrt(x),
        Unary::Tanh => l.tanh(x),
        Unary::Sigmoid => l.sigmoid(x),
        Unary::Abs => l.abs(x),
        Unary::Recip => {
            let one = l.f(1.0);
            l.div(one, x)
        }
        Unary::Relu => l.relu(x),
    }
}

/// One binary node of a `ScalarFn` on any backend (`Pow` by a small integer constant is
/// [`Lanes::powi`], chosen by the caller, which knows the operand is a constant).
#[inline(always)]
pub fn binary<L: Lanes>(l: &mut L, f: Binary, x: L::F, y: L::F) -> L::F {
    let cmp = |l: &mut L, cc| {
        let m = l.cmp(cc, x, y);
        l.flag(m)
    };
    match f {
        Binary::Add => l.add(x, y),
        Binary::Sub => l.sub(x, y),
        Binary::Mul => l.mul(x, y),
        Binary::Div => l.div(x, y),
        Binary::Max => l.max(x, y),
        Binary::Min => l.min(x, y),
        Binary::Pow => l.pow(x, y),
        Binary::Lt => cmp(l, Cmp::Lt),
        Binary::Le => cmp(l, Cmp::Le),
        Binary::Gt => cmp(l, Cmp::Gt),
        Binary::Ge => cmp(l, Cmp::Ge),
        Binary::Eq => cmp(l, Cmp::Eq),
        Binary::Ne => cmp(l, Cmp::Ne),
    }
}

/// [`Lanes`] as Cranelift IR: `ty` is `F32` or `F32X4`; every value is a `Value` (a mask is an
/// `i8` truth value on the scalar path, an all-ones/all-zeros `i32x4` on the vector path).
pub struct ClifLanes<'a, 'b> {
    pub b: &'a mut FunctionBuilder<'b>,
    pub ty: Type,
    /// Use the `fma` instruction (the host has FMA); otherwise multiply then add.
    pub fma: bool,
}

impl<'a, 'b> ClifLanes<'a, 'b> {
    pub fn new(b: &'a mut FunctionBuilder<'b>, ty: Type, fma: bool) -> Self {
        debug_assert!(ty == types::F32 || ty == types::F32X4);
        ClifLanes { b, ty, fma }
    }

    fn vector(&self) -> bool {
        self.ty.is_vector()
    }

    /// The integer type with the lanes of `ty`.
    fn ity(&self) -> Type {
        if self.vector() {
            types::I32X4
        } else {
            types::I32
        }
    }

    /// A four-lane constant from the function's constant pool.
    fn pool(&mut self, ty: Type, bits: u32) -> Value {
        let bytes: Vec<u8> = std::iter::repeat_n(bits.to_le_bytes(), 4)
            .flatten()
            .collect();
        let h = self
            .b
            .func
            .dfg
            .constants
            .insert(cranelift_codegen::ir::ConstantData::from(bytes));
        self.b.ins().vconst(ty, h)
    }
}

impl Lanes for ClifLanes<'_, '_> {
    type F = Value;
    type I = Value;
    type M = Value;

    fn f(&mut self, c: f32) -> Value {
        if self.vector() {
            // A constant-pool load (one instruction, often folded into its user) rather than a
            // scalar constant moved and shuffled into every lane.
            self.pool(self.ty, c.to_bits())
        } else {
            self.b.ins().f32const(c)
        }
    }
    fn i(&mut self, c: i32) -> Value {
        if self.vector() {
            self.pool(types::I32X4, c as u32)
        } else {
            self.b.ins().iconst(types::I32, i64::from(c))
        }
    }
    fn f_to_bits(&mut self, x: Value) -> Value {
        let t = self.ity();
        self.b.ins().bitcast(t, MemFlagsData::new(), x)
    }
    fn bits_to_f(&mut self, x: Value) -> Value {
        self.b.ins().bitcast(self.ty, MemFlagsData::new(), x)
    }
    fn add(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fadd(a, b)
    }
    fn sub(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fsub(a, b)
    }
    fn mul(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fmul(a, b)
    }
    fn div(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fdiv(a, b)
    }
    fn fma(&mut self, a: Value, b: Value, c: Value) -> Value {
        if self.fma {
            self.b.ins().fma(a, b, c)
        } else {
            let p = self.b.ins().fmul(a, b);
            self.b.ins().fadd(p, c)
        }
    }
    fn neg(&mut self, x: Value) -> Value {
        self.b.ins().fneg(x)
    }
    fn abs(&mut self, x: Value) -> Value {
        self.b.ins().fabs(x)
    }
    fn sqrt(&mut self, x: Value) -> Value {
        self.b.ins().sqrt(x)
    }
    fn floor(&mut self, x: Value) -> Value {
        self.b.ins().floor(x)
    }
    /// Cranelift's `fmax`/`fmin` propagate NaN and order `-0 < +0`.
    fn max(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fmax(a, b)
    }
    fn min(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fmin(a, b)
    }
    fn cmp(&mut self, cc: Cmp, a: Value, b: Value) -> Value {
        let cc = match cc {
            Cmp::Lt => FloatCC::LessThan,
            Cmp::Le => FloatCC::LessThanOrEqual,
            Cmp::Gt => FloatCC::GreaterThan,
            Cmp::Ge => FloatCC::GreaterThanOrEqual,
            Cmp::Eq => FloatCC::Equal,
            // Unordered or not equal: true with a NaN.
            Cmp::Ne => FloatCC::NotEqual,
        };
        self.b.ins().fcmp(cc, a, b)
    }
    /// icmp masks have the same type as fcmp masks on both paths (i8 / i32x4).
    fn ilt(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().icmp(IntCC::SignedLessThan, a, b)
    }
    fn mask_and(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().band(a, b)
    }
    fn mask_or(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().bor(a, b)
    }
    fn mask_not(&mut self, a: Value) -> Value {
        self.b.ins().bnot(a)
    }
    fn sel(&mut self, m: Value, a: Value, b: Value) -> Value {
        if self.vector() {
            let m = self.b.ins().bitcast(self.ty, MemFlagsData::new(), m);
            self.b.ins().bitselect(m, a, b)
        } else {
            self.b.ins().select(m, a, b)
        }
    }
    fn flag(&mut self, m: Value) -> Value {
        if self.vector() {
            let one = self.i(1.0f32.to_bits() as i32);
            let v = self.b.ins().band(m, one);
            self.bits_to_f(v)
        } else {
            let one = self.f(1.0);
            let zero = self.f(0.0);
            self.b.ins().select(m, one, zero)
        }
    }
    fn iadd(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().iadd(a, b)
    }
    fn isub(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().isub(a, b)
    }
    fn iand(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().band(a, b)
    }
    fn ior(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().bor(a, b)
    }
    fn shl(&mut self, a: Value, n: u8) -> Value {
        self.b.ins().ishl_imm_u(a, i64::from(n))
    }
    fn ushr(&mut self, a: Value, n: u8) -> Value {
        self.b.ins().ushr_imm_u(a, i64::from(n))
    }
    fn sshr(&mut self, a: Value, n: u8) -> Value {
        self.b.ins().sshr_imm_u(a, i64::from(n))
    }
    fn i_to_f(&mut self, a: Value) -> Value {
        let ft = self.ty;
        self.b.ins().fcvt_from_sint(ft, a)
    }
}

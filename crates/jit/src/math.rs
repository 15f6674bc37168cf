//! Elementary functions emitted as Cranelift IR, shared by the f32x4 and the scalar f32 paths.
//!
//! Cranelift has no transcendental instructions, so `exp`, `log`, `tanh` and `sigmoid` are
//! range-reduced polynomials (Cephes `expf`/`logf`/`tanhf` coefficients) evaluated with FMA.
//! Every emitter is written once against [`Lanes`], which hides whether a value is one `f32` or
//! an `f32x4` (constants are splatted, masks are `i8` or `i32x4`, selects are `select` or
//! `bitselect`).
//!
//! Measured accuracy against the correctly rounded f64 result, over every 997th f32 bit
//! pattern plus edge values (see `tests/kernel.rs`), identical on both paths:
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

/// Emits lane-generic float code into a function under construction.
///
/// `ty` is `F32` or `F32X4`. A *mask* is the result of [`Lanes::cmp`]: an `i8` truth value on
/// the scalar path, an all-ones/all-zeros `i32x4` on the vector path.
pub struct Lanes<'a, 'b> {
    pub b: &'a mut FunctionBuilder<'b>,
    pub ty: Type,
    /// Use the `fma` instruction (the host has FMA); otherwise multiply then add.
    pub fma: bool,
}

const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer in the low bits

/// How `exp` scales its polynomial by `2^n`, by the range of `n` its caller guarantees.
#[derive(Clone, Copy)]
enum Scale {
    /// `n` in `[-126, 127]`: one factor.
    Normal,
    /// `n` in `[-150, 0]`: a shifted factor and a constant one (subnormal results round once).
    NonPos,
    /// `n` in `[-150, 128]`: two factors of `2^(n/2)` (overflow to inf and subnormals).
    Full,
}

impl<'a, 'b> Lanes<'a, 'b> {
    pub fn new(b: &'a mut FunctionBuilder<'b>, ty: Type, fma: bool) -> Self {
        debug_assert!(ty == types::F32 || ty == types::F32X4);
        Lanes { b, ty, fma }
    }

    fn vector(&self) -> bool {
        self.ty.is_vector()
    }

    /// The integer type with the lanes of `ty`.
    pub fn ity(&self) -> Type {
        if self.vector() {
            types::I32X4
        } else {
            types::I32
        }
    }

    /// A float constant in every lane.
    pub fn f(&mut self, c: f32) -> Value {
        if self.vector() {
            // A constant-pool load (one instruction, often folded into its user) rather than a
            // scalar constant moved and shuffled into every lane.
            self.pool(self.ty, c.to_bits())
        } else {
            self.b.ins().f32const(c)
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

    /// An integer constant in every lane.
    pub fn i(&mut self, c: i32) -> Value {
        if self.vector() {
            self.pool(types::I32X4, c as u32)
        } else {
            self.b.ins().iconst(types::I32, i64::from(c))
        }
    }

    pub fn to_bits(&mut self, x: Value) -> Value {
        let t = self.ity();
        self.b.ins().bitcast(t, MemFlagsData::new(), x)
    }

    pub fn from_bits(&mut self, x: Value) -> Value {
        self.b.ins().bitcast(self.ty, MemFlagsData::new(), x)
    }

    pub fn add(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fadd(a, b)
    }
    pub fn sub(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fsub(a, b)
    }
    pub fn mul(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fmul(a, b)
    }
    pub fn div(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fdiv(a, b)
    }

    /// `a * b + c`, fused when the host has FMA.
    pub fn fma(&mut self, a: Value, b: Value, c: Value) -> Value {
        if self.fma {
            self.b.ins().fma(a, b, c)
        } else {
            let p = self.b.ins().fmul(a, b);
            self.b.ins().fadd(p, c)
        }
    }

    /// Horner evaluation of `coeffs[0] * x^(n-1) + ... + coeffs[n-1]` with FMA.
    pub fn poly(&mut self, x: Value, coeffs: &[f32]) -> Value {
        let mut acc = self.f(coeffs[0]);
        for &c in &coeffs[1..] {
            let cv = self.f(c);
            acc = self.fma(acc, x, cv);
        }
        acc
    }

    /// A comparison mask.
    pub fn cmp(&mut self, cc: FloatCC, a: Value, b: Value) -> Value {
        self.b.ins().fcmp(cc, a, b)
    }

    pub fn mask_or(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().bor(a, b)
    }

    pub fn mask_and(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().band(a, b)
    }

    /// Lane-wise `if m { a } else { b }` for a mask `m`.
    pub fn sel(&mut self, m: Value, a: Value, b: Value) -> Value {
        if self.vector() {
            let m = self.b.ins().bitcast(self.ty, MemFlagsData::new(), m);
            self.b.ins().bitselect(m, a, b)
        } else {
            self.b.ins().select(m, a, b)
        }
    }

    /// A mask as a float: 1.0 where true, 0.0 where false.
    pub fn flag(&mut self, m: Value) -> Value {
        if self.vector() {
            let one = self.i(1.0f32.to_bits() as i32);
            let v = self.b.ins().band(m, one);
            self.from_bits(v)
        } else {
            let one = self.f(1.0);
            let zero = self.f(0.0);
            self.b.ins().select(m, one, zero)
        }
    }

    /// `max(x, 0)`, NaN-propagating (Cranelift's `fmax` propagates NaN).
    pub fn relu(&mut self, x: Value) -> Value {
        let z = self.f(0.0);
        self.b.ins().fmax(x, z)
    }

    /// `if c != 0 { a } else { b }` (a NaN condition counts as nonzero, as in `ScalarFn::eval`).
    pub fn select_nonzero(&mut self, c: Value, a: Value, b: Value) -> Value {
        let z = self.f(0.0);
        let m = self.cmp(FloatCC::NotEqual, c, z);
        self.sel(m, a, b)
    }

    /// `|mag|` with the sign of `sign` (bit operations: x64 has no vector `fcopysign`).
    pub fn copysign(&mut self, mag: Value, sign: Value) -> Value {
        let m = self.to_bits(mag);
        let s = self.to_bits(sign);
        let sb = self.i(i32::MIN);
        let mb = self.i(i32::MAX);
        let s = self.b.ins().band(s, sb);
        let m = self.b.ins().band(m, mb);
        let r = self.b.ins().bor(m, s);
        self.from_bits(r)
    }

    /// `2^n` for integer lanes `n` in `[-126, 127]`.
    fn pow2i(&mut self, n: Value) -> Value {
        let bias = self.i(127);
        let e = self.b.ins().iadd(n, bias);
        let e = self.b.ins().ishl_imm_u(e, 23);
        self.from_bits(e)
    }

    /// `exp(x)`: max 1 ulp. `n = round(x / ln2)` by the 1.5*2^23 trick, Cody-Waite reduction
    /// `r = x - n ln2` (|r| <= ln2/2), Cephes degree-7 polynomial, then `* 2^n` as two
    /// power-of-two factors so the subnormal range rounds once and `x > ln(FLT_MAX)` overflows to
    /// inf. Inputs are clamped to `[-104, 89]` first (NaN stays NaN).
    pub fn exp(&mut self, x: Value) -> Value {
        let hi = self.f(89.0);
        let lo = self.f(-104.0);
        // Compare-and-select clamps: NaN fails both tests and passes through, in three
        // instructions each instead of the long NaN-exact fmin/fmax sequences.
        let above = self.cmp(FloatCC::GreaterThan, x, hi);
        let x = self.sel(above, hi, x);
        let below = self.cmp(FloatCC::LessThan, x, lo);
        let x = self.sel(below, lo, x);
        self.exp_core(x, Scale::Full)
    }

    /// `exp(x)` for `x <= 0` (or NaN): only the lower clamp.
    pub fn exp_nonpos(&mut self, x: Value) -> Value {
        let lo = self.f(-104.0);
        let below = self.cmp(FloatCC::LessThan, x, lo);
        let x = self.sel(below, lo, x);
        self.exp_core(x, Scale::NonPos)
    }

    /// `exp(x)` for `x` the caller keeps in `[-87, 88]` (normal results): no clamps and one
    /// power-of-two factor. Same polynomial, same 1 ulp.
    pub fn exp_normal(&mut self, x: Value) -> Value {
        self.exp_core(x, Scale::Normal)
    }

    /// Range reduction, polynomial and scaling by `2^n` (see [`Scale`]).
    fn exp_core(&mut self, x: Value, scale: Scale) -> Value {
        let (tb, em1) = self.exp_reduced(x);
        let one = self.f(1.0);
        let y = self.add(em1, one);
        match scale {
            Scale::Normal => {
                // 2^n: exponent bits n + 127 = tb - MAGIC + 127, one add.
                let s = self.pow2_of_magic(tb, 127);
                self.mul(y, s)
            }
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
                let ni = self.b.ins().isub(tb, mb);
                let n1 = self.b.ins().sshr_imm_u(ni, 1);
                let n2 = self.b.ins().isub(ni, n1);
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
    fn exp_reduced(&mut self, x: Value) -> (Value, Value) {
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
        let [a0, a1, a2, a3, a4, a5] = [
            1.987_569_15e-4,
            1.398_199_950_7e-3,
            8.333_451_907_3e-3,
            4.166_579_589_4e-2,
            1.666_666_545_9e-1,
            5.000_000_120_1e-1,
        ]
        .map(|c| self.f(c));
        let p01 = self.fma(a0, r, a1);
        let p23 = self.fma(a2, r, a3);
        let p45 = self.fma(a4, r, a5);
        let q = self.fma(p01, z, p23);
        let p = self.fma(q, z, p45);
        let em1 = self.fma(p, z, r);
        (self.to_bits(t), em1)
    }

    /// `2^(n + bias - 127)` as a float from `tb`, the bits of `1.5*2^23 + n`: the exponent field
    /// is `tb - bits(1.5*2^23) + bias`, one integer add of a folded constant and a shift.
    fn pow2_of_magic(&mut self, tb: Value, bias: i32) -> Value {
        let k = self.i(bias.wrapping_sub(MAGIC.to_bits() as i32));
        let e = self.b.ins().iadd(tb, k);
        let e = self.b.ins().ishl_imm_u(e, 23);
        self.from_bits(e)
    }

    /// `ln(x)`: max 1 ulp. `x = m 2^e` with `m` in `[sqrt(1/2), sqrt(2))` (subnormals are scaled
    /// by 2^23 first), Cephes degree-9 polynomial in `m - 1`, `e ln2` added in two parts.
    /// `ln(0) = -inf`, `ln(x < 0) = NaN`, `ln(inf) = inf`, `ln(NaN) = NaN`.
    pub fn log(&mut self, x: Value) -> Value {
        let tiny = self.f(f32::MIN_POSITIVE);
        let sub = self.cmp(FloatCC::LessThan, x, tiny);
        let two23 = self.f(8_388_608.0);
        let xs = self.mul(x, two23);
        let xs = self.sel(sub, xs, x);
        let bits = self.to_bits(xs);
        let ex = self.b.ins().ushr_imm_u(bits, 23);
        let b126 = self.i(126);
        let ex = self.b.ins().isub(ex, b126);
        let ft = self.ty;
        let e = self.b.ins().fcvt_from_sint(ft, ex);
        let c23 = self.f(23.0);
        let zero = self.f(0.0);
        let adj = self.sel(sub, c23, zero);
        let e = self.sub(e, adj);
        // m in [0.5, 1)
        let mant = self.i(0x007f_ffff);
        let half = self.i(0x3f00_0000);
        let mb = self.b.ins().band(bits, mant);
        let mb = self.b.ins().bor(mb, half);
        let m = self.from_bits(mb);
        let sqrth = self.f(std::f32::consts::FRAC_1_SQRT_2);
        let small = self.cmp(FloatCC::LessThan, m, sqrth);
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
        let is0 = self.cmp(FloatCC::Equal, x, zero);
        let r = self.sel(is0, ninf, r);
        let inf = self.f(f32::INFINITY);
        let isinf = self.cmp(FloatCC::Equal, x, inf);
        let r = self.sel(isinf, inf, r);
        let nan = self.f(f32::NAN);
        let ok = self.cmp(FloatCC::GreaterThanOrEqual, x, zero);
        self.sel(ok, r, nan)
    }

    /// `tanh(x)`: max 2 ulp. `tanh|x| = m / (m + 2)` with `m = expm1(2|x|)`, and
    /// `expm1(y) = 2^n expm1(r) + (2^n - 1)` (one FMA; exact `expm1(r)` when n = 0, so tanh keeps
    /// its relative accuracy near 0 and subnormals come back exactly); the sign of `x` is put
    /// back with an `or`. `|x|` is clamped at 9.1, where tanh rounds to exactly 1 in f32, so
    /// `2^n` stays normal. NaN gives NaN.
    pub fn tanh(&mut self, x: Value) -> Value {
        let ax = self.b.ins().fabs(x);
        let cap = self.f(9.1);
        let big_x = self.cmp(FloatCC::GreaterThan, ax, cap);
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
        let xb = self.to_bits(x);
        let sign = self.i(i32::MIN);
        let sx = self.b.ins().band(xb, sign);
        let qb = self.to_bits(q);
        let r = self.b.ins().bor(qb, sx);
        self.from_bits(r)
    }

    /// `1 / (1 + exp(-x))`: max 2 ulp. With `e = exp(-|x|)`: `1 / (1 + e)` for `x >= 0` and
    /// `e / (1 + e)` for `x < 0`, so there is no cancellation and the subnormal tail for
    /// `x < -87` is kept; the result saturates to exactly 1 for `x > 17` and to exactly 0 for
    /// `x < -104`. NaN gives NaN.
    pub fn sigmoid(&mut self, x: Value) -> Value {
        // -|x|: set the sign bit (one `or`).
        let xb = self.to_bits(x);
        let sign = self.i(i32::MIN);
        let nax = self.b.ins().bor(xb, sign);
        let nax = self.from_bits(nax);
        let e = self.exp_nonpos(nax);
        let one = self.f(1.0);
        let d = self.add(one, e);
        let zero = self.f(0.0);
        let pos = self.cmp(FloatCC::GreaterThanOrEqual, x, zero);
        let num = self.sel(pos, one, e);
        self.div(num, d)
    }

    /// `x^n` for a small integer constant `n` by square-and-multiply (`1 / x^|n|` for `n < 0`,
    /// 1 for `n == 0`). The sign of a negative base comes out right (`(-2)^3 = -8`); the error is
    /// a few ulp for large `|n|` (each squaring doubles the relative error: at most
    /// `(|n| - 1) / 2 + 1` ulp or so for `|n| <= 16`).
    pub fn powi(&mut self, x: Value, n: i32) -> Value {
        if n == 0 {
            return self.f(1.0);
        }
        let mut k = n.unsigned_abs();
        let mut base = x;
        let mut acc: Option<Value> = None;
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
    ///   `b` is an odd integer; a non-integer `b` with `a < 0` gives NaN;
    /// - zeros and infinities of `a` and `b` otherwise follow from `exp`/`log` (`0^b` is 0 for
    ///   `b > 0` and inf for `b < 0`, and so on), as in powf.
    ///
    /// What differs from powf: accuracy. `ln a` is rounded to f32 before the product, so the
    /// relative error grows with the size of `t = |b ln a|`. Measured (a in [0.01, 200], b in
    /// [-8, 8]): at most 3 ulp when `t <= 2`, 60 ulp at `t` about 35; expect roughly `2 t` ulp,
    /// i.e. up to ~180 ulp for results near the f32 overflow or underflow limits (`t` about 88),
    /// and less relative accuracy for subnormal results. The sign of a zero result for a `-0`
    /// base follows the odd-integer rule as in powf.
    pub fn pow(&mut self, a: Value, b: Value) -> Value {
        let aa = self.b.ins().fabs(a);
        let la = self.log(aa);
        let t = self.mul(b, la);
        let y = self.exp(t);
        // Is b an integer, and an odd one?
        let fb = self.b.ins().floor(b);
        let is_int = self.cmp(FloatCC::Equal, fb, b);
        let half = self.f(0.5);
        let hb = self.mul(b, half);
        let fhb = self.b.ins().floor(hb);
        let half_int = self.cmp(FloatCC::Equal, fhb, hb);
        let not_even = self.b.ins().bnot(half_int);
        let odd = self.mask_and(is_int, not_even);
        // Sign bit of a.
        let ab = self.to_bits(a);
        let zero_i = self.i(0);
        let neg = self.b.ins().icmp(IntCC::SignedLessThan, ab, zero_i);
        // icmp masks have the same type as fcmp masks on both paths (i8 / i32x4).
        let flip = self.mask_and(neg, odd);
        let ny = self.b.ins().fneg(y);
        let y = self.sel(flip, ny, y);
        let zero = self.f(0.0);
        let a_neg = self.cmp(FloatCC::LessThan, a, zero);
        let not_int = self.b.ins().bnot(is_int);
        let bad = self.mask_and(a_neg, not_int);
        let nan = self.f(f32::NAN);
        let y = self.sel(bad, nan, y);
        // One-results: b == 0, a == 1, a == -1 with b = +-inf.
        let one = self.f(1.0);
        let b0 = self.cmp(FloatCC::Equal, b, zero);
        let a1 = self.cmp(FloatCC::Equal, a, one);
        let inf = self.f(f32::INFINITY);
        let ab_ = self.b.ins().fabs(b);
        let binf = self.cmp(FloatCC::Equal, ab_, inf);
        let aa1 = self.cmp(FloatCC::Equal, aa, one);
        let m1 = self.mask_and(binf, aa1);
        let ones = self.mask_or(b0, a1);
        let ones = self.mask_or(ones, m1);
        self.sel(ones, one, y)
    }
}

//! The built-in elementwise functions, one declaration each.
//!
//! Each entry gives a function's name, its accuracy in the kernels (`ulp`: the largest error,
//! in f32 ulps against the correctly rounded f64 result, that the sweep in
//! `crates/jit/tests/math.rs` asserts on both backends), its f64 reference (`eval`, what the
//! interpreter computes), its lane implementation (`lanes`, over [`Lanes`], what both kernel
//! backends run) and its derivative (`vjp`, graph-building code, so gradients differentiate
//! again). Everything else follows from the table: the [`Unary`] / [`Binary`] enums and their
//! `ALL` lists, the `Graph` builder methods (`g.erf(x)?`), the ops' `vjp`, the Cranelift
//! dispatch and the AVX-512 loop tables (`for_each_unary!` / `for_each_binary!`). Adding a row
//! is the whole change; a row missing a piece does not compile.
//!
//! How to add a function, or a primitive from outside trellis: `crates/ir/src/ops/README.md`.
// The FreeBSD / Cephes coefficients are kept as published.
#![allow(clippy::excessive_precision)]

use crate::lanes::{Cmp, Lanes, SIN_COS_LIMIT};
use crate::ops::{BinaryOp, UnaryOp};
use crate::{Graph, NodeId, Result};

macro_rules! functions {
    (
        unary {$(
            $(#[$ud:meta])*
            $U:ident $un:ident, ulp $uu:literal,
            eval |$ux:ident| $ue:expr,
            lanes |$ul:ident, $ulx:ident| $ula:expr,
            vjp |$ug:ident, $uxi:ident, $uy:ident, $udy:ident| $uv:expr;
        )*}
        binary {$(
            $(#[$bd:meta])*
            $B:ident $bn:literal $bm:ident,
            eval |$ba:ident, $bb:ident| $be:expr,
            lanes |$bl:ident, $bla:ident, $blb:ident| $blanes:expr,
            vjp |$bg:ident, $bai:ident, $bbi:ident, $by:ident, $bdy:ident| $bv:expr;
        )*}
    ) => {
        /// One-argument scalar functions (the rows of [`crate::functions`]).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Unary {$( $(#[$ud])* $U, )*}

        /// Two-argument scalar functions. Comparisons give 1.0 for true, 0.0 for false.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Binary {$( $(#[$bd])* $B, )*}

        impl Unary {
            /// Every function, in declaration order (`ALL[f.index()] == f`).
            pub const ALL: [Unary; [$(Unary::$U),*].len()] = [$(Unary::$U),*];
            /// The number of functions.
            pub const COUNT: usize = Self::ALL.len();

            /// This function's position in [`Unary::ALL`].
            pub fn index(self) -> usize {
                self as usize
            }
            /// The op's name (`"exp"`), also its builder method's.
            pub fn name(self) -> &'static str {
                match self {$( Unary::$U => stringify!($un), )*}
            }
            /// The largest error of the kernels, in f32 ulps (0: correctly rounded).
            pub fn ulp(self) -> u32 {
                match self {$( Unary::$U => $uu, )*}
            }
            /// The f64 reference.
            pub fn eval(self, x: f64) -> f64 {
                match self {$( Unary::$U => { let $ux = x; $ue } )*}
            }
            /// The lane implementation, on any backend.
            #[inline(always)]
            pub fn lanes<L: Lanes>(self, l: &mut L, x: L::F) -> L::F {
                match self {$( Unary::$U => { let ($ul, $ulx) = (&mut *l, x); $ula } )*}
            }
            /// The gradient of `x` given `y = f(x)` and the gradient `dy` of `y` (`None`: none
            /// flows, the function is piecewise constant).
            #[allow(unused_variables)]
            pub fn vjp(
                self,
                g: &mut Graph,
                x: NodeId,
                y: NodeId,
                dy: NodeId,
            ) -> Result<Option<NodeId>> {
                match self {$( Unary::$U => { let ($ug, $uxi, $uy, $udy) = (&mut *g, x, y, dy); $uv } )*}
            }
        }

        impl Binary {
            /// Every function, in declaration order (`ALL[f.index()] == f`).
            pub const ALL: [Binary; [$(Binary::$B),*].len()] = [$(Binary::$B),*];
            /// The number of functions.
            pub const COUNT: usize = Self::ALL.len();

            /// This function's position in [`Binary::ALL`].
            pub fn index(self) -> usize {
                self as usize
            }
            /// The op's name (`"maximum"`).
            pub fn name(self) -> &'static str {
                match self {$( Binary::$B => $bn, )*}
            }
            /// The f64 reference.
            pub fn eval(self, a: f64, b: f64) -> f64 {
                match self {$( Binary::$B => { let ($ba, $bb) = (a, b); $be } )*}
            }
            /// The lane implementation, on any backend (`Pow` by a small integer constant is
            /// [`Lanes::powi`], chosen by the backends, which see the constant).
            #[inline(always)]
            pub fn lanes<L: Lanes>(self, l: &mut L, a: L::F, b: L::F) -> L::F {
                match self {$( Binary::$B => { let ($bl, $bla, $blb) = (&mut *l, a, b); $blanes } )*}
            }
            /// The gradients of `a` and `b` given `y = f(a, b)` and `dy`, before broadcasting
            /// is summed away.
            #[allow(unused_variables)]
            pub fn vjp(
                self,
                g: &mut Graph,
                a: NodeId,
                b: NodeId,
                y: NodeId,
                dy: NodeId,
            ) -> Result<[Option<NodeId>; 2]> {
                match self {$( Binary::$B => {
                    let ($bg, $bai, $bbi, $by, $bdy) = (&mut *g, a, b, y, dy);
                    $bv
                } )*}
            }
        }

        impl Graph {
            $(
                #[doc = concat!("Elementwise `", stringify!($un), "(x)`.")]
                pub fn $un(&mut self, x: NodeId) -> Result<NodeId> {
                    self.apply(UnaryOp(Unary::$U), &[x])
                }
            )*
            $(
                #[doc = concat!("Elementwise `", $bn, "(a, b)` with broadcasting.")]
                pub fn $bm(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
                    self.apply(BinaryOp(Binary::$B), &[a, b])
                }
            )*
        }

        /// Calls `$m!(Neg Exp ...)` with every [`Unary`] variant: how a backend builds a table
        /// with one entry per function (`avx512.rs`), so the table cannot miss one.
        #[macro_export]
        macro_rules! for_each_unary {
            ($callback:ident) => { $callback!($($U)*) };
        }
        /// As [`for_each_unary!`], for [`Binary`].
        #[macro_export]
        macro_rules! for_each_binary {
            ($callback:ident) => { $callback!($($B)*) };
        }
    };
}

/// A comparison as a 1.0 / 0.0 flag.
#[inline(always)]
fn flag<L: Lanes>(l: &mut L, cc: Cmp, a: L::F, b: L::F) -> L::F {
    let m = l.cmp(cc, a, b);
    l.flag(m)
}

fn flag64(c: bool) -> f64 {
    if c {
        1.0
    } else {
        0.0
    }
}

/// IEEE 754-2019 `maximum`: NaN if either is NaN, and `+0 > -0` (`f64::max` leaves the sign
/// of a zero result unspecified; the kernels and the interpreter must agree on it).
pub(crate) fn maximum(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == b {
        f64::from_bits(a.to_bits() & b.to_bits())
    } else {
        a.max(b)
    }
}

/// IEEE 754-2019 `minimum`: NaN if either is NaN, and `-0 < +0`.
pub(crate) fn minimum(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == b {
        f64::from_bits(a.to_bits() | b.to_bits())
    } else {
        a.min(b)
    }
}

fn sigmoid64(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// `sin` / `cos` in the domain the kernels reduce exactly ([`SIN_COS_LIMIT`]), NaN beyond: the
/// interpreter and the kernels agree on it.
fn in_trig_domain(x: f64, y: f64) -> f64 {
    if x.abs() <= f64::from(SIN_COS_LIMIT) {
        y
    } else {
        f64::NAN
    }
}

functions! {
    unary {
        Neg neg, ulp 0,
            eval |x| -x,
            lanes |l, x| l.neg(x),
            vjp |g, x, y, dy| Ok(Some(g.neg(dy)?));
        Exp exp, ulp 1,
            eval |x| x.exp(),
            lanes |l, x| l.exp(x),
            // d exp(x) = dy exp(x)
            vjp |g, x, y, dy| Ok(Some(g.mul(dy, y)?));
        Log log, ulp 1,
            eval |x| x.ln(),
            lanes |l, x| l.log(x),
            vjp |g, x, y, dy| Ok(Some(g.div(dy, x)?));
        Sqrt sqrt, ulp 0,
            eval |x| x.sqrt(),
            lanes |l, x| l.sqrt(x),
            // d sqrt(x) = dy / (2 sqrt(x))
            vjp |g, x, y, dy| {
                let two = g.scalar_like(y, 2.0)?;
                let d = g.mul(two, y)?;
                Ok(Some(g.div(dy, d)?))
            };
        Tanh tanh, ulp 2,
            eval |x| x.tanh(),
            lanes |l, x| l.tanh(x),
            // d tanh(x) = dy (1 - tanh(x)^2)
            vjp |g, x, y, dy| {
                let one = g.scalar_like(y, 1.0)?;
                let sq = g.mul(y, y)?;
                let d = g.sub(one, sq)?;
                Ok(Some(g.mul(dy, d)?))
            };
        /// `1 / (1 + exp(-x))`
        Sigmoid sigmoid, ulp 2,
            eval |x| sigmoid64(x),
            lanes |l, x| l.sigmoid(x),
            // d sigmoid(x) = dy s (1 - s)
            vjp |g, x, y, dy| {
                let one = g.scalar_like(y, 1.0)?;
                let d = g.sub(one, y)?;
                let d = g.mul(y, d)?;
                Ok(Some(g.mul(dy, d)?))
            };
        Abs abs, ulp 0,
            eval |x| x.abs(),
            lanes |l, x| l.abs(x),
            // d |x| = dy sign(x)
            vjp |g, x, y, dy| {
                let zero = g.scalar_like(x, 0.0)?;
                let pos = g.gt(x, zero)?;
                let neg = g.lt(x, zero)?;
                let sign = g.sub(pos, neg)?;
                Ok(Some(g.mul(dy, sign)?))
            };
        /// `1 / x`
        Recip recip, ulp 0,
            eval |x| 1.0 / x,
            lanes |l, x| {
                let one = l.f(1.0);
                l.div(one, x)
            },
            // d (1/x) = -dy / x^2 = -dy y^2
            vjp |g, x, y, dy| {
                let sq = g.mul(y, y)?;
                let d = g.mul(dy, sq)?;
                Ok(Some(g.neg(d)?))
            };
        /// `max(x, 0)`, NaN-propagating (`relu(-0) = +0`)
        Relu relu, ulp 0,
            eval |x| maximum(x, 0.0),
            lanes |l, x| l.relu(x),
            // d relu(x) = dy [x > 0]
            vjp |g, x, y, dy| {
                let zero = g.scalar_like(x, 0.0)?;
                let m = g.gt(x, zero)?;
                Ok(Some(g.mul(dy, m)?))
            };
        /// `1 / sqrt(x)`
        Rsqrt rsqrt, ulp 1,
            eval |x| 1.0 / x.sqrt(),
            lanes |l, x| l.rsqrt(x),
            // d x^(-1/2) = -dy y^3 / 2
            vjp |g, x, y, dy| {
                let h = g.scalar_like(y, -0.5)?;
                let y2 = g.mul(y, y)?;
                let y3 = g.mul(y2, y)?;
                let d = g.mul(h, y3)?;
                Ok(Some(g.mul(dy, d)?))
            };
        /// `1` for `x > 0`, `-1` for `x < 0`, `x` for `+-0` and NaN
        Sign sign, ulp 0,
            eval |x| if x > 0.0 { 1.0 } else if x < 0.0 { -1.0 } else { x },
            lanes |l, x| l.sign(x),
            // piecewise constant
            vjp |g, x, y, dy| Ok(None);
        /// The error function
        Erf erf, ulp 2,
            eval |x| libm::erf(x),
            lanes |l, x| l.erf(x),
            // d erf(x) = dy 2/sqrt(pi) exp(-x^2)
            vjp |g, x, y, dy| {
                let x2 = g.mul(x, x)?;
                let n = g.neg(x2)?;
                let e = g.exp(n)?;
                let c = g.scalar_like(x, std::f64::consts::FRAC_2_SQRT_PI)?;
                let d = g.mul(c, e)?;
                Ok(Some(g.mul(dy, d)?))
            };
        /// `sin(x)` for `|x| <= 65536`, NaN beyond (see [`SIN_COS_LIMIT`])
        Sin sin, ulp 2,
            eval |x| in_trig_domain(x, x.sin()),
            lanes |l, x| l.sin(x),
            vjp |g, x, y, dy| {
                let c = g.cos(x)?;
                Ok(Some(g.mul(dy, c)?))
            };
        /// `cos(x)` for `|x| <= 65536`, NaN beyond (see [`SIN_COS_LIMIT`])
        Cos cos, ulp 2,
            eval |x| in_trig_domain(x, x.cos()),
            lanes |l, x| l.cos(x),
            vjp |g, x, y, dy| {
                let s = g.sin(x)?;
                let d = g.mul(dy, s)?;
                Ok(Some(g.neg(d)?))
            };
        Atan atan, ulp 3,
            eval |x| x.atan(),
            lanes |l, x| l.atan(x),
            // d atan(x) = dy / (1 + x^2)
            vjp |g, x, y, dy| {
                let x2 = g.mul(x, x)?;
                let one = g.scalar_like(x, 1.0)?;
                let s = g.add(one, x2)?;
                Ok(Some(g.div(dy, s)?))
            };
        /// `ln(1 + exp(x))`
        Softplus softplus, ulp 2,
            eval |x| maximum(x, 0.0) + (-x.abs()).exp().ln_1p(),
            lanes |l, x| l.softplus(x),
            // d softplus(x) = dy sigmoid(x)
            vjp |g, x, y, dy| {
                let s = g.sigmoid(x)?;
                Ok(Some(g.mul(dy, s)?))
            };
        /// Exact GELU, `x Phi(x)` (PyTorch's default `approximate='none'`)
        Gelu gelu, ulp 4,
            eval |x| 0.5 * x * libm::erfc(-x * std::f64::consts::FRAC_1_SQRT_2),
            lanes |l, x| l.gelu(x),
            // d gelu(x) = dy (Phi(x) + x phi(x))
            vjp |g, x, y, dy| {
                let k = g.scalar_like(x, std::f64::consts::FRAC_1_SQRT_2)?;
                let a = g.mul(x, k)?;
                let e = g.erf(a)?;
                let one = g.scalar_like(x, 1.0)?;
                let s = g.add(one, e)?;
                let half = g.scalar_like(x, 0.5)?;
                let cdf = g.mul(half, s)?;
                let x2 = g.mul(x, x)?;
                let mh = g.scalar_like(x, -0.5)?;
                let t = g.mul(mh, x2)?;
                let ex = g.exp(t)?;
                let c = g.scalar_like(x, 0.5 * std::f64::consts::FRAC_2_SQRT_PI
                    * std::f64::consts::FRAC_1_SQRT_2)?;
                let pdf = g.mul(c, ex)?;
                let xp = g.mul(x, pdf)?;
                let d = g.add(cdf, xp)?;
                Ok(Some(g.mul(dy, d)?))
            };
        /// `x sigmoid(x)` (SiLU, swish); `silu(-inf) = -0`, its limit
        Silu silu, ulp 3,
            eval |x| if x == f64::NEG_INFINITY { -0.0 } else { x * sigmoid64(x) },
            lanes |l, x| l.silu(x),
            // d silu(x) = dy s (1 + x (1 - s))
            vjp |g, x, y, dy| {
                let s = g.sigmoid(x)?;
                let one = g.scalar_like(x, 1.0)?;
                let oms = g.sub(one, s)?;
                let t = g.mul(x, oms)?;
                let u = g.add(one, t)?;
                let d = g.mul(s, u)?;
                Ok(Some(g.mul(dy, d)?))
            };
    }
    binary {
        Add "add" add,
            eval |a, b| a + b,
            lanes |l, a, b| l.add(a, b),
            vjp |g, a, b, y, dy| Ok([Some(dy), Some(dy)]);
        Sub "sub" sub,
            eval |a, b| a - b,
            lanes |l, a, b| l.sub(a, b),
            vjp |g, a, b, y, dy| Ok([Some(dy), Some(g.neg(dy)?)]);
        Mul "mul" mul,
            eval |a, b| a * b,
            lanes |l, a, b| l.mul(a, b),
            vjp |g, a, b, y, dy| Ok([Some(g.mul(dy, b)?), Some(g.mul(dy, a)?)]);
        Div "div" div,
            eval |a, b| a / b,
            lanes |l, a, b| l.div(a, b),
            // d(a / b) = (dy / b, -dy (a/b) / b)
            vjp |g, a, b, y, dy| {
                let da = g.div(dy, b)?;
                let t = g.mul(da, y)?;
                Ok([Some(da), Some(g.neg(t)?)])
            };
        /// NaN-propagating maximum, `+0 > -0` (IEEE 754-2019 `maximum`).
        Max "maximum" maximum,
            eval |a, b| maximum(a, b),
            lanes |l, a, b| l.max(a, b),
            // d max(a, b) = (dy [a >= b], dy [a < b]); ties go to a
            vjp |g, a, b, y, dy| {
                let m = g.ge(a, b)?;
                let n = g.lt(a, b)?;
                Ok([Some(g.mul(dy, m)?), Some(g.mul(dy, n)?)])
            };
        /// NaN-propagating minimum, `-0 < +0`.
        Min "minimum" minimum,
            eval |a, b| minimum(a, b),
            lanes |l, a, b| l.min(a, b),
            // d min(a, b) = (dy [a <= b], dy [a > b])
            vjp |g, a, b, y, dy| {
                let m = g.le(a, b)?;
                let n = g.gt(a, b)?;
                Ok([Some(g.mul(dy, m)?), Some(g.mul(dy, n)?)])
            };
        /// `a^b` (powf).
        Pow "pow" pow,
            eval |a, b| a.powf(b),
            lanes |l, a, b| l.pow(a, b),
            // d a^b = (dy b a^(b-1), dy a^b log a)
            vjp |g, a, b, y, dy| {
                let one = g.scalar_like(b, 1.0)?;
                let bm1 = g.sub(b, one)?;
                let p = g.pow(a, bm1)?;
                let da = g.mul(b, p)?;
                let da = g.mul(dy, da)?;
                let la = g.log(a)?;
                let db = g.mul(y, la)?;
                let db = g.mul(dy, db)?;
                Ok([Some(da), Some(db)])
            };
        // Comparisons are piecewise constant: no gradient.
        Lt "less" lt,
            eval |a, b| flag64(a < b),
            lanes |l, a, b| flag(l, Cmp::Lt, a, b),
            vjp |g, a, b, y, dy| Ok([None, None]);
        Le "less_equal" le,
            eval |a, b| flag64(a <= b),
            lanes |l, a, b| flag(l, Cmp::Le, a, b),
            vjp |g, a, b, y, dy| Ok([None, None]);
        Gt "greater" gt,
            eval |a, b| flag64(a > b),
            lanes |l, a, b| flag(l, Cmp::Gt, a, b),
            vjp |g, a, b, y, dy| Ok([None, None]);
        Ge "greater_equal" ge,
            eval |a, b| flag64(a >= b),
            lanes |l, a, b| flag(l, Cmp::Ge, a, b),
            vjp |g, a, b, y, dy| Ok([None, None]);
        Eq "equal" equal,
            eval |a, b| flag64(a == b),
            lanes |l, a, b| flag(l, Cmp::Eq, a, b),
            vjp |g, a, b, y, dy| Ok([None, None]);
        Ne "not_equal" not_equal,
            eval |a, b| flag64(a != b),
            lanes |l, a, b| flag(l, Cmp::Ne, a, b),
            vjp |g, a, b, y, dy| Ok([None, None]);
    }
}

impl Graph {
    /// `min(max(x, lo), hi)`, elementwise (NaN stays NaN). A composition rather than a
    /// function of its own: it fuses into one kernel with its neighbours anyway, and its
    /// gradient (`dy` where `lo <= x <= hi`) follows from `maximum`'s and `minimum`'s.
    pub fn clamp(&mut self, x: NodeId, lo: f64, hi: f64) -> Result<NodeId> {
        if lo.is_nan() || hi.is_nan() || lo > hi {
            return Err(crate::IrError::Invalid(format!(
                "clamp: bounds [{lo}, {hi}] are not an interval"
            )));
        }
        let lo = self.scalar_like(x, lo)?;
        let hi = self.scalar_like(x, hi)?;
        let m = self.maximum(x, lo)?;
        self.minimum(m, hi)
    }
}

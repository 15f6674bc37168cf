//! Scalar expressions: the elementwise form of an op, for fusion and the JIT.
//!
//! An elementwise op describes what it does to one element as a tiny expression DAG over its
//! inputs (`sigmoid(x)`, `a * b`, ...). The interpreter evaluates that expression in f64 over
//! broadcast inputs, fusion splices expressions of neighbouring ops into one, and the JIT compiles
//! the result to one loop. One definition of each op's arithmetic serves all three.
pub use crate::functions::{Binary, Unary};
use crate::prim::{LaneFn, Prim};
use rustc_hash::FxHashMap;
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

impl Unary {
    /// [`LaneFn::transcendental_depth`] of this function's lane code (recorded once).
    pub fn transcendental_depth(self) -> usize {
        static DEPTH: OnceLock<Vec<usize>> = OnceLock::new();
        DEPTH.get_or_init(|| {
            Unary::ALL
                .iter()
                .map(|&f| LaneFn::of_unary(f).transcendental_depth())
                .collect()
        })[self.index()]
    }
}

impl Binary {
    /// [`LaneFn::transcendental_depth`] of this function's lane code (recorded once; `pow`
    /// by a small integer constant runs as multiplications, see [`ScalarFn::small_int`]).
    pub fn transcendental_depth(self) -> usize {
        static DEPTH: OnceLock<Vec<usize>> = OnceLock::new();
        DEPTH.get_or_init(|| {
            Binary::ALL
                .iter()
                .map(|&f| LaneFn::of_binary(f).transcendental_depth())
                .collect()
        })[self.index()]
    }
}

/// A node of a scalar expression; operands index earlier nodes of the same [`ScalarFn`].
#[derive(Clone, Copy, Debug)]
pub enum Scalar {
    /// The i-th input of the expression.
    Input(u32),
    Const(f64),
    Unary(Unary, u32),
    Binary(Binary, u32, u32),
    /// `if c != 0 { a } else { b }`
    Select(u32, u32, u32),
    /// A primitive defined outside the built-in table, on its first `arity` operands.
    Prim(Prim, [u32; 3]),
}

impl Scalar {
    /// The nodes this node reads, in order.
    pub fn operands(self) -> impl Iterator<Item = u32> {
        let (ops, n) = match self {
            Scalar::Input(_) | Scalar::Const(_) => ([0; 3], 0),
            Scalar::Unary(_, a) => ([a, 0, 0], 1),
            Scalar::Binary(_, a, b) => ([a, b, 0], 2),
            Scalar::Select(c, a, b) => ([c, a, b], 3),
            Scalar::Prim(p, args) => (args, p.arity()),
        };
        ops.into_iter().take(n)
    }
}

// Structural equality, with constants compared by their bits (so the kernel cache can key on it).
impl PartialEq for Scalar {
    fn eq(&self, o: &Self) -> bool {
        use Scalar::*;
        match (self, o) {
            (Input(a), Input(b)) => a == b,
            (Const(a), Const(b)) => a.to_bits() == b.to_bits(),
            (Unary(f, a), Unary(g, b)) => f == g && a == b,
            (Binary(f, a, b), Binary(g, c, d)) => f == g && a == c && b == d,
            (Select(a, b, c), Select(d, e, f)) => a == d && b == e && c == f,
            (Prim(p, a), Prim(q, b)) => p == q && a == b,
            _ => false,
        }
    }
}
impl Eq for Scalar {}
impl Hash for Scalar {
    fn hash<H: Hasher>(&self, h: &mut H) {
        std::mem::discriminant(self).hash(h);
        match self {
            Scalar::Input(i) => i.hash(h),
            Scalar::Const(c) => c.to_bits().hash(h),
            Scalar::Unary(f, a) => (f, a).hash(h),
            Scalar::Binary(f, a, b) => (f, a, b).hash(h),
            Scalar::Select(a, b, c) => (a, b, c).hash(h),
            Scalar::Prim(p, a) => (p, a).hash(h),
        }
    }
}

/// A scalar expression DAG with `n_inputs` inputs and one or more outputs.
///
/// Nodes are in topological order and hash-consed: pushing a node that exists returns the
/// existing one, so composed expressions keep common subexpressions once.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ScalarFn {
    pub n_inputs: usize,
    pub nodes: Vec<Scalar>,
    pub outputs: Vec<u32>,
}

impl ScalarFn {
    /// An empty expression over `n_inputs` inputs (outputs are added with [`ScalarFn::output`]).
    pub fn new(n_inputs: usize) -> Self {
        ScalarFn {
            n_inputs,
            nodes: Vec::new(),
            outputs: Vec::new(),
        }
    }
    /// `f(x)`
    pub fn unary(f: Unary) -> Self {
        let mut e = Self::new(1);
        let x = e.input(0);
        let y = e.push(Scalar::Unary(f, x));
        e.output(y);
        e
    }
    /// `f(a, b)`
    pub fn binary(f: Binary) -> Self {
        let mut e = Self::new(2);
        let (a, b) = (e.input(0), e.input(1));
        let y = e.push(Scalar::Binary(f, a, b));
        e.output(y);
        e
    }

    pub fn input(&mut self, i: usize) -> u32 {
        assert!(i < self.n_inputs, "scalar input {i} of {}", self.n_inputs);
        self.push(Scalar::Input(i as u32))
    }
    pub fn constant(&mut self, c: f64) -> u32 {
        self.push(Scalar::Const(c))
    }
    pub fn output(&mut self, node: u32) {
        self.outputs.push(node);
    }

    /// Appends `s` unless an equal node exists (linear scan is fine: expressions are small,
    /// and [`ScalarFn::splice`] uses a hash map for large compositions).
    pub fn push(&mut self, s: Scalar) -> u32 {
        if let Some(i) = self.nodes.iter().position(|n| *n == s) {
            return i as u32;
        }
        self.nodes.push(s);
        (self.nodes.len() - 1) as u32
    }

    /// Inlines `other` with its inputs bound to nodes `args` of `self`; returns the nodes of
    /// `self` that compute `other`'s outputs. This is how fusion composes ops.
    pub fn splice(&mut self, other: &ScalarFn, args: &[u32]) -> Vec<u32> {
        let mut index = self.index();
        self.splice_indexed(&mut index, other, args)
    }

    /// Each node of `self` by its position: what [`ScalarFn::splice_indexed`] keeps current.
    pub fn index(&self) -> FxHashMap<Scalar, u32> {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (*n, i as u32))
            .collect()
    }

    /// [`ScalarFn::splice`] with the index of `self` (from [`ScalarFn::index`]) kept across
    /// calls: composing a group of k ops is then O(k), not O(k^2).
    pub fn splice_indexed(
        &mut self,
        index: &mut FxHashMap<Scalar, u32>,
        other: &ScalarFn,
        args: &[u32],
    ) -> Vec<u32> {
        assert_eq!(args.len(), other.n_inputs, "splice: argument count");
        debug_assert_eq!(index.len(), self.nodes.len(), "splice: a stale index");
        let mut map = Vec::with_capacity(other.nodes.len());
        for n in &other.nodes {
            let s = match *n {
                Scalar::Input(i) => {
                    map.push(args[i as usize]);
                    continue;
                }
                Scalar::Const(c) => Scalar::Const(c),
                Scalar::Unary(f, a) => Scalar::Unary(f, map[a as usize]),
                Scalar::Binary(f, a, b) => Scalar::Binary(f, map[a as usize], map[b as usize]),
                Scalar::Select(c, a, b) => {
                    Scalar::Select(map[c as usize], map[a as usize], map[b as usize])
                }
                Scalar::Prim(p, a) => {
                    let mut b = [0; 3];
                    for k in 0..p.arity() {
                        b[k] = map[a[k] as usize];
                    }
                    Scalar::Prim(p, b)
                }
            };
            let id = *index.entry(s).or_insert_with(|| {
                self.nodes.push(s);
                (self.nodes.len() - 1) as u32
            });
            map.push(id);
        }
        other.outputs.iter().map(|&o| map[o as usize]).collect()
    }

    /// Node `node` as a constant small integer (`|n| <= 16`): the exponents with which the
    /// backends run `pow` as [`crate::lanes::Lanes::powi`], a few multiplications.
    pub fn small_int(&self, node: u32) -> Option<i32> {
        match self.nodes[node as usize] {
            Scalar::Const(c) if c.fract() == 0.0 && c.abs() <= 16.0 => Some(c as i32),
            _ => None,
        }
    }

    /// The most range-reduced polynomials (exp, log, tanh, ...: tens of dependent instructions
    /// each) on one dependency chain of the expression, counted in the lane code each node
    /// runs ([`crate::prim::LaneFn::transcendental_depth`]): built-ins and outside primitives
    /// alike. Fusion cuts where one such chain would follow another.
    pub fn transcendental_depth(&self) -> usize {
        let mut d: Vec<usize> = Vec::with_capacity(self.nodes.len());
        for n in &self.nodes {
            let own = match *n {
                Scalar::Unary(f, _) => f.transcendental_depth(),
                Scalar::Binary(Binary::Pow, _, b) if self.small_int(b).is_some() => 0,
                Scalar::Binary(f, _, _) => f.transcendental_depth(),
                Scalar::Prim(p, _) => p.transcendental_depth(),
                Scalar::Input(_) | Scalar::Const(_) | Scalar::Select(..) => 0,
            };
            let m = n.operands().map(|o| d[o as usize]).max().unwrap_or(0);
            d.push(m + own);
        }
        self.outputs
            .iter()
            .map(|&o| d[o as usize])
            .max()
            .unwrap_or(0)
    }

    /// The expression as text: inputs are `x0, x1, ..`, a value used more than once is bound
    /// once (`t4 = sigmoid(x0)`), then one line per output (`y0 = t4 * x1`).
    pub fn formula(&self) -> String {
        let mut uses = vec![0usize; self.nodes.len()];
        for n in &self.nodes {
            for o in n.operands() {
                uses[o as usize] += 1;
            }
        }
        for &o in &self.outputs {
            uses[o as usize] += 1;
        }
        let mut text: Vec<String> = Vec::with_capacity(self.nodes.len());
        let mut lines: Vec<String> = Vec::new();
        let show = |text: &[String], i: u32| text[i as usize].clone();
        for (i, n) in self.nodes.iter().enumerate() {
            let t = match *n {
                Scalar::Input(k) => format!("x{k}"),
                Scalar::Const(c) => format!("{c}"),
                Scalar::Unary(f, a) => format!("{}({})", f.name(), show(&text, a)),
                Scalar::Binary(f, a, b) => {
                    let op = match f {
                        Binary::Add => Some("+"),
                        Binary::Sub => Some("-"),
                        Binary::Mul => Some("*"),
                        Binary::Div => Some("/"),
                        _ => None,
                    };
                    match op {
                        Some(op) => format!("({} {op} {})", show(&text, a), show(&text, b)),
                        None => format!("{}({}, {})", f.name(), show(&text, a), show(&text, b)),
                    }
                }
                Scalar::Select(c, a, b) => format!(
                    "select({}, {}, {})",
                    show(&text, c),
                    show(&text, a),
                    show(&text, b)
                ),
                Scalar::Prim(p, a) => {
                    let args: Vec<String> =
                        a[..p.arity()].iter().map(|&k| show(&text, k)).collect();
                    format!("{}({})", p.name(), args.join(", "))
                }
            };
            let shared = uses[i] > 1 && !matches!(n, Scalar::Input(_) | Scalar::Const(_));
            if shared {
                lines.push(format!("t{i} = {t}"));
                text.push(format!("t{i}"));
            } else {
                text.push(t);
            }
        }
        for (k, &o) in self.outputs.iter().enumerate() {
            lines.push(format!("y{k} = {}", show(&text, o)));
        }
        lines.join("; ")
    }

    /// Evaluates every node in f64 for one element; `out` receives the outputs.
    pub fn eval(&self, inputs: &[f64], out: &mut [f64]) {
        let mut v = Vec::with_capacity(self.nodes.len());
        for n in &self.nodes {
            let x = match *n {
                Scalar::Input(i) => inputs[i as usize],
                Scalar::Const(c) => c,
                Scalar::Unary(f, a) => f.eval(v[a as usize]),
                Scalar::Binary(f, a, b) => f.eval(v[a as usize], v[b as usize]),
                Scalar::Select(c, a, b) => {
                    if v[c as usize] != 0.0 {
                        v[a as usize]
                    } else {
                        v[b as usize]
                    }
                }
                Scalar::Prim(p, a) => {
                    let mut args = [0.0; 3];
                    for k in 0..p.arity() {
                        args[k] = v[a[k] as usize];
                    }
                    p.eval(&args[..p.arity()])
                }
            };
            v.push(x);
        }
        for (o, &i) in out.iter_mut().zip(&self.outputs) {
            *o = v[i as usize];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_composes_and_shares_subexpressions() {
        // e(x) = sigmoid(x) * (1 - sigmoid(x)), built by splicing sigmoid twice.
        let sig = ScalarFn::unary(Unary::Sigmoid);
        let mut e = ScalarFn::new(1);
        let x = e.input(0);
        let s1 = e.splice(&sig, &[x])[0];
        let s2 = e.splice(&sig, &[x])[0];
        assert_eq!(s1, s2, "the second sigmoid is the first");
        let one = e.constant(1.0);
        let d = e.push(Scalar::Binary(Binary::Sub, one, s2));
        let y = e.push(Scalar::Binary(Binary::Mul, s1, d));
        e.output(y);
        assert_eq!(e.nodes.len(), 5);
        let mut out = [0.0];
        e.eval(&[0.0], &mut out);
        assert_eq!(out[0], 0.25);
    }

    #[test]
    fn nan_propagates_through_max_and_comparisons_are_flags() {
        assert!(Binary::Max.eval(f64::NAN, 0.0).is_nan());
        assert_eq!(Binary::Max.eval(-1.0, 0.0), 0.0);
        assert_eq!(Binary::Gt.eval(2.0, 1.0), 1.0);
        assert_eq!(Binary::Le.eval(2.0, 1.0), 0.0);
        assert_eq!(Unary::Sigmoid.eval(-1000.0), 0.0);
    }

    #[test]
    fn all_lists_each_function_at_its_index() {
        for (i, f) in Unary::ALL.iter().enumerate() {
            assert_eq!(f.index(), i, "{f:?}");
        }
        for (i, f) in Binary::ALL.iter().enumerate() {
            assert_eq!(f.index(), i, "{f:?}");
        }
    }
}

//! Fused kernels on AVX-512 hosts: the expression evaluated a tile at a time, sixteen lanes per
//! instruction.
//!
//! Cranelift's x64 backend stops at 128-bit vectors and 16 registers; the LSTM cell's five
//! polynomials then cost ~90 instructions per four elements and the gate kernels were 40% of a
//! recurrence step. Here the same [`ScalarFn`] runs as a short program over a tile of up to
//! [`TILE`] elements of the `rows x cols` grid (numexpr's design): each node is one tight loop
//! over the tile in `zmm` registers, its function fixed when the program is built (the math is
//! `trellis_ir::lanes`', instantiated for [`Zmm`], so results are bit-identical to the Cranelift
//! kernels). Intermediate values live in tile-sized slots reused by liveness, so a tile's
//! working set stays in L1; on tiles inside one row, inputs are read and outputs written in the
//! caller's memory directly, otherwise they are staged through slots. A dense grid is one long
//! row.
use std::arch::x86_64::*;
use std::cell::RefCell;

use trellis_ir::{Binary, Prim, Scalar, ScalarFn, Unary};

use trellis_ir::lanes::{Cmp, Lanes};

use super::spec::{live_nodes, KernelSpec, RawOperands};

/// Elements per tile: 16 vectors, so a slot is 1 KiB and twenty slots fit in L1 with room.
pub(crate) const TILE: usize = 256;
const LANES: usize = 16;
/// Rows ahead to prefetch on row tiles.
const AHEAD: usize = 4;

/// True when this host runs [`Program`]s (AVX-512F and FMA).
pub(crate) fn available() -> bool {
    crate::cpu::has_avx512()
}

/// What one instruction computes.
#[derive(Clone, Copy, Debug)]
enum Op {
    Unary(Unary),
    Binary(Binary),
    /// `a^n` for a small constant integer `n` (square and multiply).
    Powi(i32),
    /// `if a != 0 { b } else { c }`.
    Select,
    /// A primitive defined outside trellis: its recorded lane program, replayed.
    Prim(Prim),
}

/// `slot[dst] = op(slot[a], slot[b], slot[c])` over a tile (unused operands are ignored).
#[derive(Clone, Copy, Debug)]
struct Instr {
    op: Op,
    /// `op`'s loop (looked up once, when the program is built).
    run: Loop,
    dst: usize,
    a: usize,
    b: usize,
    c: usize,
}

/// A [`KernelSpec`] as a tile program.
#[derive(Debug)]
pub(crate) struct Program {
    /// `(input, slot)` for each input the outputs depend on.
    loads: Vec<(usize, usize)>,
    /// `(value, slot)`: constant slots, filled once per call.
    consts: Vec<(f32, usize)>,
    instrs: Vec<Instr>,
    /// The slot of each output, and whether the instruction computing it may write straight
    /// into the output (it is computed, not an input or constant, and is no other output).
    stores: Vec<(usize, bool)>,
    col_broadcast: Vec<bool>,
    n_slots: usize,
}

impl Program {
    /// Lowers a validated spec: live nodes in order, each result in a slot freed after the
    /// node's last use (outputs and constants keep theirs).
    pub(crate) fn new(spec: &KernelSpec) -> Program {
        let e: &ScalarFn = &spec.expr;
        let live = live_nodes(e);
        let n = e.nodes.len();
        // Last reader of each node; outputs are read at the end of the tile.
        let mut last = vec![0usize; n];
        for (i, node) in e.nodes.iter().enumerate().filter(|(i, _)| live[*i]) {
            for o in node.operands() {
                last[o as usize] = i;
            }
        }
        for &o in &e.outputs {
            last[o as usize] = usize::MAX;
        }
        let mut free: Vec<usize> = Vec::new();
        let mut n_slots = 0;
        let mut slot_of = vec![usize::MAX; n];
        let (mut loads, mut consts, mut instrs) = (Vec::new(), Vec::new(), Vec::new());
        for (i, node) in e.nodes.iter().enumerate() {
            if !live[i] {
                continue;
            }
            // Operands whose last use is this node give their slots back first: an
            // instruction reads a vector of each operand before it writes that of its result.
            for o in node.operands() {
                let o = o as usize;
                if last[o] == i && !matches!(e.nodes[o], Scalar::Const(_) | Scalar::Input(_)) {
                    last[o] = usize::MAX - 1; // freed once, even if used twice here
                    free.push(slot_of[o]);
                }
            }
            // A constant's slot is filled once per call and an input's may point into the
            // input itself (see `tiles`), so neither is ever shared.
            let reuse = !matches!(node, Scalar::Const(_) | Scalar::Input(_));
            let dst = match free.pop() {
                Some(f) if reuse => f,
                f => {
                    free.extend(f);
                    n_slots += 1;
                    n_slots - 1
                }
            };
            slot_of[i] = dst;
            let s = |k: u32| slot_of[k as usize];
            let op = match *node {
                Scalar::Input(k) => {
                    loads.push((k as usize, dst));
                    continue;
                }
                Scalar::Const(c) => {
                    consts.push((c as f32, dst));
                    continue;
                }
                Scalar::Unary(f, a) => (Op::Unary(f), [s(a), 0, 0]),
                Scalar::Binary(Binary::Pow, a, b) if e.small_int(b).is_some() => {
                    (Op::Powi(e.small_int(b).expect("checked")), [s(a), 0, 0])
                }
                Scalar::Binary(f, a, b) => (Op::Binary(f), [s(a), s(b), 0]),
                Scalar::Select(c, a, b) => (Op::Select, [s(c), s(a), s(b)]),
                Scalar::Prim(p, a) => {
                    let mut args = [0; 3];
                    for (k, arg) in args.iter_mut().enumerate().take(p.arity()) {
                        *arg = s(a[k]);
                    }
                    (Op::Prim(p), args)
                }
            };
            let (op, [a, b, c]) = op;
            instrs.push(Instr {
                op,
                run: op.vector_loop(),
                dst,
                a,
                b,
                c,
            });
        }
        Program {
            loads,
            consts,
            instrs,
            stores: e
                .outputs
                .iter()
                .map(|&o| {
                    let computed =
                        !matches!(e.nodes[o as usize], Scalar::Input(_) | Scalar::Const(_));
                    let once = e.outputs.iter().filter(|&&p| p == o).count() == 1;
                    (slot_of[o as usize], computed && once)
                })
                .collect(),
            col_broadcast: spec.col_broadcast.clone(),
            n_slots,
        }
    }

    /// Runs the program over a `rows x cols` grid, with the raw-pointer contract of
    /// [`crate::Kernel::run_raw`] (the operands as `raw`).
    ///
    /// # Safety
    /// That contract, and the host has AVX-512F and FMA ([`available`]).
    pub(crate) unsafe fn run(&self, rows: usize, cols: usize, raw: &RawOperands) {
        thread_local! {
            static SCRATCH: RefCell<Scratch> = const { RefCell::new(Scratch::new()) };
        }
        SCRATCH.with_borrow_mut(|scratch| {
            let lines = self.n_slots * (TILE / LANES);
            if scratch.lines.len() < lines {
                scratch.lines.resize(lines, Line([0.0; LANES]));
            }
            // SAFETY: the caller's contract covers every grid element read and written, the
            // scratch holds `n_slots` tiles, and the host has the features `tiles` enables.
            unsafe { self.tiles(rows, cols, raw, scratch) }
        })
    }

    #[target_feature(enable = "avx512f,fma")]
    unsafe fn tiles(&self, rows: usize, cols: usize, raw: &RawOperands, scratch: &mut Scratch) {
        let slots = scratch.lines.as_mut_ptr() as *mut f32;
        let slot = |k: usize| slots.wrapping_add(k * TILE);
        for &(c, s) in &self.consts {
            for v in 0..TILE / LANES {
                // SAFETY: `s < n_slots`, so the tile is inside the scratch.
                unsafe { _mm512_storeu_ps(slot(s).add(v * LANES), _mm512_set1_ps(c)) };
            }
        }
        let (ins, in_rs, outs, out_rs) = (raw.ins, raw.in_rs, raw.outs, raw.out_rs);
        let (rows, cols) = raw.grid(&self.col_broadcast, rows, cols);
        // In place (an output is exactly an input's view): the output is written only after
        // the tile is done, from scratch, and the input is read from a copy, since another
        // output may still read it after the first is stored.
        // (The per-call tables live in the thread's scratch: no allocation per call.)
        let Scratch {
            at,
            in_place,
            overwritten,
            ..
        } = scratch;
        in_place.clear();
        in_place.extend(
            outs.iter()
                .map(|&o| ins.iter().any(|&i| std::ptr::eq(i, o))),
        );
        overwritten.clear();
        overwritten.extend(
            ins.iter()
                .map(|&i| outs.iter().any(|&o| std::ptr::eq(i, o))),
        );
        // Where each slot's tile lives: scratch, or (for inputs and outputs, on tiles inside
        // one row whose length is whole iterations) the caller's memory itself, so a row of
        // the LSTM gates is read where the GEMM left it, without a copy.
        at.clear();
        at.extend((0..self.n_slots).map(slot));
        let row_tiles = cols >= 4 * LANES;
        let tile_len = if row_tiles { TILE.min(cols) } else { TILE };
        let total = rows * cols;
        let mut start = 0;
        while start < total {
            let (r0, c0) = (start / cols, start % cols);
            let n = if row_tiles {
                tile_len.min(cols - c0)
            } else {
                TILE.min(total - start)
            };
            let direct = row_tiles && n % (LANES * UNROLL) == 0;
            for &(k, s) in &self.loads {
                let (p, rs) = (ins[k], in_rs[k]);
                if direct && !self.col_broadcast[k] && !overwritten[k] {
                    at[s] = p.wrapping_add(r0 * rs + c0) as *mut f32;
                    if rs != 0 && r0 + AHEAD < rows {
                        let ahead = p.wrapping_add((r0 + AHEAD) * rs + c0);
                        for line in (0..n).step_by(LANES) {
                            // A hint: never faults; the row is inside the input's view.
                            _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line) as *const i8);
                        }
                    }
                    continue;
                }
                at[s] = slot(s);
                for (r, c, len, j) in segments(start, n, cols) {
                    // SAFETY: the caller's contract makes input `k` readable at every (r, c)
                    // of the grid (at column 0 for a column-broadcast input); `j + len <= n`
                    // fits the slot.
                    unsafe {
                        let dst = slot(s).add(j);
                        if self.col_broadcast[k] {
                            fill(dst, *p.add(r * rs), len);
                        } else {
                            copy(p.add(r * rs + c), dst, len);
                        }
                    }
                }
            }
            for (o, &(s, computed_once)) in self.stores.iter().enumerate() {
                if direct && computed_once && !in_place[o] {
                    at[s] = outs[o].wrapping_add(r0 * out_rs[o] + c0);
                } else if computed_once {
                    at[s] = slot(s);
                }
            }
            let nvec = n.div_ceil(LANES);
            for i in &self.instrs {
                // SAFETY: a scratch slot holds a whole tile (lanes past `n` hold stale values
                // that are computed on and never stored); a pointer into the caller's memory
                // is used only on a tile of exactly `n = nvec * 16` elements of one row, which
                // the contract makes readable (inputs) or writable (outputs).
                unsafe { (i.run)(i, at[i.dst], at[i.a], at[i.b], at[i.c], nvec) };
            }
            for (o, &(s, _)) in self.stores.iter().enumerate() {
                let (p, rs) = (outs[o], out_rs[o]);
                if std::ptr::eq(at[s], p.wrapping_add(r0 * rs + c0)) {
                    continue; // written in place by its instruction
                }
                let src = at[s];
                for (r, c, len, j) in segments(start, n, cols) {
                    // SAFETY: output `o` is writable at every (r, c) of the grid, and nothing
                    // else refers to it during the call (the caller's contract); `src` holds
                    // the tile (scratch, or an input row on a direct tile).
                    unsafe { copy(src.add(j), p.add(r * rs + c), len) };
                }
            }
            start += n;
        }
    }
}

/// A thread's working memory for running programs, kept between calls.
struct Scratch {
    /// The slots, `TILE` floats each.
    lines: Vec<Line>,
    /// Per slot, where its tile lives in the current tile (scratch or the caller's memory).
    at: Vec<*mut f32>,
    /// Per output, whether it is exactly an input's view; per input, whether it is an output's.
    in_place: Vec<bool>,
    overwritten: Vec<bool>,
}

impl Scratch {
    const fn new() -> Scratch {
        Scratch {
            lines: Vec::new(),
            at: Vec::new(),
            in_place: Vec::new(),
            overwritten: Vec::new(),
        }
    }
}

/// A 64-byte aligned group of sixteen lanes (the scratch's unit).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; LANES]);

/// The row segments `(row, col, len, offset in the tile)` of the grid elements
/// `start .. start + n` (row-major over `cols` columns). An iterator rather than a callback:
/// a closure would be compiled without the caller's AVX-512 features.
fn segments(
    start: usize,
    n: usize,
    cols: usize,
) -> impl Iterator<Item = (usize, usize, usize, usize)> {
    let (mut r, mut c, mut j) = (start / cols, start % cols, 0);
    std::iter::from_fn(move || {
        (j < n).then(|| {
            let len = (cols - c).min(n - j);
            let seg = (r, c, len, j);
            (r, c, j) = (r + 1, 0, j + len);
            seg
        })
    })
}

/// Sets `n` floats to `x`.
///
/// # Safety
/// `dst` is writable for `n` floats.
#[inline(always)]
unsafe fn fill(dst: *mut f32, x: f32, n: usize) {
    for t in 0..n {
        // SAFETY: `t < n`.
        unsafe { *dst.add(t) = x };
    }
}

/// Copies `n` floats in registers (a libc `memcpy` call per row segment cost more than the
/// copy).
///
/// # Safety
/// `src` is readable and `dst` writable for `n` floats, and they do not overlap.
#[inline(always)]
unsafe fn copy(src: *const f32, dst: *mut f32, n: usize) {
    let mut i = 0;
    // SAFETY: `i + 16 <= n`, inside both ranges.
    while i + LANES <= n {
        unsafe { _mm512_storeu_ps(dst.add(i), _mm512_loadu_ps(src.add(i))) };
        i += LANES;
    }
    if i < n {
        // SAFETY: masked lanes past `n` are neither read nor written.
        unsafe {
            let m: __mmask16 = (1u16 << (n - i)) - 1;
            _mm512_mask_storeu_ps(dst.add(i), m, _mm512_maskz_loadu_ps(m, src.add(i)));
        }
    }
}

/// Vectors per loop iteration of an instruction: two independent chains per iteration
/// halve the loop and dispatch overhead and give the core two polynomials to interleave.
const UNROLL: usize = 2;

/// The loop of one instruction: `d[v] = op(a[v], b[v], c[v])` for `v < nvec` vectors.
type Loop = unsafe fn(&Instr, *mut f32, *const f32, *const f32, *const f32, usize);

/// Loads `UNROLL` vectors at `p + at`.
///
/// # Safety
/// `p + at .. p + at + 16 * UNROLL` is readable.
#[inline(always)]
unsafe fn load(p: *const f32, at: usize) -> [__m512; UNROLL] {
    let mut x = [_mm512_setzero_ps(); UNROLL];
    for (k, x) in x.iter_mut().enumerate() {
        // SAFETY: inside the range the caller vouches for.
        *x = unsafe { _mm512_loadu_ps(p.add(at + k * LANES)) };
    }
    x
}

/// The vector loop of an instruction whose function is fixed at compile time, so the loop
/// body is that function alone (no dispatch per vector): `$y` computed from the loaded
/// operands `$x..` by `$e`.
macro_rules! vector_loop {
    ($d:ident, $nvec:ident, |$($x:ident = $p:ident),*| $e:expr) => {
        for v in (0..$nvec).step_by(UNROLL) {
            let at = v * LANES;
            // SAFETY (loads and stores): `at + 16 * UNROLL <= TILE` (`nvec` is at most a
            // tile's vectors, rounded up to `UNROLL`), inside each slot.
            $(let $x = unsafe { load($p, at) };)*
            let y = $e;
            for (k, y) in y.into_iter().enumerate() {
                unsafe { _mm512_storeu_ps($d.add(at + k * LANES), y) };
            }
        }
    };
}

/// `d = f(a)` for `f = Unary::ALL[F]`.
///
/// # Safety
/// Each pointer is a slot of [`TILE`] floats (or a row segment of `nvec * 16`) and
/// `nvec <= TILE / 16`.
#[target_feature(enable = "avx512f,fma")]
unsafe fn unary_loop<const F: usize>(
    _: &Instr,
    d: *mut f32,
    a: *const f32,
    _: *const f32,
    _: *const f32,
    nvec: usize,
) {
    let l = &mut Zmm::<UNROLL>;
    vector_loop!(d, nvec, |x = a| Unary::ALL[F].lanes(l, x));
}

/// `d = f(a, b)` for `f = Binary::ALL[F]`. Safety as [`unary_loop`].
#[target_feature(enable = "avx512f,fma")]
unsafe fn binary_loop<const F: usize>(
    _: &Instr,
    d: *mut f32,
    a: *const f32,
    b: *const f32,
    _: *const f32,
    nvec: usize,
) {
    let l = &mut Zmm::<UNROLL>;
    vector_loop!(d, nvec, |x = a, y = b| Binary::ALL[F].lanes(l, x, y));
}

/// `d = a^n` for the instruction's small integer `n`. Safety as [`unary_loop`].
#[target_feature(enable = "avx512f,fma")]
unsafe fn powi_loop(
    i: &Instr,
    d: *mut f32,
    a: *const f32,
    _: *const f32,
    _: *const f32,
    nvec: usize,
) {
    let l = &mut Zmm::<UNROLL>;
    let n = match i.op {
        Op::Powi(n) => n,
        _ => unreachable!("powi_loop runs Powi instructions"),
    };
    vector_loop!(d, nvec, |x = a| l.powi(x, n));
}

/// `d = if a != 0 { b } else { c }`. Safety as [`unary_loop`].
#[target_feature(enable = "avx512f,fma")]
unsafe fn select_loop(
    _: &Instr,
    d: *mut f32,
    a: *const f32,
    b: *const f32,
    c: *const f32,
    nvec: usize,
) {
    let l = &mut Zmm::<UNROLL>;
    vector_loop!(d, nvec, |x = a, t = b, e = c| l.select_nonzero(x, t, e));
}

/// `d = p(a, b, c)` for the instruction's outside primitive `p` (its first `arity` operands):
/// the recorded lane program replayed on each pair of vectors. Slower than a built-in's loop
/// (the program is walked per vector pair), still one pass over the tile in registers. Safety
/// as [`unary_loop`].
#[target_feature(enable = "avx512f,fma")]
unsafe fn prim_loop(
    i: &Instr,
    d: *mut f32,
    a: *const f32,
    b: *const f32,
    c: *const f32,
    nvec: usize,
) {
    let l = &mut Zmm::<UNROLL>;
    let p = match i.op {
        Op::Prim(p) => p,
        _ => unreachable!("prim_loop runs Prim instructions"),
    };
    match p.arity() {
        1 => vector_loop!(d, nvec, |x = a| p.lanes(l, &[x])),
        2 => vector_loop!(d, nvec, |x = a, y = b| p.lanes(l, &[x, y])),
        _ => vector_loop!(d, nvec, |x = a, y = b, z = c| p.lanes(l, &[x, y, z])),
    }
}

/// One loop per unary and per binary function, in the order of `Unary::ALL` / `Binary::ALL`
/// (built from the functions' declarations, so no function can be missing).
macro_rules! unary_loops {
    ($($f:ident)*) => { [$(unary_loop::<{ Unary::$f as usize }>),*] };
}
macro_rules! binary_loops {
    ($($f:ident)*) => { [$(binary_loop::<{ Binary::$f as usize }>),*] };
}
const UNARY_LOOPS: [Loop; Unary::COUNT] = trellis_ir::for_each_unary!(unary_loops);
const BINARY_LOOPS: [Loop; Binary::COUNT] = trellis_ir::for_each_binary!(binary_loops);

impl Op {
    /// The loop that runs this operation.
    fn vector_loop(self) -> Loop {
        match self {
            Op::Unary(f) => UNARY_LOOPS[f.index()],
            Op::Binary(f) => BINARY_LOOPS[f.index()],
            Op::Powi(_) => powi_loop,
            Op::Select => select_loop,
            Op::Prim(_) => prim_loop,
        }
    }
}

/// [`Lanes`] on `N` groups of sixteen `f32` lanes (`N` `zmm` registers, masks in `k`
/// registers), each primitive applied to every group. Only reachable from code compiled with
/// AVX-512F and FMA enabled (the intrinsics inline there).
pub(crate) struct Zmm<const N: usize>;

/// `[op(a[0], b[0]), .., op(a[N-1], b[N-1])]` for the named operands.
macro_rules! each {
    ($($x:ident),* => $e:expr) => {
        // SAFETY: the intrinsics need AVX-512F/FMA, which every caller (`exec`, behind
        // `available()`) is compiled for and was checked to have; none touches memory.
        // `array::from_fn` would not do: it is not inlined, and intrinsics do not inline into a
        // function compiled without their features.
        {
            // SAFETY: all-zero bits are a valid vector and mask.
            let mut out: [_; N] = unsafe { std::mem::zeroed() };
            for k in 0..N {
                $(let $x = $x[k];)*
                #[allow(unused_unsafe)]
                {
                    out[k] = unsafe { $e };
                }
            }
            out
        }
    };
}

impl<const N: usize> Lanes for Zmm<N> {
    type F = [__m512; N];
    type I = [__m512i; N];
    type M = [__mmask16; N];

    #[inline(always)]
    fn f(&mut self, c: f32) -> Self::F {
        each!(=> _mm512_set1_ps(c))
    }
    #[inline(always)]
    fn i(&mut self, c: i32) -> Self::I {
        each!(=> _mm512_set1_epi32(c))
    }
    #[inline(always)]
    fn f_to_bits(&mut self, x: Self::F) -> Self::I {
        each!(x => _mm512_castps_si512(x))
    }
    #[inline(always)]
    fn bits_to_f(&mut self, x: Self::I) -> Self::F {
        each!(x => _mm512_castsi512_ps(x))
    }
    #[inline(always)]
    fn add(&mut self, a: Self::F, b: Self::F) -> Self::F {
        each!(a, b => _mm512_add_ps(a, b))
    }
    #[inline(always)]
    fn sub(&mut self, a: Self::F, b: Self::F) -> Self::F {
        each!(a, b => _mm512_sub_ps(a, b))
    }
    #[inline(always)]
    fn mul(&mut self, a: Self::F, b: Self::F) -> Self::F {
        each!(a, b => _mm512_mul_ps(a, b))
    }
    #[inline(always)]
    fn div(&mut self, a: Self::F, b: Self::F) -> Self::F {
        each!(a, b => _mm512_div_ps(a, b))
    }
    #[inline(always)]
    fn fma(&mut self, a: Self::F, b: Self::F, c: Self::F) -> Self::F {
        each!(a, b, c => _mm512_fmadd_ps(a, b, c))
    }
    #[inline(always)]
    fn neg(&mut self, x: Self::F) -> Self::F {
        each!(x => _mm512_castsi512_ps(_mm512_xor_si512(
            _mm512_castps_si512(x),
            _mm512_set1_epi32(i32::MIN)
        )))
    }
    #[inline(always)]
    fn abs(&mut self, x: Self::F) -> Self::F {
        each!(x => _mm512_abs_ps(x))
    }
    #[inline(always)]
    fn sqrt(&mut self, x: Self::F) -> Self::F {
        each!(x => _mm512_sqrt_ps(x))
    }
    #[inline(always)]
    fn floor(&mut self, x: Self::F) -> Self::F {
        each!(x => _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(x))
    }
    /// `vmaxps` returns its second operand when either is NaN or both are zeros; where the
    /// pair is equal the result is `a & b` (so `max(-0, +0) = +0`, as Cranelift's `fmax`), and
    /// where it is unordered `a + b` (NaN).
    #[inline(always)]
    fn max(&mut self, a: Self::F, b: Self::F) -> Self::F {
        each!(a, b => {
            let (ai, bi) = (_mm512_castps_si512(a), _mm512_castps_si512(b));
            let m = _mm512_castps_si512(_mm512_max_ps(a, b));
            let eq = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(a, b);
            let m = _mm512_castsi512_ps(_mm512_mask_and_epi32(m, eq, ai, bi));
            _mm512_mask_add_ps(m, _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(a, b), a, b)
        })
    }
    /// As [`Zmm::max`], with `a | b` where equal (`min(-0, +0) = -0`).
    #[inline(always)]
    fn min(&mut self, a: Self::F, b: Self::F) -> Self::F {
        each!(a, b => {
            let (ai, bi) = (_mm512_castps_si512(a), _mm512_castps_si512(b));
            let m = _mm512_castps_si512(_mm512_min_ps(a, b));
            let eq = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(a, b);
            let m = _mm512_castsi512_ps(_mm512_mask_or_epi32(m, eq, ai, bi));
            _mm512_mask_add_ps(m, _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(a, b), a, b)
        })
    }
    #[inline(always)]
    fn cmp(&mut self, cc: Cmp, a: Self::F, b: Self::F) -> Self::M {
        match cc {
            Cmp::Lt => each!(a, b => _mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, b)),
            Cmp::Le => each!(a, b => _mm512_cmp_ps_mask::<_CMP_LE_OQ>(a, b)),
            Cmp::Gt => each!(a, b => _mm512_cmp_ps_mask::<_CMP_GT_OQ>(a, b)),
            Cmp::Ge => each!(a, b => _mm512_cmp_ps_mask::<_CMP_GE_OQ>(a, b)),
            Cmp::Eq => each!(a, b => _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(a, b)),
            // Unordered or not equal: true with a NaN.
            Cmp::Ne => each!(a, b => _mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(a, b)),
        }
    }
    #[inline(always)]
    fn ilt(&mut self, a: Self::I, b: Self::I) -> Self::M {
        each!(a, b => _mm512_cmplt_epi32_mask(a, b))
    }
    #[inline(always)]
    fn mask_and(&mut self, a: Self::M, b: Self::M) -> Self::M {
        each!(a, b => a & b)
    }
    #[inline(always)]
    fn mask_or(&mut self, a: Self::M, b: Self::M) -> Self::M {
        each!(a, b => a | b)
    }
    #[inline(always)]
    fn mask_not(&mut self, a: Self::M) -> Self::M {
        each!(a => !a)
    }
    #[inline(always)]
    fn sel(&mut self, m: Self::M, a: Self::F, b: Self::F) -> Self::F {
        each!(m, a, b => _mm512_mask_blend_ps(m, b, a))
    }
    #[inline(always)]
    fn flag(&mut self, m: Self::M) -> Self::F {
        each!(m => _mm512_maskz_mov_ps(m, _mm512_set1_ps(1.0)))
    }
    #[inline(always)]
    fn iadd(&mut self, a: Self::I, b: Self::I) -> Self::I {
        each!(a, b => _mm512_add_epi32(a, b))
    }
    #[inline(always)]
    fn isub(&mut self, a: Self::I, b: Self::I) -> Self::I {
        each!(a, b => _mm512_sub_epi32(a, b))
    }
    #[inline(always)]
    fn iand(&mut self, a: Self::I, b: Self::I) -> Self::I {
        each!(a, b => _mm512_and_si512(a, b))
    }
    #[inline(always)]
    fn ior(&mut self, a: Self::I, b: Self::I) -> Self::I {
        each!(a, b => _mm512_or_si512(a, b))
    }
    #[inline(always)]
    fn shl(&mut self, a: Self::I, n: u8) -> Self::I {
        each!(a => _mm512_sllv_epi32(a, _mm512_set1_epi32(i32::from(n))))
    }
    #[inline(always)]
    fn ushr(&mut self, a: Self::I, n: u8) -> Self::I {
        each!(a => _mm512_srlv_epi32(a, _mm512_set1_epi32(i32::from(n))))
    }
    #[inline(always)]
    fn sshr(&mut self, a: Self::I, n: u8) -> Self::I {
        each!(a => _mm512_srav_epi32(a, _mm512_set1_epi32(i32::from(n))))
    }
    #[inline(always)]
    fn i_to_f(&mut self, a: Self::I) -> Self::F {
        each!(a => _mm512_cvtepi32_ps(a))
    }
}

//! Tall products (`C = A B` with many rows of `A`) by whichever of two implementations with the
//! same bits runs faster on this host, timed once per shape.
//!
//! The `gemm` crate's kernels run the seed model's 25,600-row products at 80-90% of a Zen 4
//! core's FMA peak but at 50-64% of an Intel Xeon's, where trellis' own panel loop
//! ([`crate::panels`]) reaches 95% on the per-step products: which is faster depends on the core,
//! so it is measured, not assumed. For `k <= 512` both sum each element over `k` in order from
//! zero with one FMA a term (the crate takes such a `k` in one block on every host), so the
//! choice changes the time and never the result: the first call of a shape checks that on
//! sampled rows, and a shape whose bits differ stays with the crate.
//!
//! `TRELLIS_GEMM=crate` or `=panels` fixes the choice (still only where the bits agree), for
//! comparing the two.
use std::cell::RefCell;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use crate::gemm::{sgemm, Mat};
use crate::panels::{panels_len, PANEL_MAX_ROWS};

/// Longest `k` the panel loop matches the crate's bits for (the crate's smallest `k` block).
const SAME_BITS_MAX_K: usize = 512;

/// Fewest multiply-adds worth timing two implementations for (~100 us of work).
const TUNE_MIN_MACS: usize = 1 << 24;

/// Timed calls of each implementation on a shape's first product.
const TRIALS: usize = 3;

/// A product's shape and layout, what the choice is made for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Shape {
    m: usize,
    n: usize,
    k: usize,
    /// `A` read transposed (columns contiguous).
    ta: bool,
    tb: bool,
    threads: usize,
}

/// What was measured for one shape.
#[derive(Clone, Copy, Debug)]
pub struct GemmChoice {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub ta: bool,
    pub tb: bool,
    /// The panel loop runs this shape (else the crate).
    pub panels: bool,
    /// Whether the two agreed bit for bit (when not, the crate runs it and nothing is timed).
    pub same_bits: bool,
    /// Fastest of [`TRIALS`] calls each, in microseconds.
    pub crate_us: f64,
    pub panels_us: f64,
}

static CHOICES: Mutex<Option<FxHashMap<Shape, GemmChoice>>> = Mutex::new(None);

thread_local! {
    /// The packed right operand of the panel loop, reused across calls on a thread.
    static PACKED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// The choices made so far in this process, in no particular order (`bench --profile` prints
/// them).
pub fn gemm_choices() -> Vec<GemmChoice> {
    let table = CHOICES.lock().unwrap_or_else(|e| e.into_inner());
    table
        .as_ref()
        .map(|t| t.values().copied().collect())
        .unwrap_or_default()
}

/// `C = A B` as [`sgemm`], tall products with `k <= 512` by the faster of the crate and the
/// panel loop on this host.
///
/// # Safety
/// As [`sgemm`].
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm(
    base: *mut f32,
    m: usize,
    n: usize,
    k: usize,
    a: Mat,
    b: Mat,
    c: Mat,
    threads: usize,
) {
    let tall = m > PANEL_MAX_ROWS && k <= SAME_BITS_MAX_K && m * n * k >= TUNE_MIN_MACS;
    if !(tall && c.cs == 1 && crate::cpu::has_avx512()) {
        // SAFETY: the caller's contract.
        return unsafe { sgemm(base, m, n, k, a, b, c, threads) };
    }
    let shape = Shape {
        m,
        n,
        k,
        ta: a.cs != 1,
        tb: b.cs != 1,
        threads,
    };
    let known = {
        let table = CHOICES.lock().unwrap_or_else(|e| e.into_inner());
        table.as_ref().and_then(|t| t.get(&shape)).map(|c| c.panels)
    };
    // SAFETY (all three arms): the caller's contract.
    match known {
        Some(true) => unsafe { by_panels(base, m, n, k, a, b, c, threads) },
        Some(false) => unsafe { sgemm(base, m, n, k, a, b, c, threads) },
        None => {
            let choice = unsafe { tune(base, shape, a, b, c) };
            let mut table = CHOICES.lock().unwrap_or_else(|e| e.into_inner());
            table
                .get_or_insert_with(FxHashMap::default)
                .insert(shape, choice);
        }
    }
}

/// Runs the product both ways, leaving the result in `C`, and says which is faster (the crate
/// when the bits differ on the sampled rows or `TRELLIS_GEMM=crate`).
///
/// # Safety
/// As [`sgemm`].
unsafe fn tune(base: *mut f32, s: Shape, a: Mat, b: Mat, c: Mat) -> GemmChoice {
    let Shape {
        m, n, k, threads, ..
    } = s;
    let time = |f: &dyn Fn()| {
        let t = Instant::now();
        f();
        t.elapsed()
    };
    // SAFETY: the caller's contract, for both.
    let by_crate = || unsafe { sgemm(base, m, n, k, a, b, c, threads) };
    let by_panels = || unsafe { by_panels(base, m, n, k, a, b, c, threads) };
    // The first rows (whole register blocks) and the last (the partial ones) of C.
    let sampled: Vec<usize> = (0..16.min(m))
        .chain(m.saturating_sub(16).max(16)..m)
        .collect();
    let read = || -> Vec<u32> {
        let mut bits = Vec::with_capacity(sampled.len() * n);
        for &i in &sampled {
            for j in 0..n {
                // SAFETY: (i, j) is an element of C, inside the allocation (the contract).
                bits.push(
                    unsafe { *base.offset(c.off as isize + i as isize * c.rs + j as isize) }
                        .to_bits(),
                );
            }
        }
        bits
    };
    let mut crate_t = time(&by_crate);
    let expected = read();
    let mut panels_t = time(&by_panels);
    let same_bits = read() == expected;
    let mut choice = GemmChoice {
        m,
        n,
        k,
        ta: s.ta,
        tb: s.tb,
        panels: false,
        same_bits,
        crate_us: 0.0,
        panels_us: 0.0,
    };
    if !same_bits {
        by_crate();
        return choice;
    }
    for _ in 1..TRIALS {
        crate_t = crate_t.min(time(&by_crate));
        panels_t = panels_t.min(time(&by_panels));
    }
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    (choice.crate_us, choice.panels_us) = (us(crate_t), us(panels_t));
    choice.panels = match std::env::var("TRELLIS_GEMM").as_deref() {
        Ok("crate") => false,
        Ok("panels") => true,
        _ => panels_t < crate_t,
    };
    choice
}

/// `C = A B` by the panel loop: `B` packed into this thread's buffer, then [`gemm_tall`].
///
/// [`gemm_tall`]: crate::panels::gemm_tall
///
/// # Safety
/// As [`sgemm`], with `c.cs == 1` on a host with AVX-512F and FMA.
#[allow(clippy::too_many_arguments)]
unsafe fn by_panels(
    base: *mut f32,
    m: usize,
    n: usize,
    k: usize,
    a: Mat,
    b: Mat,
    c: Mat,
    threads: usize,
) {
    // Taken out for the call, not borrowed: while this thread waits for the product's bands it
    // may run another plan's job (two plans on one pool), which then packs into a buffer of
    // its own.
    let mut packed = PACKED.take();
    packed.resize(panels_len(k, n), 0.0);
    // SAFETY: B is inside the allocation (the caller's contract); the buffer is this call's
    // own, `panels_len(k, n)` long, so it overlaps nothing; the panel loop runs only on AVX-512
    // hosts (the caller checked).
    unsafe {
        crate::panels::pack(base, k, n, b, packed.as_mut_ptr());
        crate::panels::gemm_tall(base, m, n, k, a, packed.as_ptr(), c, threads);
    }
    PACKED.set(packed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::test_operands;

    /// Tall products through the tuner, and the panel loop on its own, equal the crate's bit
    /// for bit: partial register blocks, chunks and panels, `k` past L1, both operands
    /// transposed, two threads; each shape's choice is recorded with its bits agreeing, and a
    /// `k` past one block of the crate is left to the crate untimed.
    #[test]
    fn tall_products_keep_the_crate_bits() {
        if !crate::cpu::has_avx512() {
            return;
        }
        for (m, n, k, ta, tb, threads) in [
            (1024, 128, 128, false, false, 2),
            (1030, 100, 163, true, true, 2),
            (601, 70, 400, false, true, 1),
            (600, 64, 600, false, false, 2),
        ] {
            let nc = m * n;
            let (mut mem, a, b) = test_operands(m, n, k, ta, 3 * nc);
            let b = if tb { Mat::col_major(b.off, k) } else { b };
            let c = |i: usize| Mat::row_major(m * k + k * n + i * nc, n);
            let p = mem.as_mut_ptr();
            // SAFETY: A, B and the three Cs lie inside `mem`, apart.
            unsafe {
                sgemm(p, m, n, k, a, b, c(0), threads);
                gemm(p, m, n, k, a, b, c(1), threads);
                by_panels(p, m, n, k, a, b, c(2), threads);
            }
            let cs = |i: usize| &mem[c(i).off..c(i).off + nc];
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let choice = gemm_choices()
                .into_iter()
                .find(|g| (g.m, g.n, g.k, g.ta, g.tb) == (m, n, k, ta, tb));
            if k > SAME_BITS_MAX_K {
                assert!(choice.is_none(), "{m}x{n}x{k} was timed");
                continue;
            }
            assert!(
                bits(cs(0)) == bits(cs(1)),
                "{m}x{n}x{k}: tuned product differs"
            );
            assert!(
                bits(cs(0)) == bits(cs(2)),
                "{m}x{n}x{k}: panel loop differs"
            );
            let choice = choice.unwrap_or_else(|| panic!("{m}x{n}x{k}: no choice recorded"));
            assert!(choice.same_bits && choice.crate_us > 0.0 && choice.panels_us > 0.0);
        }
    }
}

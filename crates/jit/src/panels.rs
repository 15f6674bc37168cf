//! Products against a right operand packed once per run into column panels.
//!
//! A recurrence multiplies by the same weight at every step (`h W_hh^T`, and `dz W_hh` going
//! back). The general GEMM packs its right operand on every call; here it is packed once into
//! panels of [`PANEL`] columns (each `k x 32`, contiguous: in L1, or streamed from L2 once per
//! block of rows when `k` is long), and each product is one register-blocked loop: 8 rows (14
//! past L1) by 32 columns, the left operand's elements broadcast from where they are. The
//! half-batch step of the seed model (64x512x128) takes 73 instead of 81 us on this EPYC,
//! 64x128x512 72 instead of 78, one core each; every element is summed over `k` in order from
//! zero with one FMA a term, as the `gemm` crate does for these shapes, so the results have the
//! same bits.
use crate::gemm::Mat;
use crate::memory::SendPtr;

/// `tile::<R>` for a block of `rows` rows: one arm per register-block height listed, the
/// tallest ([`MR_LONG`]) otherwise.
#[cfg(target_arch = "x86_64")]
macro_rules! by_height {
    ($rows:expr; $($r:literal)*; $args:tt) => {
        match $rows {
            $($r => tile::<$r> $args,)*
            _ => tile::<MR_LONG> $args,
        }
    };
}

/// Columns per panel (two 16-lane vectors).
pub const PANEL: usize = 32;

/// Rows per register block while a panel fits in L1 (`k` up to [`L1_PANEL_K`]): 8 rows by 32
/// columns, sixteen accumulators.
const MR: usize = 8;

/// Rows per register block for longer panels (28 accumulators, two panel vectors and a
/// broadcast: 31 of the 32 registers). A panel past L1 is streamed from L2 once per block of
/// rows, so more rows a block means fewer passes: 64x128x512 (a 64 KB panel) ran at 169 instead
/// of 118 GFLOP/s on one core of an Intel Xeon (48 KB L1); with the panel in L1 both reach the
/// FMA peak.
const MR_LONG: usize = 14;

// `gemm_rows` lists the heights below MR_LONG for `by_height!` (1..=13), whose last arm runs a
// full MR_LONG tile: a taller MR_LONG would write rows past the block's end.
const _: () = assert!(MR < MR_LONG && MR_LONG == 14);

/// Longest panel (rows of 32 floats) kept to [`MR`]-row blocks: 256 rows are 32 KB, the
/// smaller L1 of the x86 cores trellis is measured on (AMD Zen 4).
const L1_PANEL_K: usize = 256;

/// Most rows of a product worth the panel loop: its left operand is read once per panel, so
/// it should stay in cache (the per-step products have the batch's rows, or half of them).
pub const PANEL_MAX_ROWS: usize = 512;

/// Products against one operand after which packing it pays (the packing reads and writes it
/// once, about one product's worth of memory traffic).
pub const PANEL_MIN_USES: usize = 8;

/// Elements of the packed form of a `[k, n]` operand (the last panel padded with zeros).
pub fn panels_len(k: usize, n: usize) -> usize {
    k * n.next_multiple_of(PANEL)
}

/// Packs `B [k, n]` into panels at `dst`: panel `j` holds columns `32 j .. 32 j + 32` as `k`
/// rows of 32, columns past `n` zero.
///
/// # Safety
/// Every element of `b` lies inside the allocation at `base`; the [`panels_len`]`(k, n)`
/// elements from `dst` are writable and overlap nothing `b` addresses.
pub unsafe fn pack(base: *const f32, k: usize, n: usize, b: Mat, dst: *mut f32) {
    for j in 0..n.div_ceil(PANEL) {
        for p in 0..k {
            for q in 0..PANEL {
                let col = j * PANEL + q;
                // SAFETY: (p, col) of B for col < n, and the packed element, are in bounds by
                // the caller's contract.
                unsafe {
                    let v = if col < n {
                        *base.offset(b.off as isize + p as isize * b.rs + col as isize * b.cs)
                    } else {
                        0.0
                    };
                    *dst.add((j * k + p) * PANEL + q) = v;
                }
            }
        }
    }
}

/// `C = A B` for rows `r0..r1` of `A [m, k]` and `C [m, n]` (`c.cs == 1`), `B` packed at
/// `panels` by [`pack`] (in the plan's memory or a buffer of its own).
///
/// # Safety
/// As [`crate::gemm::sgemm`] for those rows, with the packed operand in bounds and disjoint
/// from C; the host has AVX-512F and FMA ([`crate::cpu::has_avx512`]).
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_rows(
    base: *mut f32,
    r0: usize,
    r1: usize,
    n: usize,
    k: usize,
    a: Mat,
    panels: *const f32,
    c: Mat,
) {
    debug_assert_eq!(c.cs, 1);
    let masks = |j: usize| {
        let width = (n - j * PANEL).min(PANEL);
        let lanes = |w: usize| -> u16 { ((1u32 << w.min(16)) - 1) as u16 };
        [lanes(width), lanes(width.saturating_sub(16))]
    };
    let c_row = |i: usize| base.wrapping_offset(c.off as isize + i as isize * c.rs);
    let a_row = |i: usize| base.wrapping_offset(a.off as isize + i as isize * a.rs) as *const f32;
    let mr = if k <= L1_PANEL_K { MR } else { MR_LONG };
    // Rows of A a multiple of 4 KB apart (`dz W_hh` at 4H = 1024 or 2048 columns) all fall in
    // one L1 set of 8 or 12 ways, and a block's MR_LONG of them evict each other on every
    // panel (64x256x1024 ran at 78-83 GFLOP/s on one Zen 4 core, 112-115 with rows 1040
    // apart). Such rows are first copied, one pass, `k + 16` floats apart: the same values,
    // summed in the same order, so the same bits.
    let mut copy = Vec::new();
    let (a_at, a_rs, a_cs) = if crowds_l1_sets(a, mr) {
        let ld = k.next_multiple_of(16) + 16;
        copy = A_ROWS.take();
        copy.resize((r1 - r0) * ld, 0.0);
        for (r, row) in copy.chunks_exact_mut(ld).enumerate() {
            // SAFETY: row r0 + r of A, `k` contiguous floats (`a.cs == 1`), is in bounds by
            // the caller's contract and apart from the buffer.
            unsafe { std::ptr::copy_nonoverlapping(a_row(r0 + r), row.as_mut_ptr(), k) };
        }
        (copy.as_ptr(), ld as isize, 1)
    } else {
        (a_row(r0), a.rs, a.cs)
    };
    let a_at = |i: usize| a_at.wrapping_offset((i - r0) as isize * a_rs);
    // Each panel (in L1 up to L1_PANEL_K, streamed from L2 past it) passes over every block
    // of rows.
    for j in 0..n.div_ceil(PANEL) {
        let mut i = r0;
        while i < r1 {
            let rows = mr.min(r1 - i);
            // SAFETY: rows i..i + rows of A (or of its copy) and C and panel j are in bounds
            // by the caller's contract; the host has AVX-512F and FMA.
            unsafe {
                by_height!(rows; 1 2 3 4 5 6 7 8 9 10 11 12 13;
                    (a_at(i), a_rs, a_cs, panels.add(j * k * PANEL), k, c_row(i), c.rs, j, masks(j)))
            }
            i += rows;
        }
    }
    if copy.capacity() > 0 {
        A_ROWS.set(copy);
    }
}

/// Whether more than seven of `rows` consecutive rows of `a` (contiguous within a row) share
/// an L1 set at the same column, so that with a panel's lines they overflow its ways (8 on
/// Zen 4, 12 on the Xeon; 64 sets of 64-byte lines, 4 KB, on both).
fn crowds_l1_sets(a: Mat, rows: usize) -> bool {
    if a.cs != 1 {
        return false;
    }
    let mut per_set = [0u8; 64];
    let mut last = None;
    for r in 0..rows as isize {
        // Distinct lines only: rows less than a line apart share theirs.
        let line = (r * a.rs * 4).div_euclid(64);
        if last != Some(line) {
            per_set[line.rem_euclid(64) as usize] += 1;
            last = Some(line);
        }
    }
    per_set.iter().any(|&c| c > 7)
}

thread_local! {
    /// [`gemm_rows`]' copy of rows of A (taken for a call and put back: no borrow is held
    /// while anything else runs).
    static A_ROWS: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Bytes of `A` one chunk of [`gemm_tall`]'s rows keeps in cache while every panel passes over
/// it (an eighth of a Zen 4 core's L2, a sixteenth of the Xeon's; 16-256 KB ran within noise
/// of each other on Zen 4).
const TALL_CHUNK_BYTES: usize = 128 * 1024;

/// `C = A B` for a product of many rows (`c.cs == 1`), `B` packed at `panels`: the rows go in
/// chunks whose part of `A` stays in cache while all the panels pass over it (the panel loop
/// over every row at once would read `A` from memory once a panel), in contiguous bands of
/// chunks, one band a thread of the current pool.
///
/// # Safety
/// As [`gemm_rows`] for rows `0..m`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_tall(
    base: *mut f32,
    m: usize,
    n: usize,
    k: usize,
    a: Mat,
    panels: *const f32,
    c: Mat,
    threads: usize,
) {
    let block = if k > L1_PANEL_K { MR_LONG } else { MR };
    let chunk = (TALL_CHUNK_BYTES / (4 * k.max(1))).max(block) / block * block;
    let (base, panels) = (SendPtr(base), SendPtr(panels as *mut f32));
    // The bands' rows of C are disjoint; A and the panels are only read.
    crate::gemm::in_row_bands(m, threads, chunk, |r0, r1| {
        for start in (r0..r1).step_by(chunk) {
            // SAFETY: rows `start..` of this band are inside `0..m` (the caller's contract).
            unsafe {
                gemm_rows(
                    base.at(0),
                    start,
                    (start + chunk).min(r1),
                    n,
                    k,
                    a,
                    panels.at(0),
                    c,
                )
            };
        }
    });
}

/// `R` rows of C (from `c`, `c_rs` apart) against one panel (column panel `j`): `R x 32`
/// accumulators over the whole of `k`, stored under `masks` (the last panel's columns past
/// `n`). Element `(r, p)` of the rows of A is at `a + r a_rs + p a_cs`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const R: usize>(
    a: *const f32,
    a_rs: isize,
    a_cs: isize,
    panel: *const f32,
    k: usize,
    c: *mut f32,
    c_rs: isize,
    j: usize,
    masks: [u16; 2],
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    for p in 0..k {
        // SAFETY: row p of the panel and (r, p) of A are in bounds (the caller's contract).
        unsafe {
            let b0 = _mm512_loadu_ps(panel.add(p * PANEL));
            let b1 = _mm512_loadu_ps(panel.add(p * PANEL + 16));
            for (r, acc) in acc.iter_mut().enumerate() {
                let x = _mm512_set1_ps(*a.offset(r as isize * a_rs + p as isize * a_cs));
                acc[0] = _mm512_fmadd_ps(x, b0, acc[0]);
                acc[1] = _mm512_fmadd_ps(x, b1, acc[1]);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        let dst = c.wrapping_offset(r as isize * c_rs).wrapping_add(j * PANEL);
        // SAFETY: the unmasked lanes are (r, 32 j ..) of the rows of C, columns below n;
        // masked-out lanes are neither written nor faulted on.
        unsafe {
            _mm512_mask_storeu_ps(dst, masks[0], acc[0]);
            _mm512_mask_storeu_ps(dst.wrapping_add(16), masks[1], acc[1]);
        }
    }
}

/// Never called: panels are only chosen on hosts with AVX-512 (x86-64).
#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_rows(
    _: *mut f32,
    _: usize,
    _: usize,
    _: usize,
    _: usize,
    _: Mat,
    _: *const f32,
    _: Mat,
) {
    unreachable!("panel products are selected only on AVX-512 hosts")
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// Packed products against the `gemm` crate's, exactly, over shapes with partial row
    /// blocks and a partial last panel, and a strided (transposed) `A`.
    #[test]
    fn panel_products_equal_the_general_gemm() {
        if !crate::cpu::has_avx512() {
            return;
        }
        for (m, n, k, a_t) in [
            (64, 512, 128, false),
            (64, 128, 512, false),
            (13, 70, 33, true),
            (29, 40, 300, true),
            (1, 5, 9, false),
            (9, 48, 1, false),
        ] {
            let (na, nb, nc) = (m * k, k * n, m * n);
            let extra = 2 * nc + panels_len(k, n);
            let (mut mem, a, b) = crate::gemm::test_operands(m, n, k, a_t, extra);
            let (c1, c2) = (na + nb, na + nb + nc);
            let row_major = |off| Mat::row_major(off, n);
            let packed = na + nb + 2 * nc;
            // SAFETY: every matrix lies inside `mem` and C, the packed copy, A and B are apart.
            unsafe {
                crate::gemm::sgemm(mem.as_mut_ptr(), m, n, k, a, b, row_major(c1), 1);
                let p = mem.as_mut_ptr();
                pack(p, k, n, b, p.add(packed));
                // Two calls over row ranges, as the two halves of a split run make them.
                let mid = m / 2;
                gemm_rows(p, 0, mid, n, k, a, p.add(packed), row_major(c2));
                gemm_rows(p, mid, m, n, k, a, p.add(packed), row_major(c2));
            }
            // (Equal as numbers: a zero product may differ in sign when k = 1.)
            for (e, (x, y)) in mem[c1..c2].iter().zip(&mem[c2..c2 + nc]).enumerate() {
                assert!(x == y, "{m}x{n}x{k}: [{e}] {x} from the GEMM, {y} packed");
            }
            // The padding columns of the last panel are zero.
            let last = n.div_ceil(PANEL) - 1;
            for p in 0..k {
                for q in n - last * PANEL..PANEL {
                    assert_eq!(mem[packed + (last * k + p) * PANEL + q], 0.0);
                }
            }
        }
    }

    /// Rows of A 4 KB apart are copied before the panels pass (`crowds_l1_sets`): the
    /// product still equals the `gemm` crate's, with `k` short and long of L1 and a block of
    /// rows split across two calls.
    #[test]
    fn rows_4_kb_apart_give_the_same_products() {
        if !crate::cpu::has_avx512() {
            return;
        }
        for (m, n, k) in [(29, 40, 300), (20, 70, 200), (16, 33, 512)] {
            let rs = 1024;
            let (na, nb, nc) = (m * rs, k * n, m * n);
            let mut mem = crate::gemm::test_memory(na + nb + 2 * nc + panels_len(k, n));
            let (a, b) = (Mat::row_major(0, rs), Mat::row_major(na, n));
            assert!(crowds_l1_sets(a, if k > L1_PANEL_K { MR_LONG } else { MR }));
            let (c1, c2, packed) = (na + nb, na + nb + nc, na + nb + 2 * nc);
            // SAFETY: every matrix lies inside `mem` and C, the packed copy, A and B are apart.
            unsafe {
                let p = mem.as_mut_ptr();
                crate::gemm::sgemm(p, m, n, k, a, b, Mat::row_major(c1, n), 1);
                pack(p, k, n, b, p.add(packed));
                gemm_rows(p, 0, 5, n, k, a, p.add(packed), Mat::row_major(c2, n));
                gemm_rows(p, 5, m, n, k, a, p.add(packed), Mat::row_major(c2, n));
            }
            for (e, (x, y)) in mem[c1..c2].iter().zip(&mem[c2..c2 + nc]).enumerate() {
                assert!(x == y, "{m}x{n}x{k}: [{e}] {x} from the GEMM, {y} packed");
            }
        }
    }

    #[test]
    fn rows_4_kb_apart_crowd_one_l1_set() {
        let rows = |rs: isize, cs: isize| Mat { off: 0, rs, cs };
        assert!(crowds_l1_sets(rows(1024, 1), MR_LONG) && crowds_l1_sets(rows(2048, 1), MR));
        // 2 KB apart: seven of fourteen rows a set, within its eight ways.
        assert!(!crowds_l1_sets(rows(512, 1), MR_LONG));
        assert!(!crowds_l1_sets(rows(1040, 1), MR_LONG) && !crowds_l1_sets(rows(768, 1), MR_LONG));
        // A transposed A (rows next to each other) is read in place; so are rows sharing lines.
        assert!(!crowds_l1_sets(rows(1, 1024), MR_LONG) && !crowds_l1_sets(rows(1, 1), MR_LONG));
    }
}

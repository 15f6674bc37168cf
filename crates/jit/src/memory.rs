//! The memory plan: buffers placed in one arena by liveness, so values whose lifetimes do not
//! overlap share memory, and the limit a plan's memory is checked against before it exists.
use crate::JitError;

/// One buffer to place: `size` elements, written first at step `def`, read last at step `last`.
#[derive(Clone, Copy, Debug)]
pub struct Interval {
    pub size: usize,
    pub def: usize,
    pub last: usize,
}

/// Fails when `persistent + arena` bytes exceed `limit` (the bytes, and what that limit is).
pub fn check_limit(
    (limit, limit_is): (usize, &'static str),
    persistent: usize,
    arena: usize,
) -> Result<(), JitError> {
    match persistent.checked_add(arena) {
        Some(needed) if needed <= limit => Ok(()),
        needed => Err(JitError::MemoryLimit {
            needed: needed.unwrap_or(usize::MAX),
            persistent,
            arena,
            limit,
            limit_is,
        }),
    }
}

/// Returns freed heap memory to the operating system. glibc keeps freed small blocks for
/// reuse: a long sequence's compile (millions of nodes, each a few small allocations) left
/// 180-280 MB resident beside the arena of the T = 2,000 training plan, which then no longer
/// fit in 2 GB. [`crate::compile`] calls it when it is done; call it after dropping large
/// graphs. (A no-op off glibc.)
pub fn release_freed_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only hands free pages back to the kernel; no live allocation is
    // moved or changed, and it is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A pointer into a plan's memory that may cross to the other threads of a split step (row
/// halves of a kernel, row bands of a GEMM).
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub(crate) *mut f32);
// SAFETY: the pointer is only dereferenced by steps on disjoint row ranges of `Plan::mem`,
// which outlives the scoped joins that hand it to other threads.
unsafe impl Send for SendPtr {}
// SAFETY: as above; the pointer itself is only copied.
unsafe impl Sync for SendPtr {}

impl SendPtr {
    pub(crate) fn at(self, off: usize) -> *mut f32 {
        self.0.wrapping_add(off)
    }
}

/// Alignment of every buffer, in elements (64 bytes: a cache line, an AVX-512 vector).
const ALIGN: usize = 16;

/// Offsets (in elements) for each interval, and the arena size. Greedy in order of definition,
/// best fit among free blocks, freeing after each interval's last use: O(n log n + n·free).
/// `None` when the arena's size overflows `usize`.
pub fn plan(intervals: &[Interval]) -> Option<(Vec<usize>, usize)> {
    let mut order: Vec<usize> = (0..intervals.len()).collect();
    order.sort_by_key(|&i| (intervals[i].def, std::cmp::Reverse(intervals[i].size)));
    let mut by_last: Vec<usize> = (0..intervals.len()).collect();
    by_last.sort_by_key(|&i| intervals[i].last);
    let mut offsets = vec![0; intervals.len()];
    let mut free: Vec<(usize, usize)> = Vec::new(); // (offset, size), sorted by offset
    let mut top = 0;
    let mut next_free = 0;
    for &i in &order {
        let iv = intervals[i];
        // Release every buffer whose last use is before this definition.
        while next_free < by_last.len() && intervals[by_last[next_free]].last < iv.def {
            // Defined before `iv` (def <= last < iv.def), so already placed.
            let j = by_last[next_free];
            next_free += 1;
            release(&mut free, offsets[j], round(intervals[j].size)?);
        }
        let need = round(iv.size)?;
        let best = free
            .iter()
            .enumerate()
            .filter(|(_, b)| b.1 >= need)
            .min_by_key(|(_, b)| b.1)
            .map(|(k, _)| k);
        offsets[i] = match best {
            Some(k) => {
                let (off, size) = free[k];
                if size == need {
                    free.remove(k);
                } else {
                    free[k] = (off + need, size - need);
                }
                off
            }
            None => {
                // Grow the arena, absorbing a free block that ends at the top.
                match free.last() {
                    Some(&(off, size)) if off + size == top => {
                        free.pop();
                        top = off.checked_add(need)?;
                        off
                    }
                    _ => {
                        let off = top;
                        top = top.checked_add(need)?;
                        off
                    }
                }
            }
        };
    }
    Some((offsets, top))
}

fn round(n: usize) -> Option<usize> {
    n.div_ceil(ALIGN).checked_mul(ALIGN)
}

/// Bytes of memory the machine can give this process now: `MemAvailable` of /proc/meminfo on
/// Linux; `None` elsewhere (no limit but what the allocator refuses).
pub fn available_bytes() -> Option<usize> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// `len` zeroed floats from the allocator's zeroed path (calloc: the pages are mapped lazily,
/// not written), or `None` when the allocation is refused, instead of aborting the process.
pub fn zeroed_f32(len: usize) -> Option<Vec<f32>> {
    if len == 0 {
        return Some(Vec::new());
    }
    let layout = std::alloc::Layout::array::<f32>(len).ok()?;
    // SAFETY: `layout` has a nonzero size; a non-null result is a block of `len` f32s, zeroed
    // (0.0 is all zero bits), allocated by the global allocator with exactly the layout
    // `Vec::from_raw_parts` (capacity `len`) frees it with.
    unsafe {
        let p = std::alloc::alloc_zeroed(layout) as *mut f32;
        (!p.is_null()).then(|| Vec::from_raw_parts(p, len, len))
    }
}

/// Returns a block to the free list, merging with its neighbours.
fn release(free: &mut Vec<(usize, usize)>, off: usize, size: usize) {
    let k = free.partition_point(|b| b.0 < off);
    free.insert(k, (off, size));
    if k + 1 < free.len() && free[k].0 + free[k].1 == free[k + 1].0 {
        free[k].1 += free[k + 1].1;
        free.remove(k + 1);
    }
    if k > 0 && free[k - 1].0 + free[k - 1].1 == free[k].0 {
        free[k - 1].1 += free[k].1;
        free.remove(k);
    }
}

/// Asks Linux to back the plan's memory with 2 MB pages (transparent huge pages in `madvise`
/// mode, the common default): the steps stream through hundreds of MB, and with 4 KB pages
/// the TLB misses on every few rows. Called before the pages are first written; a refusal
/// only costs speed.
pub fn advise_huge_pages(mem: &mut [f32]) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = mem.as_mut_ptr() as usize;
        let end = start + std::mem::size_of_val(mem);
        let first = start.next_multiple_of(HUGE);
        if end > first + HUGE {
            let len = (end - first) / HUGE * HUGE;
            // SAFETY: madvise only changes how the kernel backs these pages, which lie inside
            // `mem` (rounded inward to whole huge pages); the contents are unchanged.
            let _ = unsafe { libc::madvise(first as *mut libc::c_void, len, libc::MADV_HUGEPAGE) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disjoint_lifetimes_share_memory_and_overlapping_ones_do_not() {
        let iv = |size, def, last| Interval { size, def, last };
        // a [0,1], b [1,2] overlap at step 1; c [3,4] can reuse a's block.
        let (offs, top) = plan(&[iv(16, 0, 1), iv(16, 1, 2), iv(16, 3, 4)]).unwrap();
        assert_ne!(offs[0], offs[1]);
        assert_eq!(offs[2], offs[0]);
        assert_eq!(top, 32);
        // Property: no two live-overlapping intervals overlap in memory.
        let ivs: Vec<Interval> = (0..200)
            .map(|i| iv(1 + (i * 37) % 100, i % 50, i % 50 + (i * 7) % 13))
            .collect();
        let (offs, top) = plan(&ivs).unwrap();
        for a in 0..ivs.len() {
            assert!(offs[a] + ivs[a].size <= top);
            for b in 0..a {
                let live = ivs[a].def <= ivs[b].last && ivs[b].def <= ivs[a].last;
                let mem = offs[a] < offs[b] + ivs[b].size && offs[b] < offs[a] + ivs[a].size;
                assert!(!(live && mem), "{a} and {b} collide");
            }
        }
    }

    #[test]
    fn an_arena_that_overflows_is_refused() {
        let iv = |size, def, last| Interval { size, def, last };
        assert!(plan(&[iv(usize::MAX / 2, 0, 1), iv(usize::MAX / 2, 0, 1)]).is_none());
        assert!(plan(&[iv(usize::MAX, 0, 1)]).is_none());
        assert_eq!(zeroed_f32(3), Some(vec![0.0; 3]));
        assert_eq!(zeroed_f32(usize::MAX), None, "refused, not an abort");
    }
}

/// Which cache a [`prefetch`] fills.
#[derive(Clone, Copy)]
pub(crate) enum Near {
    /// The nearest (data about to be read).
    L1,
    /// L2 (data needed after the work at hand).
    L2,
}

/// Asks the core to bring the 64-byte line holding `p` into cache (nothing on other targets).
#[inline]
pub(crate) fn prefetch(p: *const u8, near: Near) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it reads nothing the program sees, and never faults,
    // whatever the address.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0, _MM_HINT_T1};
        match near {
            Near::L1 => _mm_prefetch::<_MM_HINT_T0>(p.cast()),
            Near::L2 => _mm_prefetch::<_MM_HINT_T1>(p.cast()),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, near);
}

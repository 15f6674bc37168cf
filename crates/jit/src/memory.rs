//! The memory plan: buffers placed in one arena by liveness, so values whose lifetimes do not
//! overlap share memory.

/// One buffer to place: `size` elements, written first at step `def`, read last at step `last`.
#[derive(Clone, Copy, Debug)]
pub struct Interval {
    pub size: usize,
    pub def: usize,
    pub last: usize,
}

/// Alignment of every buffer, in elements (64 bytes: a cache line, an AVX-512 vector).
const ALIGN: usize = 16;

/// Offsets (in elements) for each interval, and the arena size. Greedy in order of definition,
/// best fit among free blocks, freeing after each interval's last use: O(n log n + n·free).
pub fn plan(intervals: &[Interval]) -> (Vec<usize>, usize) {
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
            release(&mut free, offsets[j], round(intervals[j].size));
        }
        let need = round(iv.size);
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
                        top = off + need;
                        off
                    }
                    _ => {
                        let off = top;
                        top += need;
                        off
                    }
                }
            }
        };
    }
    (offsets, top)
}

fn round(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
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
        let (offs, top) = plan(&[iv(16, 0, 1), iv(16, 1, 2), iv(16, 3, 4)]);
        assert_ne!(offs[0], offs[1]);
        assert_eq!(offs[2], offs[0]);
        assert_eq!(top, 32);
        // Property: no two live-overlapping intervals overlap in memory.
        let ivs: Vec<Interval> = (0..200)
            .map(|i| iv(1 + (i * 37) % 100, i % 50, i % 50 + (i * 7) % 13))
            .collect();
        let (offs, top) = plan(&ivs);
        for a in 0..ivs.len() {
            assert!(offs[a] + ivs[a].size <= top);
            for b in 0..a {
                let live = ivs[a].def <= ivs[b].last && ivs[b].def <= ivs[a].last;
                let mem = offs[a] < offs[b] + ivs[b].size && offs[b] < offs[a] + ivs[a].size;
                assert!(!(live && mem), "{a} and {b} collide");
            }
        }
    }
}

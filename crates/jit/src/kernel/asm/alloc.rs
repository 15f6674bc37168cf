//! Linear-scan register allocation of a traced program: values to the vector registers the
//! instruction set's emitter hands out (`zmm0..28`, `ymm0..12`), masks to `k1..6`, the
//! most-used constants pinned, the value used furthest ahead spilled.
use iced_x86::code_asm::IcedError;
use rustc_hash::FxHashMap;

use super::trace::{dest, operands, Def, Ins, Traced, V};

/// Mask registers the allocator hands out (`k7` holds the row's tail mask).
pub(super) const MASKS: [u8; 6] = [1, 2, 3, 4, 5, 6];

/// Why a spec gets no machine code (the tile program runs it instead).
#[derive(Debug)]
pub(crate) enum Unsupported {
    /// More masks live at once than `k1..k6`.
    Masks,
    /// Too few vector registers left to spill into.
    Registers,
    /// iced-x86 refused an instruction (a bug here, reported rather than run).
    Encode(String),
}

impl Unsupported {
    /// True for the limits a kernel may meet; an encoding error is a bug here.
    pub(crate) fn is_expected(&self) -> bool {
        match self {
            Unsupported::Masks | Unsupported::Registers => true,
            Unsupported::Encode(why) => why.is_empty(),
        }
    }
}

impl From<IcedError> for Unsupported {
    fn from(e: IcedError) -> Self {
        Unsupported::Encode(e.to_string())
    }
}

/// Where an allocated vector value is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Loc {
    Reg(u8),
    Spilled(u32),
}

/// The register assignment of a traced program, computed once and replayed for the full and the
/// masked (tail) loop body, which differ only in how inputs are loaded and outputs stored.
#[derive(Clone, Debug)]
pub(super) enum Step {
    /// Store register `r` to spill slot `s`.
    Spill(u8, u32),
    /// Instruction `i` with its operands' and destination's locations resolved.
    Do(usize, Resolved),
}

/// Register locations of one instruction: `d`, `k`-style masks, and up to three vector operands
/// (`None` for an input or constant, loaded into a scratch register).
#[derive(Clone, Debug, Default)]
pub(super) struct Resolved {
    pub(super) d: u8,
    pub(super) dk: u8,
    pub(super) ops: [Option<Loc>; 3],
    pub(super) ks: [u8; 2],
    /// How the tied forms are emitted (see [`Tie`]).
    pub(super) tie: Tie,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum Tie {
    /// The destination register already holds the tied operand.
    #[default]
    InPlace,
    /// Copy the tied operand into the destination first.
    Copy,
    /// FMA only: the destination holds `a` (emit the 213 form, `d = b * d + c`).
    A,
    /// FMA only: the destination holds `b` (213 form with `a`).
    B,
}

/// Linear-scan allocation of a traced program.
pub(super) struct Alloc {
    pub(super) steps: Vec<Step>,
    /// Each block's outputs' locations at the end of the body (`None`: a constant).
    pub(super) outputs: Vec<Vec<Option<Loc>>>,
    pub(super) spill_slots: u32,
    /// The most values in registers at once.
    pub(super) peak: usize,
}

/// Allocates `tr`'s values to vector registers `0 .. regs - 1`; `pinned` constants (pool index,
/// register) live in registers above those for the whole call.
pub(super) fn allocate(
    tr: &Traced,
    regs: u8,
    pinned: &[(usize, u8)],
) -> Result<Alloc, Unsupported> {
    let t = tr;
    let n = t.ins.len();
    let end = n; // outputs are read after the last instruction
                 // Every use position of each computed value, in order.
    let mut uses: Vec<Vec<usize>> = vec![Vec::new(); t.defs.len()];
    let mut kuse_last = vec![0usize; t.n_masks as usize];
    for (i, ins) in t.ins.iter().enumerate() {
        let (vs, ks) = operands(ins);
        for v in vs.into_iter().flatten() {
            uses[v.0 as usize].push(i);
        }
        for k in ks.into_iter().flatten() {
            kuse_last[k.0 as usize] = i;
        }
    }
    for v in tr.outputs.iter().flatten() {
        uses[v.0 as usize].push(end);
    }
    let computed = |v: V| matches!(t.defs[v.0 as usize], Def::Computed);
    let last = |v: V| uses[v.0 as usize].last().copied().unwrap_or(0);
    let next_use = |v: V, after: usize| {
        let u = &uses[v.0 as usize];
        u[u.partition_point(|&p| p <= after)..]
            .first()
            .copied()
            .unwrap_or(usize::MAX)
    };

    let mut loc: Vec<Option<Loc>> = t
        .defs
        .iter()
        .map(|d| match d {
            Def::Const(p) => pinned
                .iter()
                .find(|(q, _)| q == p)
                .map(|&(_, reg)| Loc::Reg(reg)),
            _ => None,
        })
        .collect();
    let mut holder: Vec<Option<V>> = vec![None; regs as usize];
    let mut peak = 0;
    let mut kreg = vec![0u8; t.n_masks as usize];
    let mut kfree: Vec<u8> = MASKS.iter().rev().copied().collect();
    let mut steps = Vec::with_capacity(n + n / 4);
    let mut spill_slots = 0u32;

    for (i, ins) in t.ins.iter().enumerate() {
        let (vs, ks) = operands(ins);
        let (dv, dk) = dest(ins);
        let mut r = Resolved::default();
        for (slot, v) in vs.iter().enumerate() {
            r.ops[slot] = v.and_then(|v| loc[v.0 as usize]);
        }
        for (slot, k) in ks.iter().enumerate() {
            if let Some(k) = k {
                r.ks[slot] = kreg[k.0 as usize];
            }
        }
        // Masks whose last use is here free their registers before the destination is taken.
        for k in ks.into_iter().flatten() {
            if kuse_last[k.0 as usize] == i && !kfree.contains(&kreg[k.0 as usize]) {
                kfree.push(kreg[k.0 as usize]);
            }
        }
        if let Some(dk) = dk {
            let reg = kfree.pop().ok_or(Unsupported::Masks)?;
            kreg[dk.0 as usize] = reg;
            r.dk = reg;
        }
        let Some(dv) = dv else {
            steps.push(Step::Do(i, r));
            continue;
        };
        // A value dying here, in a register.
        let dies_in_reg = |v: Option<V>, loc: &Vec<Option<Loc>>| match v {
            Some(v) if computed(v) && last(v) == i => match loc[v.0 as usize] {
                Some(Loc::Reg(reg)) => Some(reg),
                _ => None,
            },
            _ => None,
        };
        // Tied forms: the destination starts as one operand's value.
        let tied: Option<(u8, Tie)> = match *ins {
            Ins::MaskBin(..) => dies_in_reg(vs[0], &loc).map(|reg| (reg, Tie::InPlace)),
            Ins::Fma(..) => dies_in_reg(vs[2], &loc)
                .map(|reg| (reg, Tie::InPlace))
                .or_else(|| dies_in_reg(vs[0], &loc).map(|reg| (reg, Tie::A)))
                .or_else(|| dies_in_reg(vs[1], &loc).map(|reg| (reg, Tie::B))),
            _ => None,
        };
        let is_tied_op = matches!(ins, Ins::MaskBin(..) | Ins::Fma(..));
        let operand_regs: Vec<u8> = r
            .ops
            .iter()
            .filter_map(|l| match l {
                Some(Loc::Reg(reg)) => Some(*reg),
                _ => None,
            })
            .collect();
        let free_dying = |holder: &mut Vec<Option<V>>, loc: &Vec<Option<Loc>>| {
            for v in vs.iter().flatten() {
                if computed(*v) && last(*v) == i {
                    if let Some(Loc::Reg(reg)) = loc[v.0 as usize] {
                        holder[reg as usize] = None;
                    }
                }
            }
        };
        let reg = if let Some((reg, tie)) = tied {
            free_dying(&mut holder, &loc);
            r.tie = tie;
            reg
        } else {
            // A tied form copying its operand first must not take an operand's register; other
            // instructions read every operand before writing, so they may.
            if !is_tied_op {
                free_dying(&mut holder, &loc);
            }
            let reg = match (0..regs).find(|&g| holder[g as usize].is_none()) {
                Some(g) => g,
                None => {
                    // Spill the value used furthest ahead (never an operand of this instruction).
                    let (g, victim) = (0..regs)
                        .filter(|g| !operand_regs.contains(g))
                        .map(|g| (g, holder[g as usize].expect("all taken")))
                        .max_by_key(|&(_, v)| next_use(v, i))
                        .ok_or(Unsupported::Registers)?;
                    steps.push(Step::Spill(g, spill_slots));
                    loc[victim.0 as usize] = Some(Loc::Spilled(spill_slots));
                    spill_slots += 1;
                    holder[g as usize] = None;
                    g
                }
            };
            if is_tied_op {
                free_dying(&mut holder, &loc);
                r.tie = Tie::Copy;
            }
            reg
        };
        holder[reg as usize] = Some(dv);
        peak = peak.max(holder.iter().filter(|h| h.is_some()).count());
        loc[dv.0 as usize] = Some(Loc::Reg(reg));
        r.d = reg;
        steps.push(Step::Do(i, r));
    }
    let outputs = tr
        .outputs
        .iter()
        .map(|block| block.iter().map(|v| loc[v.0 as usize]).collect())
        .collect();
    Ok(Alloc {
        steps,
        outputs,
        spill_slots,
        peak,
    })
}

/// The constants to keep in registers for the whole call, most used first, in the registers
/// the program's values leave free of the `allocatable` (`peak` at most in use at once, two
/// spare): a polynomial reads a constant per step, and reloading each one would double the
/// instructions.
pub(super) fn pin_constants(tr: &Traced, peak: usize, allocatable: u8) -> Vec<(usize, u8)> {
    let room = (allocatable as usize).saturating_sub(peak + 2);
    let mut count: FxHashMap<usize, usize> = FxHashMap::default();
    for ins in &tr.ins {
        for v in operands(ins).0.into_iter().flatten() {
            if let Def::Const(p) = tr.defs[v.0 as usize] {
                *count.entry(p).or_default() += 1;
            }
        }
    }
    let mut by_use: Vec<(usize, usize)> = count.into_iter().collect();
    by_use.sort_by_key(|&(p, n)| (std::cmp::Reverse(n), p));
    by_use
        .into_iter()
        .take(room)
        .enumerate()
        .map(|(j, (p, _))| (p, allocatable - 1 - j as u8))
        .collect()
}

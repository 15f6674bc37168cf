//! A traced program rewritten for a vector unit without mask registers (AVX2): each mask
//! becomes a vector of all-ones or zero lanes, allocated like any other value, and each masked
//! instruction a plain one followed by a blend. The lane values are those of the mask-register
//! program, bit for bit.
use super::trace::{Def, Ins, Pool, Traced, VBin, K, V};

/// `tr` with no mask values: comparisons produce vectors (`CmpV`, `IGt`), mask logic is bitwise
/// logic on them, and `MaskBin`, `Blend` and `MaskZ` become `BlendV` and `And`.
pub(super) fn vector_masks(tr: Traced, pool: &mut Pool) -> Traced {
    let Traced {
        mut defs,
        n_masks,
        ins,
        outputs,
    } = tr;
    let fresh = |defs: &mut Vec<Def>, d: Def| {
        defs.push(d);
        V(defs.len() as u32 - 1)
    };
    let masks: Vec<V> = (0..n_masks)
        .map(|_| fresh(&mut defs, Def::Computed))
        .collect();
    let m = |k: K| masks[k.0 as usize];
    let ones = fresh(&mut defs, Def::Const(pool.intern(u32::MAX)));
    let mut out = Vec::with_capacity(ins.len() + ins.len() / 4);
    for i in ins {
        match i {
            Ins::Cmp(pred, k, a, b) => out.push(Ins::CmpV(pred, m(k), a, b)),
            Ins::ICmpLt(k, a, b) => out.push(Ins::Bin(VBin::IGt, m(k), b, a)),
            Ins::KAnd(d, a, b) => out.push(Ins::Bin(VBin::And, m(d), m(a), m(b))),
            Ins::KOr(d, a, b) => out.push(Ins::Bin(VBin::Or, m(d), m(a), m(b))),
            Ins::KNot(d, a) => out.push(Ins::Bin(VBin::Xor, m(d), m(a), ones)),
            Ins::MaskBin(op, d, src, k, a, b) => {
                let t = fresh(&mut defs, Def::Computed);
                out.push(Ins::Bin(op, t, a, b));
                out.push(Ins::BlendV(d, m(k), t, src));
            }
            Ins::Blend(d, k, t, f) => out.push(Ins::BlendV(d, m(k), t, f)),
            Ins::MaskZ(d, k, a) => out.push(Ins::Bin(VBin::And, d, m(k), a)),
            other => out.push(other),
        }
    }
    Traced {
        defs,
        n_masks: 0,
        ins: out,
        outputs,
    }
}

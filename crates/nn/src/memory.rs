//! Sizes checked before they are allocated: a model whose parameters overflow `usize` or do not
//! fit in memory is an error naming the parameter, not an allocation abort or the OOM killer.
use crate::layers::ParamSpec;
use crate::{NnError, Result};

/// Elements of a tensor of `shape`, or `None` when the product overflows `usize`.
pub fn checked_numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// Memory the system can give without swapping (`MemAvailable` of `/proc/meminfo`), in bytes;
/// `None` where that is unknown (not Linux), in which case no limit is applied.
pub fn available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// `bytes` in a short human form (`1.5 GiB`).
pub fn human(bytes: u128) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Checks that the host memory `build` needs for `specs` (f32 weights, `states` optimiser
/// tensors per parameter, and the initialisers' f64 workspace) is computable and within
/// `limit` bytes (`None`: `MemAvailable`, when known). Errors name the largest parameter.
pub fn check_params(specs: &[ParamSpec], states: usize, limit: Option<u64>) -> Result<()> {
    let mut weights: u128 = 0;
    let mut workspace: u128 = 0;
    let mut largest: Option<(&ParamSpec, usize)> = None;
    for s in specs {
        let n = checked_numel(&s.shape)
            .filter(|n| n.checked_mul(8).is_some())
            .ok_or_else(|| NnError::TooLarge {
                what: format!("parameter {} {:?}", s.name, s.shape),
                message: "its number of elements overflows the address space".into(),
            })?;
        weights += n as u128 * 4;
        workspace = workspace.max(s.init.workspace_bytes(&s.shape));
        if largest.is_none_or(|(_, m)| n > m) {
            largest = Some((s, n));
        }
    }
    let total = weights * (1 + states as u128) + workspace;
    let (limit, source) = match limit {
        Some(l) => (l, "the limit set with with_memory_limit"),
        None => match available_bytes() {
            Some(a) => (a, "available (MemAvailable in /proc/meminfo)"),
            None => return Ok(()),
        },
    };
    if total > limit as u128 {
        let (s, n) = largest.expect("a parameter when total > 0");
        return Err(NnError::TooLarge {
            what: format!(
                "model parameters (largest: {} {:?}, {n} values)",
                s.name, s.shape
            ),
            message: format!(
                "need {} ({} of f32 weights, {states} optimiser state tensor(s) per weight, \
                 {} of initialiser workspace), more than the {} {source}",
                human(total),
                human(weights),
                human(workspace),
                human(limit as u128)
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::Init;

    #[test]
    fn overflow_and_limit_are_errors_naming_the_parameter() {
        assert_eq!(checked_numel(&[3, 4]), Some(12));
        assert_eq!(checked_numel(&[1 << 62, 8]), None);
        let huge = [ParamSpec::new(
            "embedding.weight",
            &[1 << 62, 8],
            Init::Zeros,
        )];
        let e = check_params(&huge, 0, None).unwrap_err().to_string();
        assert!(
            e.contains("embedding.weight") && e.contains("overflows"),
            "{e}"
        );
        let small = [ParamSpec::new("dense.weight", &[4, 4], Init::Orthogonal)];
        // 64 B of weights, twice that of Adam state, 128 B of f64 workspace.
        check_params(&small, 2, Some(64 * 3 + 128)).unwrap();
        let e = check_params(&small, 2, Some(64 * 3 + 127))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("dense.weight") && e.contains("with_memory_limit"),
            "{e}"
        );
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(3 << 29), "1.5 GiB");
    }
}

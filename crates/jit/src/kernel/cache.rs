//! The kernel every backend produces and the cache that builds it: [`KernelCache::get`] turns
//! a [`KernelSpec`] into a [`Kernel`] once per distinct spec, on the host's fastest
//! [`Backend`]; [`Kernel::run`] is the checked entry, [`Kernel::run_raw`] the executor's.
use rustc_hash::FxHashMap;
use std::sync::{Arc, Mutex, OnceLock};

use trellis_ir::ScalarFn;

use super::asm::{AsmKernel, Isa};
use super::avx512::{self, Program as Avx512Program};
use super::cranelift::{Compiler, KernelFn};
use super::spec::{KernelSpec, RawOperands};
use crate::error::JitError;

/// A strided 2-D view of f32 data: element (r, c) is at `data[offset + r*row_stride + c]` (or
/// `data[offset + r*row_stride]` when the spec says col_broadcast). `row_stride` 0 = broadcast
/// along rows (e.g. a bias).
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    pub data: &'a [f32],
    pub offset: usize,
    pub row_stride: usize,
}

/// A strided, writable 2-D view: element (r, c) is at `data[offset + r*row_stride + c]`.
#[derive(Debug)]
pub struct ViewMut<'a> {
    pub data: &'a mut [f32],
    pub offset: usize,
    pub row_stride: usize,
}

impl<'a> View<'a> {
    /// A dense row-major view of a `? x row_stride` matrix starting at element 0.
    pub fn new(data: &'a [f32], row_stride: usize) -> Self {
        View {
            data,
            offset: 0,
            row_stride,
        }
    }
}

impl<'a> ViewMut<'a> {
    /// A dense row-major view of a `? x row_stride` matrix starting at element 0.
    pub fn new(data: &'a mut [f32], row_stride: usize) -> Self {
        ViewMut {
            data,
            offset: 0,
            row_stride,
        }
    }
}

/// Which code runs fused kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// Machine code from Cranelift: f32x4 loops (any host Cranelift supports).
    Cranelift,
    /// Tile programs on sixteen-lane `zmm` registers (hosts with AVX-512F and FMA), see
    /// `avx512.rs`: one loop over a tile in L1 per node of the expression.
    Avx512Tiles,
    /// AVX-512 machine code with the expression's values in registers (`asm/`), on the
    /// same hosts; a kernel that would need more than six masks at once runs as a tile program.
    /// Same math as the others, bit-identical results.
    Avx512,
    /// AVX2 machine code with the values in registers (`asm/`, eight lanes, masks as vectors):
    /// hosts with AVX2 and FMA but no AVX-512. A kernel it cannot build runs on Cranelift.
    Avx2,
}

impl Backend {
    /// The fastest backend this host runs, unless `TRELLIS_KERNELS` asks for another
    /// (`cranelift`, `tiles`, `avx2`) the host runs.
    pub fn host() -> Backend {
        let forced = std::env::var("TRELLIS_KERNELS").ok();
        let avx2 = crate::cpu::has_avx2();
        match forced.as_deref() {
            Some("cranelift") => Backend::Cranelift,
            Some("avx2") if avx2 => Backend::Avx2,
            _ if avx512::available() => match forced.as_deref() {
                Some("tiles") => Backend::Avx512Tiles,
                _ => Backend::Avx512,
            },
            _ if avx2 => Backend::Avx2,
            _ => Backend::Cranelift,
        }
    }

    /// Whether fusion cuts a kernel between chained polynomials for this backend (see
    /// `fusion::split_transcendental_chains`).
    pub fn splits_transcendental_chains(self) -> bool {
        !matches!(self, Backend::Avx512 | Backend::Avx2)
    }

    /// Whether this host runs the backend.
    pub fn runs_here(self) -> bool {
        match self {
            Backend::Cranelift => true,
            Backend::Avx512Tiles | Backend::Avx512 => avx512::available(),
            Backend::Avx2 => crate::cpu::has_avx2(),
        }
    }

    /// Every backend this host runs (for tests that check them all).
    pub fn all_available() -> Vec<Backend> {
        [
            Backend::Cranelift,
            Backend::Avx2,
            Backend::Avx512Tiles,
            Backend::Avx512,
        ]
        .into_iter()
        .filter(|b| b.runs_here())
        .collect()
    }
}

enum Code {
    Cranelift(KernelFn),
    Avx512Tiles(Avx512Program),
    /// AVX-512 or AVX2 machine code.
    Asm(AsmKernel),
}

/// A compiled kernel. Cheap to share (`Arc<Kernel>` from [`KernelCache::get`]); Cranelift
/// machine code lives as long as the process (JIT memory is never freed).
pub struct Kernel {
    code: Code,
    /// What it computes (for `Plan::explain`).
    expr: ScalarFn,
    col_broadcast: Vec<bool>,
    n_outputs: usize,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel")
            .field(
                "code",
                &match &self.code {
                    Code::Cranelift(f) => format!("cranelift {:p}", *f as *const u8),
                    Code::Avx512Tiles(p) => format!("{p:?}"),
                    Code::Asm(k) => format!("{k:?}"),
                },
            )
            .field("col_broadcast", &self.col_broadcast)
            .field("n_outputs", &self.n_outputs)
            .finish()
    }
}

/// The last element index a view touches on a `rows x cols` grid (rows, cols >= 1).
fn last_index(offset: usize, row_stride: usize, rows: usize, last_col: usize) -> Option<usize> {
    (rows - 1)
        .checked_mul(row_stride)?
        .checked_add(offset)?
        .checked_add(last_col)
}

impl Kernel {
    pub fn n_inputs(&self) -> usize {
        self.col_broadcast.len()
    }
    pub fn n_outputs(&self) -> usize {
        self.n_outputs
    }
    /// The expression the kernel computes.
    pub fn expr(&self) -> &ScalarFn {
        &self.expr
    }
    /// Per input, whether it is read once per row (column stride 0).
    pub fn col_broadcast(&self) -> &[bool] {
        &self.col_broadcast
    }

    /// Runs the kernel over a `rows x cols` grid. Checks every bound (each view covers its last
    /// element, counts match, output rows do not overlap) before calling the machine code and
    /// returns an error naming what is wrong.
    pub fn run(
        &self,
        rows: usize,
        cols: usize,
        inputs: &[View],
        outputs: &mut [ViewMut],
    ) -> Result<(), JitError> {
        if inputs.len() != self.n_inputs() {
            return Err(JitError::ViewCount {
                what: "input",
                expected: self.n_inputs(),
                got: inputs.len(),
            });
        }
        if outputs.len() != self.n_outputs {
            return Err(JitError::ViewCount {
                what: "output",
                expected: self.n_outputs,
                got: outputs.len(),
            });
        }
        if rows == 0 || cols == 0 {
            return Ok(());
        }
        let check = |what, index, offset, row_stride, last_col, len| {
            let needed = last_index(offset, row_stride, rows, last_col);
            match needed {
                Some(n) if n < len => Ok(()),
                _ => Err(JitError::ViewOutOfBounds {
                    what,
                    index,
                    rows,
                    cols,
                    offset,
                    row_stride,
                    needed: needed.unwrap_or(usize::MAX),
                    len,
                }),
            }
        };
        for (i, v) in inputs.iter().enumerate() {
            let last_col = if self.col_broadcast[i] { 0 } else { cols - 1 };
            check("input", i, v.offset, v.row_stride, last_col, v.data.len())?;
        }
        for (i, v) in outputs.iter().enumerate() {
            check("output", i, v.offset, v.row_stride, cols - 1, v.data.len())?;
            if rows > 1 && v.row_stride < cols {
                return Err(JitError::OverlappingOutput {
                    index: i,
                    rows,
                    cols,
                    row_stride: v.row_stride,
                });
            }
        }
        // SAFETY: each offset is below its slice's length (checked above: offset <= last index
        // < len), so the offset pointers stay inside their allocations.
        let in_ptrs: Vec<*const f32> = inputs
            .iter()
            .map(|v| unsafe { v.data.as_ptr().add(v.offset) })
            .collect();
        let in_strides: Vec<usize> = inputs.iter().map(|v| v.row_stride).collect();
        // SAFETY: as for the inputs.
        let out_ptrs: Vec<*mut f32> = outputs
            .iter_mut()
            .map(|v| unsafe { v.data.as_mut_ptr().add(v.offset) })
            .collect();
        let out_strides: Vec<usize> = outputs.iter().map(|v| v.row_stride).collect();
        // SAFETY: the counts match the kernel, every element (r, c) the kernel reads or writes
        // lies inside its view's slice (checked above), outputs are distinct `&mut` slices so
        // they alias nothing else, and the pointer arrays outlive the call.
        unsafe {
            self.run_raw(
                rows,
                cols,
                in_ptrs.as_ptr(),
                in_strides.as_ptr(),
                out_ptrs.as_ptr(),
                out_strides.as_ptr(),
            );
        }
        Ok(())
    }

    /// Unchecked raw entry for the executor: pointers are already offset to element (0, 0),
    /// strides are in elements.
    ///
    /// # Safety
    /// - `inputs` and `in_row_strides` point to [`Kernel::n_inputs`] readable entries,
    ///   `outputs` and `out_row_strides` to [`Kernel::n_outputs`] entries;
    /// - for every `r < rows`, `c < cols`, input `i` is readable at `inputs[i] + r *
    ///   in_row_strides[i] + c` (`+ 0` instead of `+ c` for a col_broadcast input) and output
    ///   `o` is writable at `outputs[o] + r * out_row_strides[o] + c`;
    /// - no output element is read or written through any other pointer during the call,
    ///   except that an output may be exactly the same view as an input (in place).
    pub unsafe fn run_raw(
        &self,
        rows: usize,
        cols: usize,
        inputs: *const *const f32,
        in_row_strides: *const usize,
        outputs: *const *mut f32,
        out_row_strides: *const usize,
    ) {
        // SAFETY: the contract gives `n_inputs` / `n_outputs` entries, alive for the call.
        let raw = unsafe {
            RawOperands::new(
                inputs,
                in_row_strides,
                outputs,
                out_row_strides,
                self.n_inputs(),
                self.n_outputs,
            )
        };
        match &self.code {
            // SAFETY: the caller upholds the contract above, which is what the generated code
            // relies on; the function pointer comes from a finalized, never-freed JIT module.
            Code::Cranelift(f) => unsafe {
                f(rows, cols, inputs, in_row_strides, outputs, out_row_strides)
            },
            // SAFETY: the same contract; the cache only builds programs on hosts that have
            // AVX-512F and FMA.
            Code::Avx512Tiles(p) => unsafe { p.run(rows, cols, &raw) },
            // SAFETY: the same contract; the cache only builds code for an instruction set on
            // hosts that have it ([`Backend::runs_here`]).
            Code::Asm(k) => unsafe { k.run(rows, cols, &raw) },
        }
    }
}

/// Compiles kernels (Cranelift ones into one JIT module) and caches them by spec.
pub struct KernelCache {
    clif: Compiler,
    backend: Backend,
    kernels: FxHashMap<KernelSpec, Arc<Kernel>>,
}

impl KernelCache {
    /// A cache for the host's fastest backend ([`Backend::host`]).
    pub fn new() -> Result<Self, JitError> {
        Self::with_backend(Backend::host())
    }

    /// A cache whose kernels run on `backend`; Cranelift's JIT module is set up for the host
    /// (`opt_level=speed`, native ISA flags).
    pub fn with_backend(backend: Backend) -> Result<Self, JitError> {
        if !backend.runs_here() {
            return Err(JitError::Isa(format!(
                "the {backend:?} kernel backend needs a host with {} and FMA",
                if backend == Backend::Avx2 {
                    "AVX2"
                } else {
                    "AVX-512F"
                }
            )));
        }
        Ok(KernelCache {
            clif: Compiler::new()?,
            backend,
            kernels: FxHashMap::default(),
        })
    }

    /// The process-wide cache plans compile into: Cranelift code memory is never freed, so
    /// every plan shares one module and each distinct kernel is compiled once.
    pub(crate) fn shared() -> Result<&'static Mutex<KernelCache>, JitError> {
        static CACHE: OnceLock<Mutex<KernelCache>> = OnceLock::new();
        if let Some(c) = CACHE.get() {
            return Ok(c);
        }
        let c = KernelCache::new()?;
        Ok(CACHE.get_or_init(|| Mutex::new(c)))
    }

    /// The kernel for `spec`, compiled on first use.
    pub fn get(&mut self, spec: &KernelSpec) -> Result<Arc<Kernel>, JitError> {
        if let Some(k) = self.kernels.get(spec) {
            return Ok(k.clone());
        }
        spec.validate()?;
        let code = match self.backend {
            Backend::Cranelift => Code::Cranelift(self.clif.compile(spec)?),
            Backend::Avx512Tiles => Code::Avx512Tiles(Avx512Program::new(spec)),
            Backend::Avx512 => match AsmKernel::new(spec, Isa::Avx512) {
                Ok(k) => Code::Asm(k),
                Err(why) => {
                    debug_assert!(why.is_expected(), "no AVX-512 code for {spec:?}: {why:?}");
                    Code::Avx512Tiles(Avx512Program::new(spec))
                }
            },
            Backend::Avx2 => match AsmKernel::new(spec, Isa::Avx2) {
                Ok(k) => Code::Asm(k),
                Err(why) => {
                    debug_assert!(why.is_expected(), "no AVX2 code for {spec:?}: {why:?}");
                    Code::Cranelift(self.clif.compile(spec)?)
                }
            },
        };
        let k = Arc::new(Kernel {
            code,
            expr: spec.expr.clone(),
            col_broadcast: spec.col_broadcast.clone(),
            n_outputs: spec.expr.outputs.len(),
        });
        self.kernels.insert(spec.clone(), k.clone());
        Ok(k)
    }

    /// The backend this cache's kernels run on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The number of compiled kernels.
    pub fn len(&self) -> usize {
        self.kernels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kernels.is_empty()
    }
}

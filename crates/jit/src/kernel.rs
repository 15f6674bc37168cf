//! Fused elementwise kernels: a [`ScalarFn`] run over a strided 2-D grid, by one of two
//! [`Backend`]s behind one [`Kernel`] type and one cache; this file is also the Cranelift one.
//!
//! Cranelift compiles the expression into one function with the C signature
//! `fn(rows, cols, in_ptrs, in_row_strides, out_ptrs, out_row_strides)` (strides in elements).
//! For each row it runs an f32x4 loop over the columns, then a scalar tail for the last
//! `cols % 4` columns. Inputs that are constant along columns (`col_broadcast`) are loaded once
//! per row and splatted. Each expression node is emitted once per element, and all outputs are
//! stored from the same pass.
use std::collections::HashMap;
use std::sync::Arc;

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, AbiParam, BlockArg, InstBuilder, MemFlagsData, Type, Value};
use cranelift_codegen::isa::TargetFrontendConfig;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, Linkage, Module};
use trellis_ir::{Binary, Scalar, ScalarFn};

use crate::avx512::{self, Program as Avx512Program};
use crate::error::JitError;
use crate::math::{ClifLanes, Lanes};

/// What a compiled kernel computes and how it reads its inputs; the kernel cache key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KernelSpec {
    pub expr: ScalarFn,
    /// Per input: true when the input is constant along columns (column stride 0, e.g. a
    /// per-row value or a scalar).
    pub col_broadcast: Vec<bool>,
}

impl KernelSpec {
    /// A spec whose inputs are all full (not column-broadcast).
    pub fn new(expr: ScalarFn) -> Self {
        let col_broadcast = vec![false; expr.n_inputs];
        KernelSpec {
            expr,
            col_broadcast,
        }
    }

    /// Checks that the expression is well formed: operands refer to earlier nodes, inputs are
    /// in range, there is at least one output, and there is one broadcast flag per input.
    pub fn validate(&self) -> Result<(), JitError> {
        let e = &self.expr;
        let bad = |msg: String| Err(JitError::InvalidSpec(msg));
        if self.col_broadcast.len() != e.n_inputs {
            return bad(format!(
                "{} col_broadcast flags for {} inputs",
                self.col_broadcast.len(),
                e.n_inputs
            ));
        }
        if e.outputs.is_empty() {
            return bad("the expression has no outputs".into());
        }
        for (i, n) in e.nodes.iter().enumerate() {
            if let Scalar::Input(k) = n {
                if *k as usize >= e.n_inputs {
                    return bad(format!("node {i}: input {k} of {}", e.n_inputs));
                }
            }
            if let Some(o) = n.operands().find(|&o| o as usize >= i) {
                return bad(format!("node {i} uses node {o}, which does not precede it"));
            }
        }
        if let Some(o) = e.outputs.iter().find(|&&o| o as usize >= e.nodes.len()) {
            return bad(format!("output node {o} of {} nodes", e.nodes.len()));
        }
        Ok(())
    }
}

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

type KernelFn = unsafe extern "C" fn(
    usize,
    usize,
    *const *const f32,
    *const usize,
    *const *mut f32,
    *const usize,
);

/// Which code runs fused kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// Machine code from Cranelift: f32x4 loops (any host Cranelift supports).
    Cranelift,
    /// Tile programs on sixteen-lane `zmm` registers (hosts with AVX-512F and FMA), see
    /// `avx512.rs`. Same math, bit-identical results; the LSTM step's kernels run 2.6x
    /// (forward) and 1.5x (backward) faster than with Cranelift.
    Avx512,
}

impl Backend {
    /// The fastest backend this host runs, unless `TRELLIS_KERNELS=cranelift` asks for the
    /// portable one.
    pub fn host() -> Backend {
        let forced = std::env::var("TRELLIS_KERNELS").is_ok_and(|v| v == "cranelift");
        if !forced && avx512::available() {
            Backend::Avx512
        } else {
            Backend::Cranelift
        }
    }

    /// Every backend this host runs (for tests that check them all).
    pub fn all_available() -> Vec<Backend> {
        let mut v = vec![Backend::Cranelift];
        if avx512::available() {
            v.push(Backend::Avx512);
        }
        v
    }
}

enum Code {
    Cranelift(KernelFn),
    Avx512(Avx512Program),
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
                    Code::Avx512(p) => format!("{p:?}"),
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
        match &self.code {
            // SAFETY: the caller upholds the contract above, which is what the generated code
            // relies on; the function pointer comes from a finalized, never-freed JIT module.
            Code::Cranelift(f) => unsafe {
                f(rows, cols, inputs, in_row_strides, outputs, out_row_strides)
            },
            // SAFETY: the same contract; the cache only builds programs on hosts that have
            // AVX-512F and FMA.
            Code::Avx512(p) => unsafe {
                p.run(rows, cols, inputs, in_row_strides, outputs, out_row_strides)
            },
        }
    }
}

/// Compiles kernels into one JIT module and caches them by spec.
pub struct KernelCache {
    module: JITModule,
    fma: bool,
    backend: Backend,
    kernels: HashMap<KernelSpec, Arc<Kernel>>,
    ctx: cranelift_codegen::Context,
    fctx: FunctionBuilderContext,
}

impl KernelCache {
    /// A cache for the host's fastest backend ([`Backend::host`]).
    pub fn new() -> Result<Self, JitError> {
        Self::with_backend(Backend::host())
    }

    /// A cache whose kernels run on `backend`; Cranelift's JIT module is set up for the host
    /// (`opt_level=speed`, native ISA flags).
    pub fn with_backend(backend: Backend) -> Result<Self, JitError> {
        if backend == Backend::Avx512 && !avx512::available() {
            return Err(JitError::Isa(
                "the AVX-512 kernel backend needs a host with AVX-512F and FMA".into(),
            ));
        }
        let mut fb = settings::builder();
        let set = |fb: &mut settings::Builder, k: &str, v: &str| {
            fb.set(k, v)
                .map_err(|e| JitError::Isa(format!("setting {k}={v}: {e}")))
        };
        set(&mut fb, "opt_level", "speed")?;
        set(&mut fb, "is_pic", "false")?;
        let isa = cranelift_native::builder()
            .map_err(|e| JitError::Isa(e.to_string()))?
            .finish(settings::Flags::new(fb))
            .map_err(|e| JitError::Isa(e.to_string()))?;
        let fma = isa
            .isa_flags()
            .iter()
            .any(|v| v.name == "has_fma" && v.as_bool() == Some(true));
        let module = JITModule::new(JITBuilder::with_isa(isa, default_libcall_names()));
        let ctx = module.make_context();
        Ok(KernelCache {
            module,
            fma,
            backend,
            kernels: HashMap::new(),
            ctx,
            fctx: FunctionBuilderContext::new(),
        })
    }

    /// The kernel for `spec`, compiled on first use.
    pub fn get(&mut self, spec: &KernelSpec) -> Result<Arc<Kernel>, JitError> {
        if let Some(k) = self.kernels.get(spec) {
            return Ok(k.clone());
        }
        spec.validate()?;
        let code = match self.backend {
            Backend::Cranelift => Code::Cranelift(self.compile(spec)?),
            Backend::Avx512 => Code::Avx512(Avx512Program::new(spec)),
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

    fn compile(&mut self, spec: &KernelSpec) -> Result<KernelFn, JitError> {
        let cg = |e: &dyn std::fmt::Debug| JitError::Codegen(format!("{e:?}"));
        let tc = self.module.target_config();
        let ptr = tc.pointer_type();
        let mut sig = self.module.make_signature();
        for _ in 0..6 {
            sig.params.push(AbiParam::new(ptr));
        }
        let name = format!("trellis_kernel_{}", self.kernels.len());
        let id = self
            .module
            .declare_function(&name, Linkage::Local, &sig)
            .map_err(|e| cg(&e))?;
        self.module.clear_context(&mut self.ctx);
        self.ctx.func.signature = sig;
        {
            let b = FunctionBuilder::new(&mut self.ctx.func, &mut self.fctx);
            build_kernel(b, spec, tc, self.fma);
        }
        self.module
            .define_function(id, &mut self.ctx)
            .map_err(|e| cg(&e))?;
        // TRELLIS_DUMP_KERNELS=DIR writes each kernel's machine code (objdump -b binary).
        if let (Some(dir), Some(code)) = (
            std::env::var_os("TRELLIS_DUMP_KERNELS"),
            self.ctx.compiled_code(),
        ) {
            let _ = std::fs::write(
                std::path::Path::new(&dir).join(format!("{name}.bin")),
                code.code_buffer(),
            );
        }
        self.module.clear_context(&mut self.ctx);
        self.module.finalize_definitions().map_err(|e| cg(&e))?;
        let code = self.module.get_finalized_function(id);
        // SAFETY: `code` is the finalized machine code of a function declared with exactly
        // this signature (six pointer-sized integer parameters, no result, the default call
        // convention of the host = extern "C").
        Ok(unsafe { std::mem::transmute::<*const u8, KernelFn>(code) })
    }
}

/// Which nodes (and so which inputs) the outputs depend on.
pub(crate) fn live_nodes(e: &ScalarFn) -> Vec<bool> {
    let mut live = vec![false; e.nodes.len()];
    for &o in &e.outputs {
        live[o as usize] = true;
    }
    for i in (0..e.nodes.len()).rev() {
        if !live[i] {
            continue;
        }
        for a in e.nodes[i].operands() {
            live[a as usize] = true;
        }
    }
    live
}

/// A constant small-integer exponent, for `pow` by repeated multiplication.
pub(crate) fn small_int(e: &ScalarFn, node: u32) -> Option<i32> {
    e.small_int(node)
}

/// Emits the expression for one element (or four) given the input values, for each of
/// several independent copies (an unrolled loop body): node by node across the copies, so the
/// copies' dependency chains interleave and the core overlaps them.
fn emit_expr(
    l: &mut ClifLanes,
    e: &ScalarFn,
    live: &[bool],
    inputs: &[Vec<Option<Value>>],
) -> Vec<Vec<Value>> {
    let copies = inputs.len();
    let mut v: Vec<Vec<Option<Value>>> = vec![Vec::with_capacity(e.nodes.len()); copies];
    for (i, n) in e.nodes.iter().enumerate() {
        for (u, vu) in v.iter_mut().enumerate() {
            if !live[i] {
                vu.push(None);
                continue;
            }
            let x = emit_node(l, e, n, vu, &inputs[u]);
            vu.push(Some(x));
        }
    }
    v.iter()
        .map(|vu| {
            e.outputs
                .iter()
                .map(|&o| vu[o as usize].expect("outputs are live"))
                .collect()
        })
        .collect()
}

/// One node of the expression, its operands already emitted in `v`.
fn emit_node(
    l: &mut ClifLanes,
    e: &ScalarFn,
    n: &Scalar,
    v: &[Option<Value>],
    inputs: &[Option<Value>],
) -> Value {
    let g = |k: u32| v[k as usize].expect("operand of a live node is live");
    match *n {
        Scalar::Input(k) => inputs[k as usize].expect("live input is loaded"),
        Scalar::Const(c) => l.f(c as f32),
        Scalar::Unary(f, a) => f.lanes(l, g(a)),
        Scalar::Binary(Binary::Pow, a, b) if small_int(e, b).is_some() => {
            l.powi(g(a), small_int(e, b).expect("checked"))
        }
        Scalar::Binary(f, a, b) => f.lanes(l, g(a), g(b)),
        Scalar::Select(c, a, b) => l.select_nonzero(g(c), g(a), g(b)),
        Scalar::Prim(p, a) => {
            let args: Vec<Value> = a[..p.arity()].iter().map(|&k| g(k)).collect();
            p.lanes(l, &args)
        }
    }
}

fn jump_args(v: &[Value]) -> Vec<BlockArg> {
    v.iter().map(|&x| BlockArg::Value(x)).collect()
}

/// Builds the kernel's loop nest (see the module docs).
fn build_kernel(mut b: FunctionBuilder, spec: &KernelSpec, tc: TargetFrontendConfig, fma: bool) {
    let ptr = tc.pointer_type();
    let e = &spec.expr;
    let live = live_nodes(e);
    let mut used = vec![false; e.n_inputs];
    for (i, n) in e.nodes.iter().enumerate() {
        if let (true, Scalar::Input(k)) = (live[i], n) {
            used[*k as usize] = true;
        }
    }
    let n_out = e.outputs.len();
    // Bounds are checked by the caller; accesses never trap.
    let mem = MemFlagsData::new().with_notrap();

    let entry = b.create_block();
    let row_head = b.create_block();
    let row_body = b.create_block();
    let vec2_head = b.create_block();
    let vec2_body = b.create_block();
    let vec_head = b.create_block();
    let vec_body = b.create_block();
    let tail_head = b.create_block();
    let tail_body = b.create_block();
    let row_next = b.create_block();
    let exit = b.create_block();
    let r = b.append_block_param(row_head, ptr);
    let c2 = b.append_block_param(vec2_head, ptr);
    let cv = b.append_block_param(vec_head, ptr);
    let ct = b.append_block_param(tail_head, ptr);
    // Row base pointers travel as loop-header parameters: computed once per row, never
    // re-derived inside the column loops.
    let n_bases = spec.expr.n_inputs + spec.expr.outputs.len();
    let heads = [vec2_head, vec_head, tail_head];
    let base_params: Vec<Vec<Value>> = heads
        .iter()
        .map(|&h| (0..n_bases).map(|_| b.append_block_param(h, ptr)).collect())
        .collect();

    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let p = b.block_params(entry).to_vec();
    let (rows, cols, in_ptrs, in_rs, out_ptrs, out_rs) = (p[0], p[1], p[2], p[3], p[4], p[5]);
    // Base pointers and row strides in bytes.
    let load_ptr_stride = |b: &mut FunctionBuilder, ptrs: Value, strides: Value, i: usize| {
        let off = (i * ptr.bytes() as usize) as i32;
        let pp = b.ins().load(ptr, mem, ptrs, off);
        let s = b.ins().load(ptr, mem, strides, off);
        let sb = b.ins().ishl_imm_u(s, 2);
        (pp, sb)
    };
    let ins: Vec<Option<(Value, Value)>> = (0..e.n_inputs)
        .map(|i| used[i].then(|| load_ptr_stride(&mut b, in_ptrs, in_rs, i)))
        .collect();
    let outs: Vec<(Value, Value)> = (0..n_out)
        .map(|i| load_ptr_stride(&mut b, out_ptrs, out_rs, i))
        .collect();
    let cols4 = b.ins().band_imm_s(cols, -4);
    let cols8 = b.ins().band_imm_s(cols, -8);
    let zero = b.ins().iconst(ptr, 0);
    b.ins().jump(row_head, &jump_args(&[zero]));

    // for r in 0..rows
    b.switch_to_block(row_head);
    let more = b.ins().icmp(IntCC::UnsignedLessThan, r, rows);
    b.ins().brif(more, row_body, &[], exit, &[]);

    b.switch_to_block(row_body);
    let row_base = |b: &mut FunctionBuilder, (p, s): (Value, Value)| {
        let o = b.ins().imul(r, s);
        b.ins().iadd(p, o)
    };
    let zero_base = b.ins().iconst(ptr, 0);
    let in_base: Vec<Value> = ins
        .iter()
        .map(|x| x.map_or(zero_base, |ps| row_base(&mut b, ps)))
        .collect();
    let out_base: Vec<Value> = outs.iter().map(|&ps| row_base(&mut b, ps)).collect();
    // Column-broadcast inputs: one load per row, splatted for the vector loop.
    let mut bcast_s: Vec<Option<Value>> = vec![None; e.n_inputs];
    let mut bcast_v: Vec<Option<Value>> = vec![None; e.n_inputs];
    for i in 0..e.n_inputs {
        if used[i] && spec.col_broadcast[i] {
            let s = b.ins().load(types::F32, mem, in_base[i], 0);
            bcast_s[i] = Some(s);
            bcast_v[i] = Some(b.ins().splat(types::F32X4, s));
        }
    }
    let row_bases: Vec<Value> = in_base.iter().chain(&out_base).copied().collect();
    let with = |c: Value, bases: &[Value]| -> Vec<BlockArg> {
        std::iter::once(c)
            .chain(bases.iter().copied())
            .map(BlockArg::Value)
            .collect()
    };
    b.ins().jump(vec2_head, &with(zero, &row_bases));

    // The body of one pass over `copies` adjacent lane groups (interleaved chains), for either
    // lane type, at the row's current pointers `ptrs` (inputs, then outputs). Returns the
    // pointers advanced past the elements done: pointer bumping keeps the addresses in
    // registers (a loop-invariant base would be re-derived at every access).
    let body = |b: &mut FunctionBuilder,
                copies: usize,
                ty: Type,
                bcast: &[Option<Value>],
                ptrs: &[Value]|
     -> Vec<Value> {
        let bytes = ty.bytes() as i32;
        let vals: Vec<Vec<Option<Value>>> = (0..copies)
            .map(|u| {
                (0..e.n_inputs)
                    .map(|i| match (used[i], bcast[i]) {
                        (_, Some(v)) => Some(v),
                        (true, None) => Some(b.ins().load(ty, mem, ptrs[i], u as i32 * bytes)),
                        (false, None) => None,
                    })
                    .collect()
            })
            .collect();
        let res = {
            let mut l = ClifLanes::new(b, ty, fma);
            emit_expr(&mut l, e, &live, &vals)
        };
        for (u, res) in res.iter().enumerate() {
            for (k, &y) in res.iter().enumerate() {
                b.ins()
                    .store(mem, y, ptrs[e.n_inputs + k], u as i32 * bytes);
            }
        }
        let step = copies as i64 * bytes as i64;
        (0..ptrs.len())
            .map(|i| {
                if i < e.n_inputs && (spec.col_broadcast[i] || !used[i]) {
                    ptrs[i]
                } else {
                    b.ins().iadd_imm_u(ptrs[i], step)
                }
            })
            .collect()
    };

    // Unrolled vector loop: for c in (0..cols8).step_by(8), two f32x4 chains.
    let p2 = base_params[0].clone();
    b.switch_to_block(vec2_head);
    let more = b.ins().icmp(IntCC::UnsignedLessThan, c2, cols8);
    b.ins().brif(more, vec2_body, &[], vec_head, &with(c2, &p2));
    b.switch_to_block(vec2_body);
    let next = body(&mut b, 2, types::F32X4, &bcast_v, &p2);
    let c8 = b.ins().iadd_imm_u(c2, 8);
    b.ins().jump(vec2_head, &with(c8, &next));

    // Vector loop: for c in (c..cols4).step_by(4)
    let p1 = base_params[1].clone();
    b.switch_to_block(vec_head);
    let more = b.ins().icmp(IntCC::UnsignedLessThan, cv, cols4);
    b.ins().brif(more, vec_body, &[], tail_head, &with(cv, &p1));
    b.switch_to_block(vec_body);
    let next = body(&mut b, 1, types::F32X4, &bcast_v, &p1);
    let c4 = b.ins().iadd_imm_u(cv, 4);
    b.ins().jump(vec_head, &with(c4, &next));

    // Scalar tail: for c in cols4..cols
    let pt = base_params[2].clone();
    b.switch_to_block(tail_head);
    let more = b.ins().icmp(IntCC::UnsignedLessThan, ct, cols);
    b.ins().brif(more, tail_body, &[], row_next, &[]);

    b.switch_to_block(tail_body);
    let next = body(&mut b, 1, types::F32, &bcast_s, &pt);
    let c1 = b.ins().iadd_imm_u(ct, 1);
    b.ins().jump(tail_head, &with(c1, &next));

    b.switch_to_block(row_next);
    let r1 = b.ins().iadd_imm_u(r, 1);
    b.ins().jump(row_head, &jump_args(&[r1]));

    b.switch_to_block(exit);
    b.ins().return_(&[]);
    b.seal_all_blocks();
    b.finalize(tc);
}

//! The Cranelift backend: a [`KernelSpec`] compiled into one function with the C signature
//! `fn(rows, cols, in_ptrs, in_row_strides, out_ptrs, out_row_strides)` (strides in elements),
//! and [`ClifLanes`], the [`Lanes`] primitives as Cranelift IR (the math itself is written once
//! in `trellis_ir::lanes`, so the AVX-512 backend's results are bit-identical).
//!
//! For each row the function runs an f32x4 loop over the columns, then a scalar tail for the
//! last `cols % 4` columns. Inputs that are constant along columns (`col_broadcast`) are loaded
//! once per row and splatted. Each expression node is emitted once per element, and all outputs
//! are stored from the same pass.
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{types, AbiParam, BlockArg, InstBuilder, MemFlagsData, Type, Value};
use cranelift_codegen::isa::TargetFrontendConfig;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, Linkage, Module};
use trellis_ir::lanes::Cmp;
pub use trellis_ir::lanes::Lanes;
use trellis_ir::{Binary, Scalar, ScalarFn};

use super::spec::{live_nodes, KernelSpec};
use crate::error::JitError;

/// A compiled kernel's entry point (see the module docs).
pub(crate) type KernelFn = unsafe extern "C" fn(
    usize,
    usize,
    *const *const f32,
    *const usize,
    *const *mut f32,
    *const usize,
);

/// One JIT module for the process's kernels (its code memory is never freed) and the
/// contexts reused between compilations.
pub(crate) struct Compiler {
    module: JITModule,
    fma: bool,
    ctx: cranelift_codegen::Context,
    fctx: FunctionBuilderContext,
    /// Functions declared so far (each kernel's symbol is numbered).
    declared: usize,
}

impl Compiler {
    /// A module for the host (`opt_level=speed`, native ISA flags).
    pub(crate) fn new() -> Result<Self, JitError> {
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
        Ok(Compiler {
            module,
            fma,
            ctx,
            fctx: FunctionBuilderContext::new(),
            declared: 0,
        })
    }

    /// Compiles `spec` (validated by the caller) into a finalized function.
    pub(crate) fn compile(&mut self, spec: &KernelSpec) -> Result<KernelFn, JitError> {
        let cg = |e: &dyn std::fmt::Debug| JitError::Codegen(format!("{e:?}"));
        let tc = self.module.target_config();
        let ptr = tc.pointer_type();
        let mut sig = self.module.make_signature();
        for _ in 0..6 {
            sig.params.push(AbiParam::new(ptr));
        }
        let name = format!("trellis_kernel_{}", self.declared);
        self.declared += 1;
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
        Scalar::Binary(Binary::Pow, a, b) if e.small_int(b).is_some() => {
            l.powi(g(a), e.small_int(b).expect("checked"))
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

/// [`Lanes`] as Cranelift IR: `ty` is `F32` or `F32X4`; every value is a `Value` (a mask is an
/// `i8` truth value on the scalar path, an all-ones/all-zeros `i32x4` on the vector path).
pub struct ClifLanes<'a, 'b> {
    pub b: &'a mut FunctionBuilder<'b>,
    pub ty: Type,
    /// Use the `fma` instruction (the host has FMA); otherwise multiply then add.
    pub fma: bool,
}

impl<'a, 'b> ClifLanes<'a, 'b> {
    pub fn new(b: &'a mut FunctionBuilder<'b>, ty: Type, fma: bool) -> Self {
        debug_assert!(ty == types::F32 || ty == types::F32X4);
        ClifLanes { b, ty, fma }
    }

    fn vector(&self) -> bool {
        self.ty.is_vector()
    }

    /// The integer type with the lanes of `ty`.
    fn ity(&self) -> Type {
        if self.vector() {
            types::I32X4
        } else {
            types::I32
        }
    }

    /// A four-lane constant from the function's constant pool.
    fn pool(&mut self, ty: Type, bits: u32) -> Value {
        let bytes: Vec<u8> = std::iter::repeat_n(bits.to_le_bytes(), 4)
            .flatten()
            .collect();
        let h = self
            .b
            .func
            .dfg
            .constants
            .insert(cranelift_codegen::ir::ConstantData::from(bytes));
        self.b.ins().vconst(ty, h)
    }
}

impl Lanes for ClifLanes<'_, '_> {
    type F = Value;
    type I = Value;
    type M = Value;

    fn f(&mut self, c: f32) -> Value {
        if self.vector() {
            // A constant-pool load (one instruction, often folded into its user) rather than a
            // scalar constant moved and shuffled into every lane.
            self.pool(self.ty, c.to_bits())
        } else {
            self.b.ins().f32const(c)
        }
    }
    fn i(&mut self, c: i32) -> Value {
        if self.vector() {
            self.pool(types::I32X4, c as u32)
        } else {
            self.b.ins().iconst(types::I32, i64::from(c))
        }
    }
    fn f_to_bits(&mut self, x: Value) -> Value {
        let t = self.ity();
        self.b.ins().bitcast(t, MemFlagsData::new(), x)
    }
    fn bits_to_f(&mut self, x: Value) -> Value {
        self.b.ins().bitcast(self.ty, MemFlagsData::new(), x)
    }
    fn add(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fadd(a, b)
    }
    fn sub(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fsub(a, b)
    }
    fn mul(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fmul(a, b)
    }
    fn div(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fdiv(a, b)
    }
    fn fma(&mut self, a: Value, b: Value, c: Value) -> Value {
        if self.fma {
            self.b.ins().fma(a, b, c)
        } else {
            let p = self.b.ins().fmul(a, b);
            self.b.ins().fadd(p, c)
        }
    }
    fn neg(&mut self, x: Value) -> Value {
        self.b.ins().fneg(x)
    }
    fn abs(&mut self, x: Value) -> Value {
        self.b.ins().fabs(x)
    }
    fn sqrt(&mut self, x: Value) -> Value {
        self.b.ins().sqrt(x)
    }
    fn floor(&mut self, x: Value) -> Value {
        self.b.ins().floor(x)
    }
    /// Cranelift's `fmax`/`fmin` propagate NaN and order `-0 < +0`.
    fn max(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fmax(a, b)
    }
    fn min(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fmin(a, b)
    }
    fn cmp(&mut self, cc: Cmp, a: Value, b: Value) -> Value {
        let cc = match cc {
            Cmp::Lt => FloatCC::LessThan,
            Cmp::Le => FloatCC::LessThanOrEqual,
            Cmp::Gt => FloatCC::GreaterThan,
            Cmp::Ge => FloatCC::GreaterThanOrEqual,
            Cmp::Eq => FloatCC::Equal,
            // Unordered or not equal: true with a NaN.
            Cmp::Ne => FloatCC::NotEqual,
        };
        self.b.ins().fcmp(cc, a, b)
    }
    /// icmp masks have the same type as fcmp masks on both paths (i8 / i32x4).
    fn ilt(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().icmp(IntCC::SignedLessThan, a, b)
    }
    fn mask_and(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().band(a, b)
    }
    fn mask_or(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().bor(a, b)
    }
    fn mask_not(&mut self, a: Value) -> Value {
        self.b.ins().bnot(a)
    }
    fn sel(&mut self, m: Value, a: Value, b: Value) -> Value {
        if self.vector() {
            let m = self.b.ins().bitcast(self.ty, MemFlagsData::new(), m);
            self.b.ins().bitselect(m, a, b)
        } else {
            self.b.ins().select(m, a, b)
        }
    }
    fn flag(&mut self, m: Value) -> Value {
        if self.vector() {
            let one = self.i(1.0f32.to_bits() as i32);
            let v = self.b.ins().band(m, one);
            self.bits_to_f(v)
        } else {
            let one = self.f(1.0);
            let zero = self.f(0.0);
            self.b.ins().select(m, one, zero)
        }
    }
    fn iadd(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().iadd(a, b)
    }
    fn isub(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().isub(a, b)
    }
    fn iand(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().band(a, b)
    }
    fn ior(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().bor(a, b)
    }
    fn shl(&mut self, a: Value, n: u8) -> Value {
        self.b.ins().ishl_imm_u(a, i64::from(n))
    }
    fn ushr(&mut self, a: Value, n: u8) -> Value {
        self.b.ins().ushr_imm_u(a, i64::from(n))
    }
    fn sshr(&mut self, a: Value, n: u8) -> Value {
        self.b.ins().sshr_imm_u(a, i64::from(n))
    }
    fn i_to_f(&mut self, a: Value) -> Value {
        let ft = self.ty;
        self.b.ins().fcvt_from_sint(ft, a)
    }
}

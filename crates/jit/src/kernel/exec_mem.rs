//! Executable memory for machine code the JIT encodes itself (not through Cranelift's module):
//! mapped writable, filled, then made read-only and executable; unmapped when dropped.

/// A private mapping holding one function's code.
pub(crate) struct ExecMem {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is immutable once built (read + execute only) and owned by this value;
// sharing or sending it between threads only shares read-only code.
unsafe impl Send for ExecMem {}
// SAFETY: as above.
unsafe impl Sync for ExecMem {}

impl ExecMem {
    /// Maps `code` read-only and executable.
    pub(crate) fn new(code: &[u8]) -> std::io::Result<ExecMem> {
        let len = code.len().max(1);
        // SAFETY: an anonymous private mapping at an address of the kernel's choosing; the
        // result is checked before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let mem = ExecMem {
            ptr: ptr as *mut u8,
            len,
        };
        // SAFETY: the mapping is `len >= code.len()` writable bytes, disjoint from `code`.
        unsafe { std::ptr::copy_nonoverlapping(code.as_ptr(), mem.ptr, code.len()) };
        // SAFETY: `ptr` and `len` are the mapping just made.
        if unsafe { libc::mprotect(ptr, len, libc::PROT_READ | libc::PROT_EXEC) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(mem)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The code's first byte as a function of type `F` (a function pointer type).
    ///
    /// The caller chooses `F` to match the code it mapped; calling it is the caller's `unsafe`.
    pub(crate) fn entry<F: Copy>(&self) -> F {
        assert_eq!(std::mem::size_of::<F>(), std::mem::size_of::<*const u8>());
        // SAFETY: `F` is pointer-sized (asserted) and a function pointer type by the caller's
        // choice; the pointer is the start of executable code that lives as long as `self`.
        unsafe { std::mem::transmute_copy(&self.ptr) }
    }
}

impl Drop for ExecMem {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are this value's own mapping, unmapped once; no function pointer
        // obtained from `entry` is called after its `ExecMem` is dropped (kernels hold theirs).
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len) };
    }
}

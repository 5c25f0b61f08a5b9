//! The runtime a `no_std` wasm32 component needs and std would otherwise
//! supply (std itself would import WASI, which the host does not grant).

use alloc::alloc::{Layout, alloc, realloc};

#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

/// A panic is a bug: trap, and the host treats the message as failed.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}

// `memcmp`, `memcpy` and friends come from wasi-libc: plain functions, so
// linking it adds no WASI imports.
#[link(name = "c")]
unsafe extern "C" {}

/// The canonical ABI's allocator, used by the host to pass lists and strings
/// in. On wasm32-wasip2 wit-bindgen expects std to export it, so without std
/// this crate must.
///
/// # Safety
/// Called only by the host, per the canonical ABI: `old_ptr`/`old_len`/`align`
/// describe a live allocation from this function (or `old_len` is 0).
#[unsafe(no_mangle)]
unsafe extern "C" fn cabi_realloc(old_ptr: *mut u8, old_len: usize, align: usize, new_len: usize) -> *mut u8 {
    let ptr = if old_len == 0 {
        if new_len == 0 {
            // Zero-sized: any well-aligned non-null pointer will do.
            return align as *mut u8;
        }
        // SAFETY: new_len > 0 and the ABI passes a power-of-two align.
        unsafe { alloc(Layout::from_size_align_unchecked(new_len, align)) }
    } else {
        // SAFETY: the caller passes back an allocation made here.
        unsafe { realloc(old_ptr, Layout::from_size_align_unchecked(old_len, align), new_len) }
    };
    if ptr.is_null() {
        core::arch::wasm32::unreachable();
    }
    ptr
}

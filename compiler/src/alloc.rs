//! The global allocator of the `qdqc` binary: mimalloc, asked the way C code asks it.
//!
//! A compile allocates and frees millions of small names, shapes and nodes, where glibc's malloc
//! is slow. The
//! `mimalloc` crate's allocator passes every request's alignment on (`mi_malloc_aligned`), and
//! mimalloc 3 serves an aligned request that finds its size class's free list empty by
//! over-allocating from a larger class and marking the page as holding interior pointers: the
//! list of the requested class then never refills, so every later request of that size misses
//! too. In a compile, a fifth of all allocations went that way (a tenth of all instructions).
//! Every mimalloc block is aligned to a machine word, so requests that need no more than that
//! are plain `mi_malloc` calls; only larger alignments use the aligned entry points.

use libmimalloc_sys::{
    mi_free, mi_malloc, mi_malloc_aligned, mi_realloc, mi_realloc_aligned, mi_zalloc, mi_zalloc_aligned,
};
use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

/// mimalloc as a Rust global allocator (see the module documentation).
pub struct Mimalloc;

/// The alignment of every mimalloc block.
const WORD: usize = std::mem::size_of::<usize>();

// SAFETY: each method forwards to the mimalloc function with that contract; blocks from
// `mi_malloc`/`mi_zalloc`/`mi_realloc` are word-aligned, which covers every layout routed there.
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match layout.align() <= WORD {
            true => mi_malloc(layout.size()) as *mut u8,
            false => mi_malloc_aligned(layout.size(), layout.align()) as *mut u8,
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match layout.align() <= WORD {
            true => mi_zalloc(layout.size()) as *mut u8,
            false => mi_zalloc_aligned(layout.size(), layout.align()) as *mut u8,
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        mi_free(ptr as *mut c_void);
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        match layout.align() <= WORD {
            true => mi_realloc(ptr as *mut c_void, new_size) as *mut u8,
            false => mi_realloc_aligned(ptr as *mut c_void, new_size, layout.align()) as *mut u8,
        }
    }
}

/// Turns transparent huge pages off for this process (Linux; elsewhere nothing).
///
/// mimalloc asks for huge pages for its arenas, and the kernel zeroes each 2 MiB page in full
/// on first touch. On the virtual machines we measure on, the guest reports free huge blocks
/// to the host, which takes them back; the next huge page fault then waits for the host to
/// supply and zero them again, seconds of system time in a large compile. The 4 KiB pages the
/// kernel hands out first are the ones freed last, which the host still backs.
pub fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    {
        extern "C" {
            fn prctl(option: std::ffi::c_int, ...) -> std::ffi::c_int;
        }
        const PR_SET_THP_DISABLE: std::ffi::c_int = 41;
        // SAFETY: prctl with PR_SET_THP_DISABLE takes one integer argument (and zeros) and only
        // sets a flag of the calling process; a kernel that does not know it returns an error,
        // which is harmless here (the process then keeps the system's setting).
        unsafe {
            prctl(
                PR_SET_THP_DISABLE,
                1 as std::ffi::c_ulong,
                0 as std::ffi::c_ulong,
                0 as std::ffi::c_ulong,
                0 as std::ffi::c_ulong,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks come back aligned as asked, for word and larger alignments, through every entry.
    #[test]
    fn blocks_are_aligned_as_asked() {
        let a = Mimalloc;
        for align in [1, 2, 4, 8, 16, 64, 4096] {
            for size in [1, 7, 8, 13, 24, 100, 184, 1000, 5000, 70_000] {
                let layout = Layout::from_size_align(size, align).unwrap();
                unsafe {
                    let p = a.alloc(layout);
                    assert!(!p.is_null() && p as usize % align == 0, "alloc {size} aligned {align}");
                    p.write_bytes(0xab, size);
                    let p = a.realloc(p, layout, size * 3);
                    assert!(!p.is_null() && p as usize % align == 0, "realloc {size} aligned {align}");
                    assert_eq!(*p.add(size - 1), 0xab, "realloc keeps the contents");
                    a.dealloc(p, Layout::from_size_align(size * 3, align).unwrap());
                    let z = a.alloc_zeroed(layout);
                    assert!(!z.is_null() && z as usize % align == 0, "zalloc {size} aligned {align}");
                    assert!((0..size).all(|i| *z.add(i) == 0));
                    a.dealloc(z, layout);
                }
            }
        }
    }
}

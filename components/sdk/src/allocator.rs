//! The guest's memory allocator on `wasm32-unknown-unknown` (the target guests are
//! built for; see `cli/guest-build`).
//!
//! Every render runs in a fresh instance whose memory is reset afterwards, so an
//! allocator here never has to return memory to anyone and never lives long enough
//! to fragment. This one is the simplest that still reuses memory within a render:
//! blocks come in power-of-two sizes (16 B and up), freed blocks go on a free list per
//! size, and new blocks are cut from the top of the heap, starting at `__heap_base` in
//! the memory the module starts with and growing it only when that is used up. The
//! top block grows and shrinks in place, which is what a `String` or `Vec` being
//! built does.
//!
//! std's own allocator on this target (dlmalloc) takes its first chunk with
//! `memory.grow`, leaving the rest of the initial memory page unused; every render then
//! grew memory by a page, which the renderer resets afterwards. `site-footer` built
//! with it took about 18 µs per instance+render, with this allocator about 7 µs
//! (`render_profile`, same machine, one session). Disable the SDK's default
//! `allocator` feature to bring your own.

use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32;
use core::cell::UnsafeCell;

const PAGE: usize = 64 * 1024;
/// The smallest block, and the alignment of every block from a free list.
const MIN_BLOCK: usize = 16;
/// Size classes: 16 B, 32 B, … up to 2 GiB, beyond any memory a renderer allows.
const CLASSES: usize = 28;

unsafe extern "C" {
    /// The end of the module's static data and stack, set by the linker.
    static __heap_base: u8;
}

struct State {
    /// The first byte not yet handed out; 0 before the first allocation.
    top: usize,
    /// Per size class, the first free block (0 for none); each free block's first
    /// word holds the next one.
    free: [usize; CLASSES],
}

struct Arena(UnsafeCell<State>);

// A guest instance has one thread.
unsafe impl Sync for Arena {}

#[global_allocator]
static ARENA: Arena = Arena(UnsafeCell::new(State {
    top: 0,
    free: [0; CLASSES],
}));

/// The block size for `size` bytes aligned to `align`, and its class; `None` past the
/// largest class.
fn class_of(size: usize, align: usize) -> Option<(usize, usize)> {
    let block = size.max(align).max(MIN_BLOCK).checked_next_power_of_two()?;
    let class = (block.trailing_zeros() - MIN_BLOCK.trailing_zeros()) as usize;
    (class < CLASSES).then_some((block, class))
}

impl State {
    /// Make memory reach `end`, growing it if needed; false if it cannot grow.
    fn reach(&mut self, end: usize) -> bool {
        let have = wasm32::memory_size(0) * PAGE;
        end <= have || wasm32::memory_grow(0, (end - have).div_ceil(PAGE)) != usize::MAX
    }

    fn top(&mut self) -> usize {
        if self.top == 0 {
            self.top = (&raw const __heap_base) as usize;
        }
        self.top
    }

    fn alloc(&mut self, layout: Layout) -> *mut u8 {
        let Some((block, class)) = class_of(layout.size(), layout.align()) else {
            return core::ptr::null_mut();
        };
        // Free blocks are only known to be MIN_BLOCK-aligned.
        if layout.align() <= MIN_BLOCK && self.free[class] != 0 {
            let ptr = self.free[class];
            // SAFETY: `ptr` is a free block of at least MIN_BLOCK bytes that
            // `dealloc` linked into this list.
            self.free[class] = unsafe { *(ptr as *const usize) };
            return ptr as *mut u8;
        }
        let align = layout.align().max(MIN_BLOCK);
        let Some(start) = self.top().checked_next_multiple_of(align) else {
            return core::ptr::null_mut();
        };
        match start.checked_add(block) {
            Some(end) if self.reach(end) => {
                self.top = end;
                start as *mut u8
            }
            _ => core::ptr::null_mut(),
        }
    }

    fn dealloc(&mut self, ptr: *mut u8, layout: Layout) {
        let Some((block, class)) = class_of(layout.size(), layout.align()) else {
            return;
        };
        let ptr = ptr as usize;
        if ptr + block == self.top {
            self.top = ptr;
        } else {
            // SAFETY: the block is ours again and at least MIN_BLOCK bytes long.
            unsafe { *(ptr as *mut usize) = self.free[class] };
            self.free[class] = ptr;
        }
    }

    fn realloc(&mut self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let (Some((old, _)), Some((new, _))) = (
            class_of(layout.size(), layout.align()),
            class_of(new_size, layout.align()),
        ) else {
            return core::ptr::null_mut();
        };
        if new <= old {
            // It fits. A shrunk block is later freed into the smaller class: some
            // bytes are lost until the instance ends, never handed out twice.
            return ptr;
        }
        let at = ptr as usize;
        if at + old == self.top {
            if !self.reach(at + new) {
                return core::ptr::null_mut();
            }
            self.top = at + new;
            return ptr;
        }
        // SAFETY: `new_size` with the block's alignment is a valid layout (the caller
        // guarantees it for `realloc`).
        let moved =
            self.alloc(unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) });
        if !moved.is_null() {
            // SAFETY: both blocks are ours, distinct, and at least `layout.size()` long.
            unsafe { core::ptr::copy_nonoverlapping(ptr, moved, layout.size()) };
            self.dealloc(ptr, layout);
        }
        moved
    }
}

// SAFETY: blocks are handed out once until freed, are at least `size` bytes and
// aligned to `align` (free-list blocks only serve alignments up to MIN_BLOCK, and every
// block starts on a MIN_BLOCK boundary), and a guest instance is single-threaded, so
// the state is never accessed concurrently.
unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { (*self.0.get()).alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { (*self.0.get()).dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        unsafe { (*self.0.get()).realloc(ptr, layout, new_size) }
    }
}

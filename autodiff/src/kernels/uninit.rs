//! Buffers that a kernel writes whole before anyone reads them: allocated without
//! zeroing, then viewed as initialised once written. The two unsafe steps live here,
//! each with its one argument; callers state why their writer covers every element.

use std::mem::MaybeUninit;

/// A new vector of `len` elements, each written by `fill`, without zeroing the memory
/// first: zeroing would be a whole extra pass over memory the writer covers anyway.
///
/// # Safety
/// `fill` writes every element of the slice it is given.
pub(crate) unsafe fn vec_written<T>(
    len: usize,
    fill: impl FnOnce(&mut [MaybeUninit<T>]),
) -> Vec<T> {
    // SAFETY: forwarded to the caller.
    unsafe { vec_written_with_room(len, len, fill) }
}

/// [`vec_written`] in a vector with room for at least `room` elements.
///
/// # Safety
/// `fill` writes every element of the slice it is given.
pub(crate) unsafe fn vec_written_with_room<T>(
    len: usize,
    room: usize,
    fill: impl FnOnce(&mut [MaybeUninit<T>]),
) -> Vec<T> {
    let mut out = Vec::with_capacity(len.max(room));
    fill(&mut out.spare_capacity_mut()[..len]);
    // SAFETY: the capacity is at least `len`, and the caller promises that `fill`
    // initialised all `len` elements.
    unsafe { out.set_len(len) };
    out
}

/// `values`, every element of which has been written, as initialised values.
///
/// # Safety
/// Every element of `values` is initialised.
pub(crate) unsafe fn assume_init_mut<T>(values: &mut [MaybeUninit<T>]) -> &mut [T] {
    // SAFETY: `MaybeUninit<T>` has the layout of `T`, and the caller promises that every
    // element is initialised.
    unsafe { &mut *(std::ptr::from_mut(values) as *mut [T]) }
}

/// Initialised values viewed as an output for a kernel that only writes values.
///
/// # Safety
/// Nothing but initialised values may be written through the result (never
/// `MaybeUninit::uninit()`), so `values` stays initialised.
pub(crate) unsafe fn as_uninit<T>(values: &mut [T]) -> &mut [MaybeUninit<T>] {
    // SAFETY: `MaybeUninit<T>` has the layout of `T`; the caller keeps it initialised.
    unsafe { &mut *(std::ptr::from_mut(values) as *mut [MaybeUninit<T>]) }
}

//! A new matrix written band by band on several threads: each part writes its band of
//! rows through a [`RowWriter`], which can only append whole rows, and the matrix is
//! handed out only once every band was written whole.

use super::pool;
use super::schedule::gather_parts;
use super::uninit::vec_written_with_room;
use std::mem::MaybeUninit;
use std::ops::Range;

/// Appends the rows of one band of a matrix being built by [`fill_rows`].
pub struct RowWriter<'a, T> {
    out: &'a mut [MaybeUninit<T>],
    row_len: usize,
    written: usize,
}

impl<T> RowWriter<'_, T> {
    /// Writes the next row: `f` of each element of `src`, which must be as long as a
    /// row. `#[inline(always)]` so that inside [`wide`](crate::cpu::wide) the loop is
    /// compiled wide.
    ///
    /// Panics if `src` is not one row long or the band is already full.
    #[inline(always)]
    pub fn push_row_map<S: Copy>(&mut self, src: &[S], f: impl Fn(S) -> T) {
        assert_eq!(
            src.len(),
            self.row_len,
            "fill_rows: a row of {} values for rows of {}",
            src.len(),
            self.row_len
        );
        let Some(out) = self.out.get_mut(self.written..self.written + self.row_len) else {
            panic!("fill_rows: more rows written than the band holds")
        };
        for (o, &s) in out.iter_mut().zip(src) {
            o.write(f(s));
        }
        self.written += self.row_len;
    }
}

/// A new row-major `rows x row_len` matrix (in a vector with room for at least
/// `capacity_rows` rows) whose rows are written by `fill(band, writer)`: one call per
/// band of rows, each of which must push every row of its band, in order. Large
/// matrices are written in one band per thread, the bands a matrix product of the
/// result splits into, so each core then multiplies the rows it wrote; the values never
/// depend on the split.
///
/// Panics if a band is left short.
///
/// ```
/// let rows = autodiff::cpu::fill_rows(3, 2, 3, |band, out| {
///     for r in band {
///         out.push_row_map(&[r as u8, 1], |v| f32::from(v) * 0.5);
///     }
/// });
/// assert_eq!(rows, [0.0, 0.5, 0.5, 0.5, 1.0, 0.5]);
/// ```
pub fn fill_rows<T: Send>(
    rows: usize,
    row_len: usize,
    capacity_rows: usize,
    fill: impl Fn(Range<usize>, &mut RowWriter<'_, T>) + Sync,
) -> Vec<T> {
    let len = rows * row_len;
    let write_all = |out: &mut [MaybeUninit<T>]| {
        let write_band = |band: Range<usize>, out: &mut [MaybeUninit<T>]| {
            let mut writer = RowWriter {
                out,
                row_len,
                written: 0,
            };
            fill(band, &mut writer);
            assert_eq!(
                writer.written,
                writer.out.len(),
                "fill_rows: a band was not written whole"
            );
        };
        if row_len == 0 {
            return;
        }
        pool::for_row_bands(out, rows, gather_parts(len), write_band);
    };
    // SAFETY: every band's writer was checked full above, and the bands of
    // `for_row_bands` cover all `rows` rows; a panic leaves before the length is set.
    unsafe { vec_written_with_room(len, capacity_rows * row_len, write_all) }
}

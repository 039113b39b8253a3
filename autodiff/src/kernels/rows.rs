//! A new matrix written band by band on several threads: each part writes its band of
//! rows through a [`RowWriter`], which can only append whole rows, and the matrix is
//! handed out only once every band was written whole. [`gather_rows`] fills one with
//! rows picked from another (a minibatch from a data set).

use super::pool;
use super::schedule::gather_parts;
use super::simd::{prefetch, wide};
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
    /// row. `#[inline(always)]` so that inside [`wide`] the loop is compiled wide.
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

/// Rows `indices` of the row-major matrix `source` (rows of `row_len`), each element
/// mapped by `map`, as a new row-major matrix in a vector with room for at least
/// `capacity_rows` rows ([`fill_rows`]: one band per thread for a large batch). Rows
/// read in random order are each a cache miss, so the rows a few steps ahead are
/// prefetched while this one is converted, in the widest vectors the CPU has.
///
/// Panics if `source` is not whole rows or an index is past its last row.
#[track_caller]
pub(crate) fn gather_rows<S: Copy + Sync, T: Send>(
    source: &[S],
    row_len: usize,
    indices: &[usize],
    capacity_rows: usize,
    map: impl Fn(S) -> T + Sync,
) -> Vec<T> {
    let rows = source.len().checked_div(row_len).unwrap_or(0);
    assert!(
        source.len() == rows * row_len,
        "gather_rows: {} values are not rows of {row_len}",
        source.len()
    );
    if let Some(&i) = indices.iter().find(|&&i| i >= rows) {
        panic!("gather_rows: row {i} of a source of {rows} rows");
    }
    // How many rows ahead to prefetch: far enough that the row has arrived when its
    // turn comes, near enough that it is still in cache.
    const AHEAD: usize = 6;
    fill_rows(indices.len(), row_len, capacity_rows, |band, out| {
        let indices = &indices[band];
        for (k, &i) in indices.iter().enumerate() {
            if let Some(&ahead) = indices.get(k + AHEAD) {
                prefetch(&source[ahead * row_len..(ahead + 1) * row_len]);
            }
            let row = &source[i * row_len..(i + 1) * row_len];
            // AVX-512 widens and converts sixteen bytes an instruction.
            wide(
                #[inline(always)]
                || out.push_row_map(row, &map),
            );
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_written_band_by_band_in_order() {
        let rows = fill_rows(3, 2, 3, |band, out| {
            for r in band {
                out.push_row_map(&[r as u8, 1], |v| f32::from(v) * 0.5);
            }
        });
        assert_eq!(rows, [0.0, 0.5, 0.5, 0.5, 1.0, 0.5]);
    }

    #[test]
    fn gathered_rows_are_the_indexed_rows_on_any_thread_count() {
        // 600 rows of 100 bytes: past the size at which the bands split.
        let source: Vec<u8> = (0..60_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let indices: Vec<usize> = (0..600).map(|i| (i * 37) % 600).collect();
        let expected: Vec<f32> = indices
            .iter()
            .flat_map(|&i| {
                source[i * 100..(i + 1) * 100]
                    .iter()
                    .map(|&p| f32::from(p) / 2.0)
            })
            .collect();
        for threads in [1, 2, 4] {
            let got = pool::with_threads(threads, || {
                gather_rows(&source, 100, &indices, 700, |p| f32::from(p) / 2.0)
            });
            assert_eq!(got, expected, "{threads} threads");
            assert!(got.capacity() >= 700 * 100);
        }
    }

    #[test]
    #[should_panic(expected = "gather_rows: row 3 of a source of 3 rows")]
    fn an_index_past_the_last_row_is_refused() {
        gather_rows(&[0u8; 6], 2, &[0, 3], 2, f32::from);
    }
}

//! Shapes, strides and NumPy broadcasting rules, with the error messages shape mistakes produce.

use smallvec::SmallVec;
use std::fmt;

/// A tensor's dimensions, outermost first. Up to four dimensions live inline.
pub type Shape = SmallVec<[usize; 4]>;

/// A shape mismatch found while building a tensor or an expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{op}: {message}")]
pub struct ShapeError {
    /// The operation that rejected its operands.
    pub op: &'static str,
    /// What was wrong, with the shapes involved.
    pub message: String,
}

impl ShapeError {
    pub(crate) fn new(op: &'static str, message: impl Into<String>) -> Self {
        ShapeError {
            op,
            message: message.into(),
        }
    }
}

/// Formats a shape the way messages show it: `[100, 784]`.
pub(crate) struct Dims<'a>(pub &'a [usize]);

impl fmt::Display for Dims<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// Number of elements of a shape (1 for a scalar's empty shape).
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Row-major strides of a contiguous tensor of this shape.
pub fn strides(shape: &[usize]) -> Shape {
    let mut s: Shape = SmallVec::from_elem(1, shape.len());
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

/// The shape two operands broadcast to under NumPy's rules: align on the right,
/// and each pair of dimensions must be equal or one of them 1.
pub fn broadcast_shapes(op: &'static str, a: &[usize], b: &[usize]) -> Result<Shape, ShapeError> {
    let rank = a.len().max(b.len());
    let mut out: Shape = SmallVec::with_capacity(rank);
    for i in 0..rank {
        let da = if i + a.len() >= rank {
            a[i + a.len() - rank]
        } else {
            1
        };
        let db = if i + b.len() >= rank {
            b[i + b.len() - rank]
        } else {
            1
        };
        let d = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(ShapeError::new(
                    op,
                    format!("{} and {}: shapes do not broadcast", Dims(a), Dims(b)),
                ))
            }
        };
        out.push(d);
    }
    Ok(out)
}

/// Checks an axis against a rank, naming the op when it is out of range.
#[track_caller]
pub(crate) fn check_axis(op: &'static str, axis: usize, shape: &[usize]) {
    assert!(
        axis < shape.len(),
        "{op}: axis {axis} is out of range for shape {}",
        Dims(shape)
    );
}

/// Splits a shape around `axis` into (product before, size of axis, product after).
pub(crate) fn split_at_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        numel(&shape[..axis]),
        shape[axis],
        numel(&shape[axis + 1..]),
    )
}

/// Iterates, for every element of `out_shape` in row-major order, the offset of the
/// element of a contiguous tensor of `src_shape` that broadcasts onto it.
/// `src_shape` must broadcast to `out_shape`.
pub(crate) struct BroadcastOffsets {
    out_shape: Shape,
    src_strides: Shape,
    index: Shape,
    offset: usize,
    remaining: usize,
}

impl BroadcastOffsets {
    pub(crate) fn new(out_shape: &[usize], src_shape: &[usize]) -> Self {
        let rank = out_shape.len();
        debug_assert!(src_shape.len() <= rank);
        let pad = rank - src_shape.len();
        let src_contig = strides(src_shape);
        let mut src_strides: Shape = SmallVec::from_elem(0, rank);
        for d in 0..src_shape.len() {
            if src_shape[d] != 1 {
                src_strides[d + pad] = src_contig[d];
            }
        }
        BroadcastOffsets {
            out_shape: SmallVec::from_slice(out_shape),
            src_strides,
            index: SmallVec::from_elem(0, rank),
            offset: 0,
            remaining: numel(out_shape),
        }
    }

    /// Offsets of a strided view of `shape` walked in row-major order.
    pub(crate) fn with_strides(shape: &[usize], strides: &[usize]) -> Self {
        BroadcastOffsets {
            out_shape: SmallVec::from_slice(shape),
            src_strides: SmallVec::from_slice(strides),
            index: SmallVec::from_elem(0, shape.len()),
            offset: 0,
            remaining: numel(shape),
        }
    }
}

impl Iterator for BroadcastOffsets {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let current = self.offset;
        // Advance the multi-index like an odometer, keeping the offset in step.
        for d in (0..self.out_shape.len()).rev() {
            self.index[d] += 1;
            self.offset += self.src_strides[d];
            if self.index[d] < self.out_shape[d] {
                break;
            }
            self.offset -= self.src_strides[d] * self.out_shape[d];
            self.index[d] = 0;
        }
        Some(current)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for BroadcastOffsets {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_aligns_on_the_right() {
        assert_eq!(
            broadcast_shapes("add", &[3, 1, 5], &[4, 1])
                .unwrap()
                .as_slice(),
            &[3, 4, 5]
        );
        assert_eq!(
            broadcast_shapes("add", &[], &[2, 3]).unwrap().as_slice(),
            &[2, 3]
        );
        let err = broadcast_shapes("add", &[2, 3], &[4]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "add: [2, 3] and [4]: shapes do not broadcast"
        );
    }

    #[test]
    fn broadcast_offsets_repeat_the_source() {
        let offs: Vec<usize> = BroadcastOffsets::new(&[2, 3], &[3]).collect();
        assert_eq!(offs, vec![0, 1, 2, 0, 1, 2]);
        let offs: Vec<usize> = BroadcastOffsets::new(&[2, 3], &[2, 1]).collect();
        assert_eq!(offs, vec![0, 0, 0, 1, 1, 1]);
    }
}

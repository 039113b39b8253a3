//! `Tensor<T>`: contiguous row-major storage and its shape. Plain data, no autodiff:
//! the tape (`tape.rs`) records operations on tensors.

use crate::float::Float;
use crate::shape::{numel, strides, Dims, Shape, ShapeError};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal, Uniform};
use smallvec::SmallVec;
use std::fmt;
use std::sync::Arc;

/// An n-dimensional array of `f32` or `f64`, stored contiguously in row-major order.
///
/// The storage is shared between clones and copied on the first write
/// ([`Tensor::data_mut`]), so recording a parameter on a tape, reading a value back or
/// reshaping costs no copy.
#[derive(Clone, PartialEq)]
pub struct Tensor<T: Float = f32> {
    shape: Shape,
    data: Arc<Vec<T>>,
}

impl<T: Float> Tensor<T> {
    /// Builds a tensor from row-major data, panicking if the length does not match the shape.
    ///
    /// ```
    /// # use autodiff::Tensor;
    /// let t = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]);
    /// assert_eq!(t.get(&[1, 0]), 4.0);
    /// ```
    pub fn from_vec(data: Vec<T>, shape: impl AsRef<[usize]>) -> Self {
        match Self::try_from_vec(data, shape) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        }
    }

    /// Like [`Tensor::from_vec`], but returns an error instead of panicking.
    pub fn try_from_vec(data: Vec<T>, shape: impl AsRef<[usize]>) -> Result<Self, ShapeError> {
        let shape = shape.as_ref();
        if data.len() != numel(shape) {
            return Err(ShapeError::new(
                "from_vec",
                format!(
                    "{} values cannot fill shape {} ({} elements)",
                    data.len(),
                    Dims(shape),
                    numel(shape)
                ),
            ));
        }
        Ok(Tensor {
            shape: SmallVec::from_slice(shape),
            data: Arc::new(data),
        })
    }

    /// A tensor filled with `value`.
    pub fn full(shape: impl AsRef<[usize]>, value: T) -> Self {
        let shape = shape.as_ref();
        Tensor {
            shape: SmallVec::from_slice(shape),
            data: Arc::new(vec![value; numel(shape)]),
        }
    }

    /// A tensor of zeros.
    pub fn zeros(shape: impl AsRef<[usize]>) -> Self {
        Self::full(shape, T::zero())
    }

    /// A tensor of ones.
    pub fn ones(shape: impl AsRef<[usize]>) -> Self {
        Self::full(shape, T::one())
    }

    /// A rank-0 tensor holding one value.
    pub fn scalar(value: T) -> Self {
        Tensor {
            shape: Shape::new(),
            data: Arc::new(vec![value]),
        }
    }

    /// `[0, 1, ..., n - 1]` as a rank-1 tensor.
    pub fn arange(n: usize) -> Self {
        Tensor {
            shape: SmallVec::from_slice(&[n]),
            data: Arc::new((0..n).map(T::from_usize).collect()),
        }
    }

    /// Samples from the standard normal distribution N(0, 1), reproducibly for a seeded `rng`.
    pub fn randn<R: Rng + ?Sized>(shape: impl AsRef<[usize]>, rng: &mut R) -> Self {
        let shape = shape.as_ref();
        let data = (0..numel(shape))
            .map(|_| T::from_f64(StandardNormal.sample(rng)))
            .collect();
        Tensor {
            shape: SmallVec::from_slice(shape),
            data: Arc::new(data),
        }
    }

    /// Samples uniformly from `[low, high)`, reproducibly for a seeded `rng`.
    ///
    /// Panics if `low >= high` or either bound is not finite.
    pub fn rand_uniform<R: Rng + ?Sized>(
        shape: impl AsRef<[usize]>,
        low: T,
        high: T,
        rng: &mut R,
    ) -> Self {
        let shape = shape.as_ref();
        let dist = match Uniform::new(low.as_f64(), high.as_f64()) {
            Ok(d) => d,
            Err(e) => panic!("rand_uniform: bounds [{low}, {high}) are not a valid range: {e}"),
        };
        let data = (0..numel(shape))
            .map(|_| T::from_f64(dist.sample(rng)))
            .collect();
        Tensor {
            shape: SmallVec::from_slice(shape),
            data: Arc::new(data),
        }
    }

    /// The dimensions, outermost first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// The elements in row-major order.
    pub fn data(&self) -> &[T] {
        &self.data
    }

    /// The elements in row-major order, mutably. Copies the storage first if another
    /// tensor shares it.
    pub fn data_mut(&mut self) -> &mut [T] {
        Arc::make_mut(&mut self.data).as_mut_slice()
    }

    /// Consumes the tensor, returning its elements (copied only if shared).
    pub fn into_vec(self) -> Vec<T> {
        Arc::try_unwrap(self.data).unwrap_or_else(|shared| (*shared).clone())
    }

    /// Reads one element by its multi-index; panics if the index is out of range.
    pub fn get(&self, index: &[usize]) -> T {
        assert!(
            index.len() == self.rank() && index.iter().zip(self.shape.iter()).all(|(i, d)| i < d),
            "get: index {:?} is out of range for shape {}",
            index,
            Dims(&self.shape)
        );
        let offset: usize = index
            .iter()
            .zip(strides(&self.shape))
            .map(|(i, s)| i * s)
            .sum();
        self.data[offset]
    }

    /// The single value of a one-element tensor; panics otherwise.
    pub fn item(&self) -> T {
        assert!(
            self.numel() == 1,
            "item: tensor of shape {} has {} elements, not 1",
            Dims(&self.shape),
            self.numel()
        );
        self.data[0]
    }

    /// The same data under another shape with the same number of elements.
    pub fn reshape(mut self, shape: impl AsRef<[usize]>) -> Self {
        let shape = shape.as_ref();
        assert!(
            numel(shape) == self.numel(),
            "reshape: {} cannot become {}: element counts differ",
            Dims(&self.shape),
            Dims(shape)
        );
        self.shape = SmallVec::from_slice(shape);
        self
    }

    /// Applies `f` to every element.
    pub fn map(&self, f: impl Fn(T) -> T) -> Self {
        Tensor {
            shape: self.shape.clone(),
            data: Arc::new(self.data.iter().map(|&x| f(x)).collect()),
        }
    }

    /// Converts every element to another float type.
    pub fn cast<U: Float>(&self) -> Tensor<U> {
        Tensor {
            shape: self.shape.clone(),
            data: Arc::new(self.data.iter().map(|&x| U::from_f64(x.as_f64())).collect()),
        }
    }

    /// True when every element is finite (no NaN, no infinity).
    pub fn all_finite(&self) -> bool {
        self.data.iter().all(|x| x.is_finite())
    }

    pub(crate) fn from_parts(shape: Shape, data: Vec<T>) -> Self {
        debug_assert_eq!(numel(&shape), data.len());
        Tensor {
            shape,
            data: Arc::new(data),
        }
    }
}

impl<T: Float> fmt::Debug for Tensor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Shows the dtype, the shape and a preview of at most ten values.
impl<T: Float> fmt::Display for Tensor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor<{}>{} [", T::NAME, Dims(&self.shape))?;
        let n = self.data.len();
        let show = |f: &mut fmt::Formatter<'_>,
                    range: std::ops::Range<usize>,
                    first: bool|
         -> fmt::Result {
            for (k, i) in range.enumerate() {
                if k > 0 || !first {
                    write!(f, ", ")?;
                }
                write!(f, "{:.4}", self.data[i])?;
            }
            Ok(())
        };
        if n <= 10 {
            show(f, 0..n, true)?;
        } else {
            show(f, 0..6, true)?;
            write!(f, ", ...")?;
            show(f, n - 3..n, false)?;
        }
        write!(f, "]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn from_vec_checks_the_length() {
        let err = Tensor::<f32>::try_from_vec(vec![1.0; 5], [2, 3]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "from_vec: 5 values cannot fill shape [2, 3] (6 elements)"
        );
    }

    #[test]
    fn display_truncates_long_tensors() {
        let t = Tensor::<f32>::arange(20);
        let s = t.to_string();
        assert!(s.starts_with("Tensor<f32>[20] [0.0000, 1.0000"), "{s}");
        assert!(s.contains("..., 17.0000, 18.0000, 19.0000]"), "{s}");
    }

    #[test]
    fn seeded_sampling_is_reproducible() {
        let a = Tensor::<f64>::randn([3, 4], &mut rand::rngs::StdRng::seed_from_u64(7));
        let b = Tensor::<f64>::randn([3, 4], &mut rand::rngs::StdRng::seed_from_u64(7));
        assert_eq!(a, b);
        let u = Tensor::<f32>::rand_uniform(
            [100],
            -1.0,
            1.0,
            &mut rand::rngs::StdRng::seed_from_u64(1),
        );
        assert!(u.data().iter().all(|&x| (-1.0..1.0).contains(&x)));
    }
}

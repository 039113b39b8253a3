//! `Tensor<T>`: contiguous row-major storage and its shape. Plain data, no autodiff:
//! the tape (`tape.rs`) records operations on tensors. Arithmetic on tensors outside
//! a tape (parameter updates, custom vjps) is in `Tensor`'s operator impls below, and
//! the tensor forms of the broadcast, reduce and permute kernels (on slices) too.

use crate::float::Float;
pub(crate) use crate::kernels::reduce::kept_shape;
use crate::kernels::{broadcast, permute, reduce, rows};
use crate::shape::{broadcast_shapes, numel, strides, Dims, Shape, ShapeError};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal, Uniform};
use smallvec::SmallVec;
use std::fmt;
use std::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};
use std::sync::Arc;

/// An n-dimensional array of `f32` or `f64`, stored contiguously in row-major order.
///
/// The storage is shared between clones and copied on the first write
/// ([`Tensor::data_mut`] and every in-place update: `+=`, `-=`, `*=`,
/// [`Tensor::sub_scaled`], ...), so recording a parameter on a tape, reading a value
/// back or reshaping costs no copy, and updating one clone never changes another.
///
/// Tensors have arithmetic of their own, outside any tape, for parameter updates and
/// custom vjps. The binary operators (`+ - * /` between tensors, by value or by
/// reference) broadcast like the tape's ops ([`crate::broadcast_shapes`], NumPy's
/// rules) and panic naming the op and both shapes when the shapes do not broadcast;
/// the in-place forms keep the left operand's shape, so the right one must broadcast
/// to it. A scalar multiplies or divides every element.
///
/// ```
/// # use autodiff::Tensor;
/// let w = Tensor::from_vec(vec![1.0f64, 2.0, 3.0], [3]);
/// let g = Tensor::from_vec(vec![0.5, 0.5, -1.0], [3]);
/// let lr: f64 = 0.5;
/// let stepped = &w - lr * &g; // a new tensor (`&g * 0.5` works with a bare literal)
/// assert_eq!(stepped.data(), &[0.75, 1.75, 3.5]);
///
/// assert_eq!((&w + &g).data(), &[1.5, 2.5, 2.0]);
/// assert_eq!((&w * &g).data(), &[0.5, 1.0, -3.0]);
/// assert_eq!((&w / &g).data(), &[2.0, 4.0, -3.0]);
/// assert_eq!((&w * 2.0).data(), &[2.0, 4.0, 6.0]);
/// assert_eq!((w.clone() / 2.0).data(), &[0.5, 1.0, 1.5]); // by value: no new storage
/// assert_eq!((-&w).data(), &[-1.0, -2.0, -3.0]);
///
/// // A row broadcasts over the rows of a matrix, as on the tape.
/// let m = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]);
/// assert_eq!((&m + &w).data(), &[2.0, 4.0, 6.0, 5.0, 7.0, 9.0]);
///
/// // In place: the left operand keeps its shape; a clone is never changed.
/// let mut acc = m.clone();
/// acc += &m;
/// acc -= &w;
/// acc *= 0.5;
/// assert_eq!(acc.data(), &[0.5, 1.0, 1.5, 3.5, 4.0, 4.5]);
/// assert_eq!(m.data(), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
/// ```
///
/// Mismatched shapes panic at the caller's line, naming the op and both shapes:
///
/// ```should_panic
/// # use autodiff::Tensor;
/// let _ = &Tensor::<f64>::zeros([2, 3]) + &Tensor::zeros([2]); // add: [2, 3] and [2]: shapes do not broadcast
/// ```
#[derive(Clone, PartialEq)]
pub struct Tensor<T: Float> {
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
    #[track_caller]
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
    ///
    /// `rng` is one of [`crate::rand`]'s generators (this crate's `rand`, 0.9): a
    /// generator from another major version of `rand` (`cargo add rand` picks the
    /// newest) does not implement this `Rng`.
    ///
    /// ```
    /// use autodiff::rand::{rngs::StdRng, SeedableRng};
    /// use autodiff::Tensor;
    ///
    /// let mut rng = StdRng::seed_from_u64(42);
    /// let w = Tensor::<f32>::randn([3, 2], &mut rng);
    /// assert_eq!(w, Tensor::randn([3, 2], &mut StdRng::seed_from_u64(42)));
    /// ```
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
    /// `rng` is one of [`crate::rand`]'s generators (this crate's `rand`, 0.9), as for
    /// [`Tensor::randn`].
    ///
    /// ```
    /// use autodiff::rand::{rngs::StdRng, SeedableRng};
    /// use autodiff::Tensor;
    ///
    /// let u = Tensor::<f64>::rand_uniform([4], -1.0, 1.0, &mut StdRng::seed_from_u64(7));
    /// assert!(u.data().iter().all(|&x| (-1.0..1.0).contains(&x)));
    /// ```
    ///
    /// Panics if `low >= high` or either bound is not finite.
    #[track_caller]
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

    /// A batch: rows `indices` of the row-major matrix `source` (rows of `row_len`
    /// values of any `Copy` type, bytes say), each value converted by `map`, as a
    /// `[indices.len(), row_len]` tensor. A large batch is written in one band of rows
    /// per thread ([`crate::with_threads`]), the bands a matrix product of it splits
    /// into, so each core then multiplies the rows it wrote; the values never depend on
    /// the split.
    ///
    /// ```
    /// use autodiff::Tensor;
    /// // Three 2-pixel images as bytes; a batch of images 2 and 0, scaled to [0, 1].
    /// let pixels = [0u8, 255, 51, 102, 255, 0];
    /// let batch = Tensor::<f32>::gather_rows(&pixels, 2, &[2, 0], |p| f32::from(p) / 255.0);
    /// assert_eq!(batch.shape(), &[2, 2]);
    /// assert_eq!(batch.data(), &[1.0, 0.0, 0.0, 1.0]);
    /// ```
    ///
    /// Panics if `source` is not whole rows or an index is past its last row.
    #[track_caller]
    pub fn gather_rows<S: Copy + Sync>(
        source: &[S],
        row_len: usize,
        indices: &[usize],
        map: impl Fn(S) -> T + Sync,
    ) -> Self {
        Self::gather_rows_with_capacity(source, row_len, indices, indices.len(), map)
    }

    /// [`Tensor::gather_rows`] into storage with room for at least `capacity_rows`
    /// rows. A loader that gives every batch, a short last one too, the full batch's
    /// room has the allocator hand each step the same blocks.
    #[track_caller]
    pub fn gather_rows_with_capacity<S: Copy + Sync>(
        source: &[S],
        row_len: usize,
        indices: &[usize],
        capacity_rows: usize,
        map: impl Fn(S) -> T + Sync,
    ) -> Self {
        let data = rows::gather_rows(source, row_len, indices, capacity_rows, map);
        Tensor::from_vec(data, [indices.len(), row_len])
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
    #[track_caller]
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
    #[track_caller]
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
    #[track_caller]
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

    /// Applies `f` to every element, giving a new tensor of the same shape.
    ///
    /// ```
    /// # use autodiff::Tensor;
    /// let t = Tensor::from_vec(vec![1.0f32, -2.0, 3.0], [3]);
    /// assert_eq!(t.map(|x| x.max(0.0)).data(), &[1.0, 0.0, 3.0]);
    /// ```
    pub fn map(&self, f: impl Fn(T) -> T) -> Self {
        Tensor {
            shape: self.shape.clone(),
            data: Arc::new(self.data.iter().map(|&x| f(x)).collect()),
        }
    }

    /// Applies `f` to pairs of elements of `self` and `other`, which broadcast like the
    /// binary operators; panics naming both shapes when they do not.
    ///
    /// ```
    /// # use autodiff::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2]);
    /// let g = Tensor::from_vec(vec![10.0, 20.0], [2]); // one value per column
    /// let dx = x.zip_map(&g, |x, g| 3.0 * x * x * g);
    /// assert_eq!(dx.data(), &[30.0, 240.0, 270.0, 960.0]);
    /// ```
    #[track_caller]
    pub fn zip_map(&self, other: &Tensor<T>, f: impl Fn(T, T) -> T) -> Self {
        check_broadcast("zip_map", self, other);
        binary("zip_map", self, other, f)
    }

    /// `self -= scale * other` in place, for tensors of the same shape: the plain
    /// gradient-descent step `w -= lr * g`. Copies the storage first if a clone shares it.
    ///
    /// ```
    /// # use autodiff::Tensor;
    /// let mut w = Tensor::from_vec(vec![1.0, 2.0], [2]);
    /// let g = Tensor::from_vec(vec![10.0, -10.0], [2]);
    /// w.sub_scaled(&g, 0.5);
    /// assert_eq!(w.data(), &[-4.0, 7.0]);
    /// ```
    #[track_caller]
    pub fn sub_scaled(&mut self, other: &Tensor<T>, scale: T) {
        check_same_shape("sub_scaled", self, other);
        // a + (-s) b is a - s b, bit for bit: IEEE subtraction adds the negation.
        self.add_scaled(other, -scale);
    }

    /// `self += scale * other` in place (an axpy), for tensors of the same shape.
    /// Copies the storage first if a clone shares it.
    ///
    /// ```
    /// # use autodiff::Tensor;
    /// let mut velocity = Tensor::from_vec(vec![1.0, 1.0], [2]);
    /// velocity *= 0.5; // momentum
    /// velocity.add_scaled(&Tensor::from_vec(vec![2.0, -2.0], [2]), 0.5);
    /// assert_eq!(velocity.data(), &[1.5, -0.5]);
    /// ```
    #[track_caller]
    pub fn add_scaled(&mut self, other: &Tensor<T>, scale: T) {
        check_same_shape("add_scaled", self, other);
        for (a, &b) in self.data_mut().iter_mut().zip(other.data()) {
            *a += scale * b;
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

/// A reference converts by sharing the storage (no copy), so [`crate::Tape::param`]
/// and [`crate::Tape::constant`] take `&tensor` as well as `tensor`.
impl<T: Float> From<&Tensor<T>> for Tensor<T> {
    fn from(t: &Tensor<T>) -> Self {
        t.clone()
    }
}

/// `f(a, b)` over the broadcast shape; panics naming `op` and both shapes if they have none.
pub(crate) fn binary<T: Float>(
    op: &'static str,
    a: &Tensor<T>,
    b: &Tensor<T>,
    f: impl Fn(T, T) -> T,
) -> Tensor<T> {
    let (shape, data) = broadcast::binary(op, (a.data(), a.shape()), (b.data(), b.shape()), f);
    Tensor::from_parts(shape, data)
}

/// Repeats `x` along broadcast dimensions until it has `shape` (`x` itself if it has).
pub(crate) fn broadcast_to<T: Float>(x: &Tensor<T>, shape: &[usize]) -> Tensor<T> {
    if x.shape() == shape {
        return x.clone();
    }
    let data = broadcast::broadcast_to(x.data(), x.shape(), shape);
    Tensor::from_parts(shape.into(), data)
}

/// Sums `grad` back down to `shape`, a broadcast operand's: [`broadcast_to`]'s inverse.
pub(crate) fn sum_to_shape<T: Float>(grad: Tensor<T>, shape: &[usize]) -> Tensor<T> {
    if grad.shape() == shape {
        return grad;
    }
    let summed = broadcast::sum_to_shape(grad.data(), grad.shape(), shape);
    Tensor::from_parts(shape.into(), summed)
}

/// Sum over the marked axes; the result has the keepdim shape.
pub(crate) fn sum<T: Float>(x: &Tensor<T>, reduced: &[bool]) -> Tensor<T> {
    let summed = reduce::sum(x.data(), x.shape(), reduced);
    Tensor::from_parts(kept_shape(x.shape(), reduced), summed)
}

/// Max over the marked axes (keepdim shape), with each group's first argmax ([`reduce::max`]).
pub(crate) fn max<T: Float>(x: &Tensor<T>, reduced: &[bool]) -> (Tensor<T>, Vec<usize>) {
    let (out, arg) = reduce::max(x.data(), x.shape(), reduced);
    (Tensor::from_parts(kept_shape(x.shape(), reduced), out), arg)
}

/// The tensor whose axis `d` is axis `perm[d]` of `x`, stored contiguously.
pub(crate) fn permute<T: Float>(x: &Tensor<T>, perm: &[usize]) -> Tensor<T> {
    let (shape, data) = permute::permute(x.data(), x.shape(), perm);
    Tensor::from_parts(shape, data)
}

/// Panics naming `op` and both shapes unless they broadcast.
#[track_caller]
fn check_broadcast<T: Float>(op: &'static str, a: &Tensor<T>, b: &Tensor<T>) {
    if a.shape != b.shape {
        if let Err(e) = broadcast_shapes(op, &a.shape, &b.shape) {
            panic!("{e}");
        }
    }
}

/// Panics naming `op` and both shapes unless they are equal.
#[track_caller]
fn check_same_shape<T: Float>(op: &'static str, a: &Tensor<T>, b: &Tensor<T>) {
    assert!(
        a.shape == b.shape,
        "{op}: shapes {} and {} differ",
        Dims(&a.shape),
        Dims(&b.shape)
    );
}

/// `self op= rhs` where `rhs` broadcasts to `self`'s shape: one pass in place when the
/// shapes agree, the broadcasting kernel otherwise.
#[track_caller]
fn assign_op<T: Float>(
    op: &'static str,
    lhs: &mut Tensor<T>,
    rhs: &Tensor<T>,
    f: impl Fn(T, T) -> T,
) {
    if lhs.shape == rhs.shape {
        for (a, &b) in lhs.data_mut().iter_mut().zip(rhs.data()) {
            *a = f(*a, b);
        }
        return;
    }
    let fits = broadcast_shapes(op, &lhs.shape, &rhs.shape).is_ok_and(|s| s == lhs.shape);
    assert!(
        fits,
        "{op}: {} does not broadcast to {} (an in-place update keeps the left shape)",
        Dims(&rhs.shape),
        Dims(&lhs.shape)
    );
    *lhs = binary(op, lhs, rhs, f);
}

/// `a op b` between tensors, for every combination of owned and borrowed operands.
/// An owned left operand of the result's shape is updated in place (no allocation
/// when its storage is not shared).
macro_rules! tensor_binary_ops {
    ($($trait:ident $method:ident $assign:ident $assign_method:ident $name:literal $op:tt;)*) => {$(
        impl<T: Float> $assign<&Tensor<T>> for Tensor<T> {
            #[track_caller]
            fn $assign_method(&mut self, rhs: &Tensor<T>) {
                assign_op($name, self, rhs, |p, q| p $op q);
            }
        }
        impl<T: Float> $assign<Tensor<T>> for Tensor<T> {
            #[track_caller]
            fn $assign_method(&mut self, rhs: Tensor<T>) {
                assign_op($name, self, &rhs, |p, q| p $op q);
            }
        }
        impl<T: Float> $trait<&Tensor<T>> for &Tensor<T> {
            type Output = Tensor<T>;
            #[track_caller]
            fn $method(self, rhs: &Tensor<T>) -> Tensor<T> {
                check_broadcast($name, self, rhs);
                binary($name, self, rhs, |p, q| p $op q)
            }
        }
        impl<T: Float> $trait<Tensor<T>> for &Tensor<T> {
            type Output = Tensor<T>;
            #[track_caller]
            fn $method(self, rhs: Tensor<T>) -> Tensor<T> {
                self $op &rhs
            }
        }
        impl<T: Float> $trait<&Tensor<T>> for Tensor<T> {
            type Output = Tensor<T>;
            #[track_caller]
            fn $method(mut self, rhs: &Tensor<T>) -> Tensor<T> {
                if self.shape == rhs.shape {
                    $assign::$assign_method(&mut self, rhs);
                    self
                } else {
                    &self $op rhs
                }
            }
        }
        impl<T: Float> $trait<Tensor<T>> for Tensor<T> {
            type Output = Tensor<T>;
            #[track_caller]
            fn $method(self, rhs: Tensor<T>) -> Tensor<T> {
                self $op &rhs
            }
        }
    )*};
}
tensor_binary_ops! {
    Add add AddAssign add_assign "add" +;
    Sub sub SubAssign sub_assign "sub" -;
    Mul mul MulAssign mul_assign "mul" *;
    Div div DivAssign div_assign "div" /;
}

impl<T: Float> MulAssign<T> for Tensor<T> {
    /// Multiplies every element by `s` in place.
    fn mul_assign(&mut self, s: T) {
        self.data_mut().iter_mut().for_each(|v| *v *= s);
    }
}
impl<T: Float> DivAssign<T> for Tensor<T> {
    /// Divides every element by `s` in place.
    fn div_assign(&mut self, s: T) {
        self.data_mut().iter_mut().for_each(|v| *v /= s);
    }
}
impl<T: Float> Mul<T> for Tensor<T> {
    type Output = Tensor<T>;
    /// Every element times `s`, reusing the storage when it is not shared.
    fn mul(mut self, s: T) -> Tensor<T> {
        self *= s;
        self
    }
}
impl<T: Float> Mul<T> for &Tensor<T> {
    type Output = Tensor<T>;
    /// Every element times `s`.
    fn mul(self, s: T) -> Tensor<T> {
        self.map(|v| v * s)
    }
}
impl<T: Float> Div<T> for Tensor<T> {
    type Output = Tensor<T>;
    /// Every element divided by `s`, reusing the storage when it is not shared.
    fn div(mut self, s: T) -> Tensor<T> {
        self /= s;
        self
    }
}
impl<T: Float> Div<T> for &Tensor<T> {
    type Output = Tensor<T>;
    /// Every element divided by `s`.
    fn div(self, s: T) -> Tensor<T> {
        self.map(|v| v / s)
    }
}
impl<T: Float> Neg for Tensor<T> {
    type Output = Tensor<T>;
    /// Every element negated, reusing the storage when it is not shared.
    fn neg(mut self) -> Tensor<T> {
        self.data_mut().iter_mut().for_each(|v| *v = -*v);
        self
    }
}
impl<T: Float> Neg for &Tensor<T> {
    type Output = Tensor<T>;
    /// Every element negated.
    fn neg(self) -> Tensor<T> {
        self.map(|v| -v)
    }
}

/// `s * tensor` for both element types (the scalar on the left, as in `lr * &g`).
macro_rules! scalar_times_tensor {
    ($($t:ty),*) => {$(
        impl Mul<Tensor<$t>> for $t {
            type Output = Tensor<$t>;
            fn mul(self, t: Tensor<$t>) -> Tensor<$t> {
                t * self
            }
        }
        impl Mul<&Tensor<$t>> for $t {
            type Output = Tensor<$t>;
            fn mul(self, t: &Tensor<$t>) -> Tensor<$t> {
                t * self
            }
        }
    )*};
}
scalar_times_tensor!(f32, f64);

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

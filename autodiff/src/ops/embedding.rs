//! Embedding (PyTorch's `F.embedding`): the rows of a table named by integer ids. Its
//! gradient adds each output row's adjoint into the row it was read from, so a row used
//! twice gets the sum of both. Recorded, that is the flat `scatter_add` of
//! `ops/adjoint.rs`, whose own vjp is a gather: every order of derivative stays within
//! the pair.

use super::{BatchView, InputGrads, Rule, VarGrads, VarJvp, VarVjp, VjpContext};
use crate::float::Float;
use crate::shape::{numel, Dims, Shape};
use crate::tape::Var;
use crate::tensor::Tensor;
use smallvec::smallvec;
use std::rc::Rc;

/// Rows `ids` of the table, input 0; input 1, where there is one, holds the ids as
/// values (so per-sample gradients can see which example each row belongs to).
pub(crate) struct Embedding {
    ids: Rc<[usize]>,
}

impl Embedding {
    /// Each output element's flat position in the table (`row` elements a row).
    fn flat(&self, row: usize) -> Rc<[usize]> {
        let positions = self.ids.iter().flat_map(|&i| i * row..(i + 1) * row);
        positions.collect()
    }

    /// `grad`'s rows added into `examples` zero tables of `table` shape, row `j` into
    /// row `ids[j]` of table `j / per`, in the order of `j`: one table for the batch's
    /// gradient, one per example (`per` ids each) for per-sample gradients.
    fn scatter<T: Float>(
        &self,
        grad: &[T],
        table: &[usize],
        examples: usize,
        per: usize,
    ) -> Vec<T> {
        let (row, len) = (numel(&table[1..]), numel(table));
        let mut out = vec![T::zero(); examples * len];
        for (j, &i) in self.ids.iter().enumerate() {
            let to = &mut out[(j / per) * len + i * row..][..row];
            for (t, &g) in to.iter_mut().zip(&grad[j * row..(j + 1) * row]) {
                *t += g;
            }
        }
        out
    }
}

impl<T: Float> Rule<T> for Embedding {
    fn name(&self) -> String {
        "embedding".into()
    }
    /// The table's gradient: each row's adjoint added into the row it came from. The
    /// ids get none (the output is piecewise constant in them).
    fn vjp(&self, ctx: &VjpContext<'_, T>) -> InputGrads<T> {
        let table = ctx.inputs[0].shape();
        let mut grads: InputGrads<T> = smallvec![ctx.wants[0].then(|| {
            Tensor::from_vec(
                self.scatter(ctx.grad.data(), table, 1, self.ids.len()),
                table,
            )
        })];
        grads.extend((1..ctx.inputs.len()).map(|_| None));
        grads
    }
    /// Recorded: the same sums as a flat `scatter_add` (its vjp is the gather back).
    fn vjp_var<'t>(&self, ctx: &VarVjp<'_, 't, T>) -> VarGrads<'t, T> {
        let table = ctx.inputs[0].shape();
        let flat = self.flat(numel(&table[1..]));
        let mut grads: VarGrads<'t, T> =
            smallvec![ctx.wants[0].then(|| ctx.grad.scatter_add(flat, &table))];
        grads.extend((1..ctx.inputs.len()).map(|_| None));
        grads
    }
    /// The op is linear in the table: the tangent's rows, picked the same way.
    fn jvp_var<'t>(&self, ctx: &VarJvp<'_, 't, T>) -> Option<Var<'t, T>> {
        let t = ctx.tangents[0]?;
        let row = numel(&t.shape()[1..]);
        Some(t.gather(self.flat(row), &ctx.output.shape()))
    }
    /// With the ids as values whose first axis is the examples, output row `i` holds
    /// example `i`'s rows of the shared table.
    fn keeps_rows(&self, batch: &BatchView<'_>) -> bool {
        batch.inputs.len() == 2 && batch.rows(1) && !batch.rows(0)
    }
    fn has_per_example(&self, k: usize, _: &BatchView<'_>) -> bool {
        k == 0
    }
    /// Example `i`'s table gradient: its own rows' adjoints added into the rows its
    /// ids name (the fast vjp's sums, split by example).
    fn per_example(&self, k: usize, ctx: &VjpContext<'_, T>, n: usize) -> Vec<T> {
        debug_assert_eq!(k, 0, "embedding: the ids have no gradient");
        let per = self.ids.len() / n.max(1);
        self.scatter(ctx.grad.data(), ctx.inputs[0].shape(), n, per)
    }
}

/// The table's rows `ids`, under `shape`.
fn gather_rows<T: Float>(table: &Tensor<T>, ids: &[usize], shape: Shape) -> Tensor<T> {
    let row = numel(&table.shape()[1..]);
    let mut data = Vec::with_capacity(ids.len() * row);
    for &i in ids {
        data.extend_from_slice(&table.data()[i * row..(i + 1) * row]);
    }
    Tensor::from_vec(data, shape)
}

impl<'t, T: Float> Var<'t, T> {
    /// The rows `ids` of this table (`[vocab, dim]`, or any shape whose first axis is
    /// the vocabulary), as `[ids.len(), dim]`: PyTorch's `F.embedding`. Ids may
    /// repeat; the table's gradient row is then the sum of its uses.
    ///
    /// ```
    /// use autodiff::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let table = tape.param(Tensor::from_vec(vec![0.0, 1.0, 10.0, 11.0, 20.0, 21.0], [3, 2]));
    /// let rows = table.embedding(&[2, 0, 2]);
    /// assert_eq!(rows.value().data(), &[20.0, 21.0, 0.0, 1.0, 20.0, 21.0]);
    /// let g = rows.sum().backward();
    /// assert_eq!(g[table].data(), &[1.0, 1.0, 0.0, 0.0, 2.0, 2.0]); // row 2 used twice
    /// ```
    ///
    /// Panics at the caller's line, naming the id and the table's rows, when an id is
    /// out of range.
    #[track_caller]
    pub fn embedding(self, ids: &[usize]) -> Self {
        let table = self.embedding_table(ids);
        let mut shape: Shape = smallvec![ids.len()];
        shape.extend_from_slice(&table[1..]);
        let ids: Rc<[usize]> = ids.into();
        self.tape.record(&[self], |x, _| {
            (gather_rows(x[0], &ids, shape), Embedding { ids })
        })
    }

    /// [`Var::embedding`] with the ids as the values of `ids`, of any shape (whole
    /// numbers, as PyTorch's index tensors): a `[batch, time]` tensor of ids gives
    /// `[batch, time, dim]`. With the ids a batch input of [`crate::func::per_sample`],
    /// each example's table gradient is taken on the batched path.
    ///
    /// Panics at the caller's line when an id is not a whole number or is out of range.
    #[track_caller]
    pub fn embedding_of(self, ids: Var<'t, T>) -> Self {
        self.tape.check_owns(ids);
        // Read inside the closure, panicked on outside it: a closure is not
        // `#[track_caller]`, and the message should name the caller's line.
        let (rows, id_shape) = ids.with_value(|v| {
            let rows: Result<Vec<usize>, (usize, f64)> = (v.data().iter().enumerate())
                .map(|(k, &id)| match id.as_f64() {
                    i if i >= 0.0 && i.fract() == 0.0 && i < usize::MAX as f64 => Ok(i as usize),
                    i => Err((k, i)),
                })
                .collect();
            (rows, Shape::from(v.shape()))
        });
        let rows = match rows {
            Ok(rows) => rows,
            Err((k, i)) => panic!("embedding: id {i} (element {k} of the ids) is not a row index"),
        };
        let table = self.embedding_table(&rows);
        let mut shape = id_shape;
        shape.extend_from_slice(&table[1..]);
        let rows: Rc<[usize]> = rows.into();
        self.tape.record(&[self, ids], |x, _| {
            (gather_rows(x[0], &rows, shape), Embedding { ids: rows })
        })
    }

    /// This table's shape, after checking (at the caller's line) that it has a row
    /// axis and that every id names a row.
    #[track_caller]
    fn embedding_table(self, ids: &[usize]) -> Shape {
        let table = self.shape();
        assert!(
            !table.is_empty(),
            "embedding: the table is a scalar; it needs a first axis of rows"
        );
        if let Some(&bad) = ids.iter().find(|&&i| i >= table[0]) {
            panic!(
                "embedding: index {bad} is out of range for a table of {} rows ({})",
                table[0],
                Dims(&table)
            );
        }
        table
    }
}

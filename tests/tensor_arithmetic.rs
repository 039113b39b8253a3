//! `Tensor` arithmetic outside the tape: values against element loops, broadcasting,
//! copy-on-write between clones, and the panics for shapes that do not fit.

use autodiff::Tensor;

fn t(data: &[f64], shape: &[usize]) -> Tensor<f64> {
    Tensor::from_vec(data.to_vec(), shape)
}

#[test]
fn operators_match_element_loops_for_every_owned_and_borrowed_combination() {
    let a = t(&[1.5, -2.0, 3.25, 0.5], &[2, 2]);
    let b = t(&[0.25, 4.0, -1.0, 2.0], &[2, 2]);
    let each = |f: fn(f64, f64) -> f64| -> Vec<f64> {
        a.data()
            .iter()
            .zip(b.data())
            .map(|(&p, &q)| f(p, q))
            .collect()
    };
    assert_eq!((&a + &b).data(), each(|p, q| p + q));
    assert_eq!((a.clone() + &b).data(), each(|p, q| p + q));
    assert_eq!((&a + b.clone()).data(), each(|p, q| p + q));
    assert_eq!((a.clone() + b.clone()).data(), each(|p, q| p + q));
    assert_eq!((&a - &b).data(), each(|p, q| p - q));
    assert_eq!((a.clone() - b.clone()).data(), each(|p, q| p - q));
    assert_eq!((&a * &b).data(), each(|p, q| p * q));
    assert_eq!((a.clone() * &b).data(), each(|p, q| p * q));
    assert_eq!((&a / &b).data(), each(|p, q| p / q));
    assert_eq!((a.clone() / b.clone()).data(), each(|p, q| p / q));
    assert_eq!(
        a.zip_map(&b, |p, q| p * q + 1.0).data(),
        each(|p, q| p * q + 1.0)
    );
    let scaled: Vec<f64> = a.data().iter().map(|&p| p * 0.3).collect();
    assert_eq!((&a * 0.3).data(), scaled);
    assert_eq!((a.clone() * 0.3).data(), scaled);
    assert_eq!((0.3 * &a).data(), scaled);
    assert_eq!((0.3 * a.clone()).data(), scaled);
    let halved: Vec<f64> = a.data().iter().map(|&p| p / 2.0).collect();
    assert_eq!((&a / 2.0).data(), halved);
    assert_eq!((a.clone() / 2.0).data(), halved);
    let negated: Vec<f64> = a.data().iter().map(|&p| -p).collect();
    assert_eq!((-&a).data(), negated);
    assert_eq!((-a.clone()).data(), negated);
    assert_eq!((&a + &b).shape(), &[2, 2]);
}

#[test]
fn binary_operators_broadcast_like_the_tape() {
    let m = t(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    let row = t(&[10.0, 20.0, 30.0], &[3]);
    let col = t(&[100.0, 200.0], &[2, 1]);
    assert_eq!((&m + &row).data(), &[11.0, 22.0, 33.0, 14.0, 25.0, 36.0]);
    assert_eq!((&row + &m).data(), &[11.0, 22.0, 33.0, 14.0, 25.0, 36.0]);
    assert_eq!(
        (&m * &col).data(),
        &[100.0, 200.0, 300.0, 800.0, 1000.0, 1200.0]
    );
    let outer = &col + &row;
    assert_eq!(outer.shape(), &[2, 3]);
    assert_eq!(outer.data(), &[110.0, 120.0, 130.0, 210.0, 220.0, 230.0]);
    // By value with a left operand smaller than the result.
    assert_eq!(
        (row.clone() - m.clone()).data(),
        &[9.0, 18.0, 27.0, 6.0, 15.0, 24.0]
    );
    // Same values as the tape's broadcasting add.
    let tape = autodiff::Tape::new();
    let on_tape = (tape.constant(&m) + tape.constant(&row)).value();
    assert_eq!(on_tape, &m + &row);
}

#[test]
fn in_place_updates_copy_shared_storage_and_leave_clones_alone() {
    let w = t(&[1.0, 2.0, 3.0], &[3]);
    let g = t(&[0.5, -1.0, 2.0], &[3]);
    let mut stepped = w.clone(); // shares w's storage
    stepped.sub_scaled(&g, 0.5);
    assert_eq!(stepped.data(), &[0.75, 2.5, 2.0]);
    assert_eq!(w.data(), &[1.0, 2.0, 3.0], "the clone must not change");
    let mut acc = w.clone();
    acc.add_scaled(&g, 2.0);
    assert_eq!(acc.data(), &[2.0, 0.0, 7.0]);
    acc += &g;
    assert_eq!(acc.data(), &[2.5, -1.0, 9.0]);
    acc -= g.clone();
    assert_eq!(acc.data(), &[2.0, 0.0, 7.0]);
    acc *= 3.0;
    assert_eq!(acc.data(), &[6.0, 0.0, 21.0]);
    acc /= 2.0;
    assert_eq!(acc.data(), &[3.0, 0.0, 10.5]);
    let mut m = t(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    let before = m.clone();
    m += &w; // a row broadcast over the rows
    assert_eq!(m.data(), &[2.0, 4.0, 6.0, 5.0, 7.0, 9.0]);
    m -= t(&[1.0], &[1]);
    assert_eq!(m.data(), &[1.0, 3.0, 5.0, 4.0, 6.0, 8.0]);
    assert_eq!(before.data(), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(w.data(), &[1.0, 2.0, 3.0]);
}

#[test]
fn a_gradient_step_reads_as_the_formula() {
    // w - lr * grads[w] with a tape's gradient.
    let w = t(&[0.5, -0.25], &[2]);
    let tape = autodiff::Tape::new();
    let x = tape.param(&w);
    let grads = x.square().sum().backward();
    let lr = 0.1;
    let updated = &w - lr * &grads[x];
    let mut in_place = w.clone();
    in_place.sub_scaled(&grads[x], lr);
    assert_eq!(updated, in_place);
    assert_eq!(updated.data(), &[0.5 - 0.1 * 1.0, -0.25 - 0.1 * -0.5]);
}

#[test]
#[should_panic(expected = "add: [2, 3] and [2]: shapes do not broadcast")]
fn adding_shapes_that_do_not_broadcast_names_the_op_and_both_shapes() {
    let _ = &Tensor::<f64>::zeros([2, 3]) + &Tensor::zeros([2]);
}

#[test]
#[should_panic(expected = "div: [4] and [3]: shapes do not broadcast")]
fn dividing_by_value_checks_shapes_too() {
    let _ = Tensor::<f32>::ones([4]) / Tensor::ones([3]);
}

#[test]
#[should_panic(expected = "zip_map: [2] and [3]: shapes do not broadcast")]
fn zip_map_names_both_shapes() {
    let _ = Tensor::<f64>::ones([2]).zip_map(&Tensor::ones([3]), |a, b| a + b);
}

#[test]
#[should_panic(
    expected = "sub: [2, 3] does not broadcast to [3] (an in-place update keeps the left shape)"
)]
fn an_in_place_update_keeps_the_left_shape() {
    let mut row = Tensor::<f64>::zeros([3]);
    row -= &Tensor::zeros([2, 3]);
}

#[test]
#[should_panic(expected = "sub_scaled: shapes [3] and [1] differ")]
fn sub_scaled_needs_equal_shapes() {
    let mut w = Tensor::<f32>::zeros([3]);
    w.sub_scaled(&Tensor::ones([1]), 0.1);
}

/// The cost of a line `x w + b` against targets `y`: a named function, reusable across
/// steps (a stored closure would fail the higher-ranked lifetime bound).
fn squared_error<'t>(
    tape: &'t autodiff::Tape<f64>,
    x: &Tensor<f64>,
    y: &Tensor<f64>,
    w: autodiff::Var<'t, f64>,
    b: autodiff::Var<'t, f64>,
) -> autodiff::Var<'t, f64> {
    let prediction = tape.constant(x).matmul(w) + b;
    (prediction - tape.constant(y)).square().mean()
}

#[test]
fn a_hand_written_linear_regression_needs_no_element_loops_or_clones() {
    // y = 2 x + 1 on five points.
    let x = t(&[-1.0, -0.5, 0.0, 0.5, 1.0], &[5, 1]);
    let y = &(&x * 2.0) + &t(&[1.0], &[1]);
    let (mut w, mut b) = (Tensor::<f64>::zeros([1, 1]), Tensor::<f64>::zeros([1]));
    let lr = 0.5;
    for _ in 0..200 {
        let tape = autodiff::Tape::new();
        let (wv, bv) = (tape.param(&w), tape.param(&b));
        let grads = squared_error(&tape, &x, &y, wv, bv).backward();
        w.sub_scaled(&grads[wv], lr);
        b = &b - lr * &grads[bv];
    }
    assert!((w.item() - 2.0).abs() < 1e-9, "w = {}", w.item());
    assert!((b.item() - 1.0).abs() < 1e-9, "b = {}", b.item());
}

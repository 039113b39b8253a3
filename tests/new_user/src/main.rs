//! What README.md shows, in a crate of its own: see tests/new_user.rs.

use autodiff::{func, Tensor};
use nn::{Activation, Cost, Init, Model, Module, Quadratic};

fn main() {
    let model = Model::<f64>::new(
        &[2, 3, 2],
        Activation::Sigmoid,
        Activation::Sigmoid,
        Init::ScaledNormal,
        7,
    );
    let x = Tensor::from_vec(vec![0.0, 1.0, 1.0, 0.0], [2, 2]);
    // The cost of the parameters, with the model and the data captured: kept once, used twice.
    let cost = func::function(|tape, p| {
        let bound = model.params().bind_vars(p);
        Quadratic.cost(model.forward(&bound, tape.constant(&x)), &[1, 0])
    });
    let values = model.params().to_values();
    let g = func::grad(&cost, &values);
    let hv = func::hvp(&cost, &values, &g); // the Hessian times the gradient
    let norm = |t: &Tensor<f64>| t.data().iter().map(|v| v * v).sum::<f64>().sqrt();
    for ((name, value), (g, hv)) in model.params().iter().zip(g.iter().zip(&hv)) {
        assert_eq!(g.shape(), value.shape());
        assert_eq!(hv.shape(), value.shape());
        println!(
            "{name}: gradient norm {:.6}, Hg norm {:.6}",
            norm(g),
            norm(hv)
        );
    }

    // One feature too few: the panic names the layer and this line.
    let tape = autodiff::Tape::new();
    let bound = model.params().bind(&tape);
    let narrow = tape.constant(Tensor::zeros([2, 1]));
    let _ = model.forward(&bound, narrow);
}

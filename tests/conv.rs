//! Convolution and pooling: gradcheck on fixed and proptest-random shapes, strides,
//! paddings, dilations and groups, and a direct-loop reference for the values.

use autodiff::{gradcheck, Conv2dOptions, GradcheckOptions, Tape, Tensor};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

fn uniform(shape: &[usize], seed: u64) -> Tensor<f64> {
    Tensor::rand_uniform(shape, -1.0, 1.0, &mut StdRng::seed_from_u64(seed))
}

/// Distinct values (a shuffled ramp) keep max pooling away from ties.
fn distinct(shape: &[usize], seed: u64) -> Tensor<f64> {
    let n: usize = shape.iter().product();
    let mut v: Vec<f64> = (0..n).map(|i| i as f64 * 0.1 - 1.0).collect();
    rand::seq::SliceRandom::shuffle(v.as_mut_slice(), &mut StdRng::seed_from_u64(seed));
    Tensor::from_vec(v, shape)
}

/// The definition, in loops: y[n,o,y,x] = Σ w[o,c,i,j] x[n, g*cg + c, y*s + i*d - p, ...].
fn conv_reference(x: &Tensor<f64>, w: &Tensor<f64>, o: Conv2dOptions) -> Vec<f64> {
    let (xs, ws) = (x.shape(), w.shape());
    let (n, c, h, wd, oc, cg, kh, kw) = (xs[0], xs[1], xs[2], xs[3], ws[0], ws[1], ws[2], ws[3]);
    let og = oc / o.groups;
    let oh = (h + 2 * o.padding[0] - o.dilation[0] * (kh - 1) - 1) / o.stride[0] + 1;
    let ow = (wd + 2 * o.padding[1] - o.dilation[1] * (kw - 1) - 1) / o.stride[1] + 1;
    let mut out = vec![0.0; n * oc * oh * ow];
    for b in 0..n {
        for f in 0..oc {
            let grp = f / og;
            for y in 0..oh {
                for xx in 0..ow {
                    let mut s = 0.0;
                    for ch in 0..cg {
                        for i in 0..kh {
                            for j in 0..kw {
                                let iy = (y * o.stride[0] + i * o.dilation[0]) as isize
                                    - o.padding[0] as isize;
                                let ix = (xx * o.stride[1] + j * o.dilation[1]) as isize
                                    - o.padding[1] as isize;
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd {
                                    s += w.get(&[f, ch, i, j])
                                        * x.get(&[b, grp * cg + ch, iy as usize, ix as usize]);
                                }
                            }
                        }
                    }
                    out[((b * oc + f) * oh + y) * ow + xx] = s;
                }
            }
        }
    }
    let _ = c;
    out
}

fn check_conv(xs: &[usize], ws: &[usize], o: Conv2dOptions, seed: u64) -> Result<(), String> {
    let (x, w) = (uniform(xs, seed), uniform(ws, seed ^ 7));
    let tape = Tape::new();
    let y = tape
        .constant(x.clone())
        .conv2d(tape.constant(w.clone()), o)
        .value();
    for (a, b) in y.data().iter().zip(conv_reference(&x, &w, o)) {
        if (a - b).abs() > 1e-12 {
            return Err(format!("value {a} vs reference {b}"));
        }
    }
    gradcheck(
        move |_, v| v[0].conv2d(v[1], o),
        &[x, w],
        GradcheckOptions::default(),
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
}

#[test]
fn conv2d_matches_the_definition_and_passes_gradcheck() {
    let cases = [
        ([2, 1, 6, 6], [3, 1, 3, 3], Conv2dOptions::default()),
        ([1, 2, 7, 5], [4, 2, 3, 2], Conv2dOptions::new(2, 1)),
        (
            [2, 3, 6, 6],
            [2, 3, 2, 2],
            Conv2dOptions {
                dilation: [2, 1],
                ..Conv2dOptions::new(1, 1)
            },
        ),
        (
            [1, 4, 5, 5],
            [6, 2, 3, 3],
            Conv2dOptions {
                groups: 2,
                ..Conv2dOptions::new(1, 1)
            },
        ),
        ([1, 1, 28, 28], [6, 1, 5, 5], Conv2dOptions::new(1, 2)), // LeNet's first layer
    ];
    for (k, (xs, ws, o)) in cases.iter().enumerate() {
        if let Err(e) = check_conv(xs, ws, *o, k as u64) {
            panic!("case {k} {xs:?} * {ws:?} {o:?}: {e}");
        }
    }
}

#[test]
fn fused_bias_equals_a_broadcast_add_and_passes_gradcheck() {
    let (x, w, b) = (
        uniform(&[2, 2, 5, 5], 1),
        uniform(&[3, 2, 3, 3], 2),
        uniform(&[3], 3),
    );
    let o = Conv2dOptions::new(2, 1);
    let tape = Tape::new();
    let (xv, wv, bv) = (
        tape.constant(x.clone()),
        tape.constant(w.clone()),
        tape.constant(b.clone()),
    );
    let fused = xv.conv2d_bias(wv, bv, o).value();
    let unfused = (xv.conv2d(wv, o) + bv.reshape([1, 3, 1, 1])).value();
    for (p, q) in fused.data().iter().zip(unfused.data()) {
        assert!((p - q).abs() < 1e-12);
    }
    let r = gradcheck(
        move |_, v| v[0].conv2d_bias(v[1], v[2], o).tanh(),
        &[x, w, b],
        GradcheckOptions::default(),
    );
    assert!(r.is_ok(), "{:?}", r.err());
}

#[test]
fn pooling_passes_gradcheck() {
    let x = distinct(&[2, 3, 6, 6], 1);
    for (kernel, stride, padding) in [(2, 2, 0), (3, 2, 1), (3, 1, 0)] {
        let r = gradcheck(
            move |_, v| v[0].max_pool2d(kernel, stride, padding),
            std::slice::from_ref(&x),
            GradcheckOptions::default(),
        );
        assert!(
            r.is_ok(),
            "max_pool2d {kernel}/{stride}/{padding}: {:?}",
            r.err()
        );
        let r = gradcheck(
            move |_, v| v[0].avg_pool2d(kernel, stride, padding),
            std::slice::from_ref(&x),
            GradcheckOptions::default(),
        );
        assert!(
            r.is_ok(),
            "avg_pool2d {kernel}/{stride}/{padding}: {:?}",
            r.err()
        );
    }
    let r = gradcheck(
        |_, v| v[0].flatten().tanh(),
        &[uniform(&[2, 3, 2, 2], 3)],
        GradcheckOptions::default(),
    );
    assert!(r.is_ok(), "{:?}", r.err());
}

#[test]
fn max_pool_ties_send_the_gradient_to_the_first_maximum() {
    let tape = Tape::<f64>::new();
    let x = tape.param(Tensor::from_vec(vec![1.0, 3.0, 3.0, 2.0], [1, 1, 2, 2]));
    let g = x.max_pool2d(2, 2, 0).sum().backward();
    assert_eq!(g[x].data(), &[0.0, 1.0, 0.0, 0.0]);
}

/// The window maximum by the definition: first maximum in row order, the first NaN if any.
fn max_pool_reference(x: &[f32], h: usize, w: usize, k: usize, s: usize) -> (Vec<f32>, Vec<usize>) {
    let (oh, ow) = ((h - k) / s + 1, (w - k) / s + 1);
    let mut out = Vec::new();
    let mut at = Vec::new();
    for plane in 0..x.len() / (h * w) {
        for y in 0..oh {
            for xo in 0..ow {
                let cells: Vec<usize> = (0..k * k)
                    .map(|t| plane * h * w + (y * s + t / k) * w + xo * s + t % k)
                    .collect();
                let best = match cells.iter().find(|&&i| x[i].is_nan()) {
                    Some(&i) => i,
                    None => cells
                        .iter()
                        .copied()
                        .fold(cells[0], |b, i| if x[i] > x[b] { i } else { b }),
                };
                out.push(x[best]);
                at.push(best);
            }
        }
    }
    (out, at)
}

#[test]
fn max_pool_matches_the_definition_with_ties_nans_and_infinities() {
    // Small integers give many ties; NaN and infinities are sprinkled in. 2x2 stride 2
    // takes the unrolled path, 3x3 stride 2 the general one: both must agree with loops.
    let (n, c, h, w) = (3, 4, 8, 8);
    let mut rng = StdRng::seed_from_u64(7);
    let x: Vec<f32> = (0..n * c * h * w)
        .map(|_| match rand::Rng::random_range(&mut rng, 0..40) {
            0 => f32::NAN,
            1 => f32::INFINITY,
            2 => f32::NEG_INFINITY,
            v => (v % 4) as f32 - 2.0,
        })
        .collect();
    for (k, s) in [(2, 2), (3, 2), (2, 1)] {
        let tape = Tape::<f32>::new();
        let xv = tape.param(Tensor::from_vec(x.clone(), [n, c, h, w]));
        let y = xv.max_pool2d(k, s, 0);
        let (want, at) = max_pool_reference(&x, h, w, k, s);
        let got = y.value().data().to_vec();
        assert_eq!(got.len(), want.len());
        for (i, (g, e)) in got.iter().zip(&want).enumerate() {
            assert!(
                g == e || (g.is_nan() && e.is_nan()),
                "kernel {k} stride {s} cell {i}: {g} vs {e}"
            );
        }
        // The gradient of a weighted sum lands on exactly the reference's cells.
        let weights = Tensor::from_vec(
            (0..want.len()).map(|i| (i % 7) as f32 + 1.0).collect(),
            y.value().shape(),
        );
        let grads = (y * tape.constant(weights.clone())).sum().backward();
        let mut expected = vec![0.0f32; x.len()];
        for (&i, &g) in at.iter().zip(weights.data()) {
            expected[i] += g;
        }
        assert_eq!(grads[xv].data(), &expected[..], "kernel {k} stride {s}");
    }
}

#[test]
#[should_panic(expected = "conv2d: input [1, 3, 5, 5] weight [4, 2, 3, 3]")]
fn conv2d_shape_errors_name_both_shapes() {
    let tape = Tape::<f32>::new();
    let _ = tape.constant(Tensor::zeros([1, 3, 5, 5])).conv2d(
        tape.constant(Tensor::zeros([4, 2, 3, 3])),
        Conv2dOptions::default(),
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn grad_matches_finite_differences_for_random_convolutions(
        n in 1usize..3, groups in 1usize..3, cg in 1usize..3, og in 1usize..3,
        h in 3usize..8, w in 3usize..8, kh in 1usize..4, kw in 1usize..4,
        stride in 1usize..3, padding in 0usize..2, dilation in 1usize..3, seed in any::<u64>(),
    ) {
        let o = Conv2dOptions { stride: [stride, stride], padding: [padding, padding], dilation: [dilation, 1], groups };
        prop_assume!(h + 2 * padding > dilation * (kh - 1) && w + 2 * padding >= kw);
        check_conv(&[n, groups * cg, h, w], &[groups * og, cg, kh, kw], o, seed).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn grad_matches_finite_differences_for_random_pooling(
        n in 1usize..3, c in 1usize..3, h in 2usize..8, w in 2usize..8,
        kernel in 1usize..4, stride in 1usize..3, padding in 0usize..2, seed in any::<u64>(),
    ) {
        prop_assume!(2 * padding <= kernel && h + 2 * padding >= kernel && w + 2 * padding >= kernel);
        let x = distinct(&[n, c, h, w], seed);
        gradcheck(move |_, v| v[0].max_pool2d(kernel, stride, padding), std::slice::from_ref(&x), GradcheckOptions::default()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        gradcheck(move |_, v| v[0].avg_pool2d(kernel, stride, padding), &[x], GradcheckOptions::default()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
}

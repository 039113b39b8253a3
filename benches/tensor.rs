//! Tensor kernels and one training step: matmul at the network's shapes (including the
//! transposed products of backprop) in FLOP/s, `gemm` against `matrixmultiply`, a
//! forward + backward + SGD step of the 784-16-16-10 network at batch 100, and one
//! Hessian-vector product of network B's cost at batch 128.

use autodiff::internals::{matmul_into, MatRef};
use autodiff::{Tape, Tensor};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::SeedableRng;

fn randn(shape: &[usize], seed: u64) -> Tensor<f32> {
    Tensor::randn(shape, &mut StdRng::seed_from_u64(seed))
}

/// (name, m, k, n, transpose a, transpose b)
const SHAPES: &[(&str, usize, usize, usize, bool, bool)] = &[
    ("100x784x16 (X W)", 100, 784, 16, false, false),
    ("100x16x784 (G Wt, dX)", 100, 16, 784, false, true),
    ("784x100x16 (Xt G, dW)", 784, 100, 16, true, false),
    ("256x784x1024 (X W)", 256, 784, 1024, false, false),
    ("256x1024x784 (G Wt, dX)", 256, 1024, 784, false, true),
    ("784x256x1024 (Xt G, dW)", 784, 256, 1024, true, false),
];

fn matmul(c: &mut Criterion) {
    let mut group = c.benchmark_group("matmul");
    group.sample_size(20);
    for &(name, m, k, n, ta, tb) in SHAPES {
        // Stored as the forward operands; the transposed cases read them as views.
        let a = randn(&if ta { [k, m] } else { [m, k] }, 1);
        let b = randn(&if tb { [n, k] } else { [k, n] }, 2);
        let mut out = vec![0.0f32; m * n];
        group.throughput(Throughput::Elements((2 * m * n * k) as u64)); // FLOPs
        group.bench_with_input(BenchmarkId::new("gemm", name), &(), |bench, _| {
            bench.iter(|| {
                let av = if ta {
                    MatRef::row_major(a.data(), k, m).t()
                } else {
                    MatRef::row_major(a.data(), m, k)
                };
                let bv = if tb {
                    MatRef::row_major(b.data(), n, k).t()
                } else {
                    MatRef::row_major(b.data(), k, n)
                };
                matmul_into(av, bv, &mut out, false);
                black_box(out[0])
            })
        });
        group.bench_with_input(BenchmarkId::new("matrixmultiply", name), &(), |bench, _| {
            let (ars, acs) = if ta { (1, m as isize) } else { (k as isize, 1) };
            let (brs, bcs) = if tb { (1, k as isize) } else { (n as isize, 1) };
            bench.iter(|| {
                // SAFETY: strides describe the contiguous buffers allocated above.
                unsafe {
                    matrixmultiply::sgemm(
                        m,
                        k,
                        n,
                        1.0,
                        a.data().as_ptr(),
                        ars,
                        acs,
                        b.data().as_ptr(),
                        brs,
                        bcs,
                        0.0,
                        out.as_mut_ptr(),
                        n as isize,
                        1,
                    );
                }
                black_box(out[0])
            })
        });
    }
    group.finish();
}

/// Where a second thread starts to pay: the same products on 1 and 2 threads, every
/// product split. `GEMM_SPLIT_MIN_WORK` (`kernels/schedule.rs`) is set from these
/// figures and the bench harness (a split product reads operands another core wrote,
/// so whole training steps decide, not products alone).
fn parallel_cutoff(c: &mut Criterion) {
    use autodiff::internals::with_gemm_split_min_work;
    let mut group = c.benchmark_group("parallel_cutoff");
    group.sample_size(20);
    for &(m, k, n) in &[
        (100, 784, 16),
        (784, 100, 16),
        (128, 128, 128),
        (128, 784, 128),
        (256, 784, 256),
        (128, 784, 1024),
        (256, 784, 1024),
        (256, 1024, 1024),
    ] {
        let (a, b) = (randn(&[m, k], 1), randn(&[k, n], 2));
        let mut out = vec![0.0f32; m * n];
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        for threads in [1, 2] {
            group.bench_with_input(
                BenchmarkId::new(format!("{threads} thread(s)"), format!("{m}x{k}x{n}")),
                &(),
                |bench, _| {
                    autodiff::with_threads(threads, || {
                        with_gemm_split_min_work(0, || {
                            bench.iter(|| {
                                matmul_into(
                                    MatRef::row_major(a.data(), m, k),
                                    MatRef::row_major(b.data(), k, n),
                                    &mut out,
                                    false,
                                );
                                black_box(out[0])
                            })
                        })
                    });
                },
            );
        }
    }
    group.finish();
}

/// One step of network A written directly on the tape (the nn crate builds the same).
fn training_step(c: &mut Criterion) {
    let sizes = [784, 16, 16, 10];
    let mut params: Vec<Tensor<f32>> = Vec::new();
    for (i, w) in sizes.windows(2).enumerate() {
        params.push(randn(&[w[0], w[1]], 10 + i as u64).map(|v| v / (w[0] as f32).sqrt()));
        params.push(Tensor::zeros([w[1]]));
    }
    let x = Tensor::<f32>::rand_uniform([100, 784], 0.0, 1.0, &mut StdRng::seed_from_u64(3));
    let mut y = Tensor::<f32>::zeros([100, 10]);
    for r in 0..100 {
        y.data_mut()[r * 10 + r % 10] = 1.0;
    }
    let mut group = c.benchmark_group("training_step");
    group.throughput(Throughput::Elements(100));
    group.bench_function("784-16-16-10 sigmoid quadratic SGD, batch 100", |b| {
        b.iter(|| {
            let tape = Tape::<f32>::new();
            let vars: Vec<_> = params.iter().map(|p| tape.param(p.clone())).collect();
            let mut a = tape.constant(x.clone());
            for l in 0..3 {
                a = (a.matmul(vars[2 * l]) + vars[2 * l + 1]).sigmoid();
            }
            let cost = (a - tape.constant(y.clone())).square().sum() / 200.0;
            let grads = cost.backward();
            for (p, v) in params.iter_mut().zip(&vars) {
                for (w, g) in p.data_mut().iter_mut().zip(grads[*v].data()) {
                    *w -= 3.0 * g;
                }
            }
            black_box(cost.item())
        })
    });
    group.finish();
}

/// The layers of network D (LeNet-5) at batch 128, each forward alone and forward +
/// backward, so a change to one kernel shows in its own line.
fn lenet_layers(c: &mut Criterion) {
    use autodiff::Conv2dOptions;
    let mut group = c.benchmark_group("lenet_layers");
    group.sample_size(20);
    // (name, input, weight, padding)
    let convs = [
        ("conv1 1->6 5x5 pad 2", [128, 1, 28, 28], [6, 1, 5, 5], 2),
        ("conv2 6->16 5x5", [128, 6, 14, 14], [16, 6, 5, 5], 0),
    ];
    for (name, xs, ws, pad) in convs {
        let (x, w, b) = (randn(&xs, 1), randn(&ws, 2), randn(&[ws[0]], 3));
        let opts = Conv2dOptions::new(1, pad);
        group.bench_function(format!("{name} forward"), |bench| {
            bench.iter(|| {
                let tape = Tape::<f32>::new();
                let (x, w, b) = (
                    tape.constant(x.clone()),
                    tape.param(w.clone()),
                    tape.param(b.clone()),
                );
                black_box(x.conv2d_bias(w, b, opts).value().data()[0])
            })
        });
        // "weight gradients": the input is data, as for a first layer in training.
        for (what, input_grad) in [
            ("forward+weight gradients", false),
            ("forward+backward", true),
        ] {
            group.bench_function(format!("{name} {what}"), |bench| {
                bench.iter(|| {
                    let tape = Tape::<f32>::new();
                    let xv = if input_grad {
                        tape.param(x.clone())
                    } else {
                        tape.constant(x.clone())
                    };
                    let (w, b) = (tape.param(w.clone()), tape.param(b.clone()));
                    let grads = xv.conv2d_bias(w, b, opts).sum().backward();
                    black_box(grads[w].data()[0])
                })
            });
        }
    }
    let pools = [
        ("pool1 2x2", [128, 6, 28, 28]),
        ("pool2 2x2", [128, 16, 10, 10]),
    ];
    for (name, xs) in pools {
        let x = randn(&xs, 4);
        group.bench_function(format!("{name} forward+backward"), |bench| {
            bench.iter(|| {
                let tape = Tape::<f32>::new();
                let xv = tape.param(x.clone());
                let grads = xv.max_pool2d(2, 2, 0).sum().backward();
                black_box(grads[xv].data()[0])
            })
        });
    }
    group.finish();
}

/// One Hessian-vector product of network B's cost (784-128-128-10, ReLU, cross-entropy)
/// at batch 128, forward pass included, on a synthetic batch: what `bench --hvp` times
/// on MNIST against PyTorch (bench/transform.sh hvp).
fn hvp_network_b(c: &mut Criterion) {
    let sizes = [784, 128, 128, 10];
    let mut params: Vec<Tensor<f32>> = Vec::new();
    for (i, w) in sizes.windows(2).enumerate() {
        let scale = (2.0 / w[0] as f32).sqrt(); // He
        params.push(randn(&[w[0], w[1]], 10 + i as u64).map(|v| v * scale));
        params.push(Tensor::zeros([w[1]]));
    }
    let v: Vec<Tensor<f32>> = (0..params.len())
        .map(|i| randn(params[i].shape(), 20 + i as u64))
        .collect();
    let x = Tensor::<f32>::rand_uniform([128, 784], 0.0, 1.0, &mut StdRng::seed_from_u64(3));
    let labels: Vec<usize> = (0..128).map(|r| r % 10).collect();
    let mut group = c.benchmark_group("hvp");
    group.sample_size(20);
    group.bench_function("network B 784-128-128-10 cross-entropy, batch 128", |b| {
        b.iter(|| {
            let hv = autodiff::func::hvp(
                |tape, p| {
                    let mut a = tape.constant(&x);
                    for l in 0..3 {
                        a = a.matmul(p[2 * l]) + p[2 * l + 1];
                        if l < 2 {
                            a = a.relu();
                        }
                    }
                    a.cross_entropy(&labels)
                },
                &params,
                &v,
            );
            black_box(hv[0].data()[0])
        })
    });
    group.finish();
}

/// Every parameter's gradient for each example of a batch of 128 under network B's
/// cross-entropy (784-128-128-10, ReLU), forward pass included, on a synthetic batch:
/// one batched pass against a loop of single-example backward passes (both
/// `func::per_sample`); what `bench --per-sample` times on MNIST against PyTorch's
/// `torch.func.vmap(grad)` (bench/transform.sh per-sample).
fn per_sample_network_b(c: &mut Criterion) {
    use autodiff::func::{per_sample, PerSamplePath};
    use autodiff::{Tape, Var};
    let sizes = [784, 128, 128, 10];
    let mut params: Vec<Tensor<f32>> = Vec::new();
    for (i, w) in sizes.windows(2).enumerate() {
        let scale = (2.0 / w[0] as f32).sqrt(); // He
        params.push(randn(&[w[0], w[1]], 10 + i as u64).map(|v| v * scale));
        params.push(Tensor::zeros([w[1]]));
    }
    let x = Tensor::<f32>::rand_uniform([128, 784], 0.0, 1.0, &mut StdRng::seed_from_u64(3));
    let mut y = Tensor::<f32>::zeros([128, 10]);
    for r in 0..128 {
        y.data_mut()[r * 10 + r % 10] = 1.0;
    }
    fn losses<'t>(_: &'t Tape<f32>, p: &[Var<'t, f32>], b: &[Var<'t, f32>]) -> Var<'t, f32> {
        let a = b[0].linear_relu(p[0], p[1]).linear_relu(p[2], p[3]);
        -(a.linear(p[4], p[5]).log_softmax(1) * b[1]).sum_axes(&[1], false)
    }
    let batch = [x, y];
    let mut group = c.benchmark_group("per_sample");
    group.sample_size(20);
    for (name, path) in [
        ("batched", PerSamplePath::Batched),
        ("loop of single-example passes", PerSamplePath::Loop),
    ] {
        group.bench_function(format!("network B, batch 128, {name}"), |b| {
            b.iter(|| black_box(per_sample(losses, &params, &batch, path).grads.len()))
        });
    }
    group.finish();
}

/// LeNet-5's forward pass at batch 128 (parameters recorded as `param`, as in
/// training) against forward mode along a tangent for every parameter (`func::jvp`):
/// a tangent rule per op should cost at most about three forward passes in all.
fn jvp_lenet(c: &mut Criterion) {
    use autodiff::{Conv2dOptions, Var};
    let shapes: [&[usize]; 10] = [
        &[6, 1, 5, 5],
        &[6],
        &[16, 6, 5, 5],
        &[16],
        &[400, 120],
        &[120],
        &[120, 84],
        &[84],
        &[84, 10],
        &[10],
    ];
    let params: Vec<Tensor<f32>> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| randn(s, 30 + i as u64).map(|v| v * 0.2))
        .collect();
    let tangents: Vec<Tensor<f32>> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| randn(s, 50 + i as u64))
        .collect();
    let x = Tensor::<f32>::rand_uniform([128, 1, 28, 28], 0.0, 1.0, &mut StdRng::seed_from_u64(4));
    fn lenet<'t>(x: Var<'t, f32>, p: &[Var<'t, f32>]) -> Var<'t, f32> {
        let a = x
            .conv2d_bias(p[0], p[1], Conv2dOptions::new(1, 2))
            .relu()
            .max_pool2d(2, 2, 0);
        let a = a
            .conv2d_bias(p[2], p[3], Conv2dOptions::new(1, 0))
            .relu()
            .max_pool2d(2, 2, 0)
            .flatten();
        let a = a.linear_relu(p[4], p[5]).linear_relu(p[6], p[7]);
        a.linear(p[8], p[9])
    }
    let mut group = c.benchmark_group("jvp_lenet");
    group.sample_size(20);
    group.bench_function("forward, batch 128", |b| {
        b.iter(|| {
            let tape = Tape::<f32>::new();
            let p: Vec<_> = params.iter().map(|t| tape.param(t)).collect();
            black_box(lenet(tape.constant(&x), &p).value().data()[0])
        })
    });
    group.bench_function("jvp along every parameter, batch 128", |b| {
        b.iter(|| {
            let (_, t) =
                autodiff::func::jvp(|tape, p| lenet(tape.constant(&x), p), &params, &tangents);
            black_box(t.data()[0])
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    matmul,
    parallel_cutoff,
    training_step,
    lenet_layers,
    hvp_network_b,
    per_sample_network_b,
    jvp_lenet
);
criterion_main!(benches);

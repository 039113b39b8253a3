//! Scalar tape: record and backpropagate a 1M-node chain (nodes/s; bytes/node printed).

use autodiff::scalar::Tape;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

const NODES: usize = 1_000_000;

fn chain(c: &mut Criterion) {
    println!(
        "scalar tape: {} bytes per node (+8 for its adjoint during backward)",
        Tape::BYTES_PER_NODE
    );
    let mut group = c.benchmark_group("scalar_tape");
    group.throughput(Throughput::Elements(NODES as u64));
    group.sample_size(20);
    group.bench_function("record+backward 1M-node chain", |b| {
        b.iter(|| {
            let tape = Tape::with_capacity(NODES + 1);
            let x = tape.var(0.5);
            let mut y = x;
            // Five nodes per iteration, the same expression as the micrograd baseline
            // in the closing note (micrograd has relu, not tanh).
            for i in 0..NODES / 5 {
                // Partials multiply to ~1 along the chain, so no adjoint underflows to
                // zero and the backward sweep does real work on every node.
                y = y * 0.9999999 + x;
                y = (y * 1.0000001).relu();
                y = y + (i as f64) * 1e-9;
            }
            black_box(y.backward()[x])
        })
    });
    group.finish();
}

criterion_group!(benches, chain);
criterion_main!(benches);

//! Each network's arithmetic as counted on the tape (`Model::flops_per_example`)
//! against the derivation of docs/networks.md ("Arithmetic: flops per example"):
//! `2 Σ P` forward and `2 (2 Σ P - P_1)` backward for layers of `P_i` multiply-adds.

use nn::Network;

/// Forward and backward flops of layers with these multiply-adds per example, the
/// first layer's input gradient not computed.
fn derived(layers: &[u64]) -> (u64, u64) {
    let total: u64 = layers.iter().sum();
    (2 * total, 2 * (2 * total - layers[0]))
}

#[test]
fn every_network_counts_the_flops_its_layers_derive() {
    let cases: [(Network, &[u64], u64); 5] = [
        (Network::A, &[784 * 16, 16 * 16, 16 * 10], 52_672),
        (Network::B, &[784 * 128, 128 * 128, 128 * 10], 507_392),
        (Network::C, &[784 * 1024, 1024 * 1024, 1024 * 10], 9_564_160),
        (
            Network::D,
            &[
                28 * 28 * 6 * 25,
                10 * 10 * 16 * 150,
                400 * 120,
                120 * 84,
                84 * 10,
            ],
            2_263_920,
        ),
        (
            Network::E,
            &[26 * 26 * 32 * 9, 24 * 24 * 64 * 288, 9216 * 128, 128 * 10],
            71_565_312,
        ),
    ];
    for (network, layers, total) in cases {
        let flops = network.recipe().model(1).flops_per_example();
        let (forward, backward) = derived(layers);
        assert_eq!(
            (flops.forward, flops.backward),
            (forward, backward),
            "{network}"
        );
        assert_eq!(flops.total(), total, "{network}: the table's total");
    }
}

//! "Learn this example" on a confident mistake, without a browser: a 4 drawn on the
//! page's canvas, sent to the draw server's `/learn` with the label 9, for a network
//! whose output 9 is saturated (σ'(z) far below its maximum 0.25). The server's step
//! report must print σ'(z), the output's change with its digits (`-2.10e-5`, not two
//! equal numbers and a direction), the cost's change, and say in a sentence that the
//! output barely moves because σ'(z) is tiny and that cross-entropy (network a96) does
//! not have this; on an output that is not saturated it says nothing of the kind.

use backprop::digit::{preprocess, CANVAS};
use backprop::draw::{learn_step, signed_three_digits, three_digits, DrawServer, SATURATED};
use nn::{Model, Network};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A 4 in three pen strokes, the page's pen width (22 pixels), as the canvas's bytes
/// (0 white, 255 ink).
fn drawn_four() -> Vec<u8> {
    let strokes = [
        ((110.0, 50.0), (75.0, 160.0)),
        ((75.0, 160.0), (200.0, 160.0)),
        ((170.0, 50.0), (165.0, 240.0)),
    ];
    let mut canvas = vec![0u8; CANVAS * CANVAS];
    for (i, byte) in canvas.iter_mut().enumerate() {
        let p = ((i % CANVAS) as f32 + 0.5, (i / CANVAS) as f32 + 0.5);
        let near = strokes.iter().any(|&(a, b)| distance(p, a, b) <= 11.0);
        if near {
            *byte = 255;
        }
    }
    canvas
}

/// The distance from `p` to the segment `a`-`b`.
fn distance(p: (f32, f32), a: (f32, f32), b: (f32, f32)) -> f32 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let t = (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / (dx * dx + dy * dy)).clamp(0.0, 1.0);
    ((p.0 - a.0 - t * dx).powi(2) + (p.1 - a.1 - t * dy).powi(2)).sqrt()
}

/// Network A (untrained) made confident: output 4 high (z about +2.5, σ'(z) about 0.07),
/// output 9 saturated near 0 (z about -8, σ'(z) about 3e-4).
fn confident_model() -> Model<f32> {
    let mut model = Network::A.recipe().model(1);
    let bias = model
        .params_mut()
        .get_mut("layers.2.bias")
        .expect("network A's output bias");
    bias.data_mut()[4] = 2.5;
    bias.data_mut()[9] = -8.0;
    model
}

/// One HTTP POST to the server: its status code and body.
fn post(url: &str, path: &str, body: &[u8]) -> (u16, String) {
    let host = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut stream = TcpStream::connect(&host).expect("connect to the draw server");
    let head = format!(
        "POST {path} HTTP/1.0\r\nHost: {host}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("send the head");
    stream.write_all(body).expect("send the canvas");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("read the reply");
    let status = reply
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let body = reply
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn learning_a_saturated_output_says_it_barely_moves_because_its_slope_is_tiny() {
    let canvas = drawn_four();
    let server = Arc::new(DrawServer::bind(0, confident_model()).expect("bind"));
    let url = server.url();
    let stop = Arc::new(AtomicBool::new(false));
    let serving = {
        let (server, stop) = (Arc::clone(&server), Arc::clone(&stop));
        std::thread::spawn(move || server.serve_until(&stop))
    };
    let before = server.params();
    let (status, body) = post(&url, "/learn?label=9&lr=3", &canvas);
    let (bad_label, label_message) = post(&url, "/learn?label=12&lr=3", &canvas);
    let (bad_lr, lr_message) = post(&url, "/learn?label=9&lr=fast", &canvas);
    let (short, short_message) = post(&url, "/learn?label=9&lr=3", &canvas[..100]);
    stop.store(true, Ordering::Relaxed);
    let _ = serving.join();

    assert_eq!(status, 200, "{body}");
    let reply: Value = serde_json::from_str(&body).expect("the server's JSON");
    assert_eq!(reply["prediction"], 4, "the drawn 4 reads as a 4: {body}");
    let step = &reply["step"];
    let nine = &step["outputs"][9];
    let slope = nine["slope"].as_f64().expect("output 9's σ'(z)");
    assert!(slope < f64::from(SATURATED), "σ'(z) = {slope}");
    let a = nine["before"].as_f64().expect("output 9 before");
    assert!(
        (slope - a * (1.0 - a)).abs() <= 1e-3 * slope,
        "the tape's σ'(z) {slope} against a(1 - a) = {}",
        a * (1.0 - a)
    );
    assert_eq!(nine["slope_text"], three_digits(slope).as_str());
    assert_eq!(nine["stuck"], true);
    // The network view marks it too (after the step, still stuck), and no other output.
    let stuck: Vec<bool> = (0..10).map(|d| reply["stuck"][d] == true).collect();
    assert_eq!(stuck, (0..10).map(|d| d == 9).collect::<Vec<_>>());

    // The change itself, with its digits.
    let change = nine["after"].as_f64().expect("after") - a;
    let printed = nine["change"].as_str().expect("the change as printed");
    assert_eq!(printed, signed_three_digits(change));
    assert!(
        printed.contains('e'),
        "a change of {change:e} needs an exponent: {printed}"
    );
    let cost_change = step["cost_after"].as_f64().expect("cost after")
        - step["cost_before"].as_f64().expect("cost before");
    assert_eq!(
        step["cost_change"].as_str(),
        Some(signed_three_digits(cost_change).as_str())
    );
    assert!(cost_change < 0.0, "the step lowers the cost: {cost_change}");

    // The sentence.
    let why: Vec<&str> = step["explanation"]
        .as_array()
        .expect("the explanation")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let why = why.join(" ");
    assert!(
        why.contains(&format!(
            "Output 9 barely moves because σ'(z) is tiny ({}",
            three_digits(slope)
        )),
        "{why}"
    );
    assert!(
        why.contains("cross-entropy (network a96) does not have this problem"),
        "{why}"
    );
    for d in 0..9 {
        assert!(!why.contains(&format!("Output {d} ")), "{why}");
    }
    assert!(
        server.params() != before,
        "the step changed the served model"
    );

    // Bad requests get a clear refusal, and leave the model alone.
    assert_eq!(
        (bad_label, label_message.as_str()),
        (400, "give ?label= a digit below 10")
    );
    assert_eq!(
        (bad_lr, lr_message.as_str()),
        (400, "give ?lr= a learning rate in (0, 1000]")
    );
    assert_eq!(short, 400);
    assert!(short_message.contains("canvas bytes"), "{short_message}");
}

#[test]
fn an_output_that_is_not_saturated_gets_no_such_sentence() {
    let ink: Vec<f32> = drawn_four().iter().map(|&b| f32::from(b) / 255.0).collect();
    let input = preprocess(&ink, CANVAS, CANVAS);
    let mut model = confident_model();
    // Told it is a 4, which it already says: output 4 is near its target, output 9
    // near its own, and the untrained rest sit mid-slope.
    let report = learn_step(&mut model, &input, 4, 3.0).expect("a step");
    assert!(report.outputs.iter().all(|o| !o.stuck()));
    assert_eq!(report.explanation(), Vec::<String>::new());
    assert!(report.outputs[4].change() > 0.0, "output 4 rises");
}

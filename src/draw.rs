//! A local page where a person draws a digit and watches the network's outputs and
//! hidden activations update as they draw. Served on 127.0.0.1 with `tiny_http`; the
//! page is one self-contained HTML file (no external assets).

use autodiff::{Tape, Tensor};
use nn::{Model, NnError};
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The page, inlined at build time.
pub const PAGE: &str = include_str!("draw.html");

/// A bound server with the model it answers for.
pub struct DrawServer {
    server: tiny_http::Server,
    model: Model<f32>,
}

/// What the network does with one drawing.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// The most likely digit.
    pub digit: usize,
    /// The output layer's activations.
    pub outputs: Vec<f32>,
    /// Each hidden layer's activations.
    pub hidden: Vec<Vec<f32>>,
}

/// Runs `model` on one 28x28 image (784 values in [0, 1]).
pub fn predict(model: &Model<f32>, pixels: &[f32]) -> Prediction {
    let tape = Tape::new();
    let bound = model.params().bind_constants(&tape);
    let x = tape.constant(Tensor::from_vec(pixels.to_vec(), [1, pixels.len()]));
    let layers: Vec<Vec<f32>> = model
        .activations(&bound, x)
        .iter()
        .map(|a| a.value().into_vec())
        .collect();
    let (outputs, hidden) = layers
        .split_last()
        .map(|(o, h)| (o.clone(), h.to_vec()))
        .unwrap_or_default();
    let digit = nn::metrics::argmax_rows(&Tensor::from_vec(outputs.clone(), [1, outputs.len()]))[0];
    Prediction {
        digit,
        outputs,
        hidden,
    }
}

/// Parses the page's request body: comma-separated pixel values.
pub fn parse_pixels(body: &str, expected: usize) -> Result<Vec<f32>, String> {
    let pixels: Vec<f32> = body
        .split(',')
        .map(|t| {
            t.trim()
                .parse::<f32>()
                .map_err(|_| format!("{t:?} is not a number"))
        })
        .collect::<Result<_, _>>()?;
    if pixels.len() != expected {
        return Err(format!(
            "expected {expected} pixel values, got {}",
            pixels.len()
        ));
    }
    if let Some(bad) = pixels.iter().find(|p| !p.is_finite()) {
        return Err(format!("pixel value {bad} is not finite"));
    }
    Ok(pixels.into_iter().map(|p| p.clamp(0.0, 1.0)).collect())
}

fn json_list(values: &[f32]) -> String {
    let items: Vec<String> = values.iter().map(|v| format!("{v:.6}")).collect();
    format!("[{}]", items.join(","))
}

impl Prediction {
    /// The JSON the page reads.
    pub fn to_json(&self) -> String {
        let hidden: Vec<String> = self.hidden.iter().map(|h| json_list(h)).collect();
        format!(
            "{{\"prediction\":{},\"outputs\":{},\"hidden\":[{}]}}",
            self.digit,
            json_list(&self.outputs),
            hidden.join(",")
        )
    }
}

impl DrawServer {
    /// Binds `127.0.0.1:port` (0 picks a free port).
    pub fn bind(port: u16, model: Model<f32>) -> Result<Self, NnError> {
        let server = tiny_http::Server::http(("127.0.0.1", port))
            .map_err(|e| NnError::Data(format!("cannot listen on 127.0.0.1:{port}: {e}")))?;
        Ok(DrawServer { server, model })
    }

    /// The address it listens on.
    pub fn url(&self) -> String {
        match self.server.server_addr().to_ip() {
            Some(addr) => format!("http://{addr}/"),
            None => "http://127.0.0.1/".into(),
        }
    }

    /// Answers requests until `stop` becomes true.
    pub fn serve_until(&self, stop: &AtomicBool) {
        let inputs = self.model.sizes()[0];
        while !stop.load(Ordering::Relaxed) {
            let mut request = match self.server.recv_timeout(Duration::from_millis(100)) {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(_) => break,
            };
            let response = match (request.method(), request.url()) {
                (tiny_http::Method::Get, "/") => tiny_http::Response::from_string(PAGE)
                    .with_header(header("text/html; charset=utf-8")),
                (tiny_http::Method::Post, "/predict") => {
                    let mut body = String::new();
                    let read = request
                        .as_reader()
                        .take(64 * 1024)
                        .read_to_string(&mut body);
                    match read
                        .map_err(|e| e.to_string())
                        .and_then(|_| parse_pixels(&body, inputs))
                    {
                        Ok(pixels) => tiny_http::Response::from_string(
                            predict(&self.model, &pixels).to_json(),
                        )
                        .with_header(header("application/json")),
                        Err(message) => {
                            tiny_http::Response::from_string(message).with_status_code(400)
                        }
                    }
                }
                _ => tiny_http::Response::from_string("not found").with_status_code(404),
            };
            let _ = request.respond(response);
        }
    }
}

/// A Content-Type header; the values are constants, so parsing cannot fail.
fn header(content_type: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes("Content-Type", content_type).expect("a constant, valid header")
}

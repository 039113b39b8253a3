//! A local page where a person draws a digit, watches the network's outputs and hidden
//! activations update as they draw, then says which digit it is and sees what
//! backprop wants: every neuron's desired nudge `-dC/da`, one neuron's three levers
//! (bias, weights, the layer before), one gradient step on that example, and the same
//! nudges averaged over a minibatch. Every number comes from the engine's tape, here;
//! the page only draws them. Served on 127.0.0.1 with `tiny_http`; the page is one
//! self-contained HTML file (no external assets).
//!
//! The canvas reaches the network through [`crate::digit::preprocess`], the way
//! MNIST's digits were made. Requests carry the whole drawing and label, so the server
//! keeps no state across visitors except the model, which "learn this example"
//! changes and "reset" restores.

use crate::digit::{parse_canvas, preprocess, CANVAS};
pub use crate::notation::{signed_three_digits, three_digits};
use crate::nudges::json_exact;
pub use crate::nudges::{learn, nudges, Nudges};
pub use crate::step::{
    barely_moves, learn_step, output_slopes, OutputStep, StepReport, FAR, SATURATED,
};
use autodiff::{Tape, Tensor};
use nn::{Dataset, Model, NnError, ParamStore};
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// The page, inlined at build time.
pub const PAGE: &str = include_str!("draw.html");

/// A bound server with the model it answers for.
pub struct DrawServer {
    server: tiny_http::Server,
    model: Mutex<Model<f32>>,
    original: ParamStore<f32>,
    train: Option<Dataset>,
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
    let digit = nn::argmax_rows(&Tensor::from_vec(outputs.clone(), [1, outputs.len()]))[0];
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

/// The value of `key` in the query string of `url` (`/path?a=1&b=2`).
fn query<'u>(url: &'u str, key: &str) -> Option<&'u str> {
    url.split_once('?')?
        .1
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

fn label_of(url: &str, classes: usize) -> Result<usize, String> {
    query(url, "label")
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&d| d < classes)
        .ok_or_else(|| format!("give ?label= a digit below {classes}"))
}

fn lr_of(url: &str) -> Result<f64, String> {
    query(url, "lr")
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|lr| lr.is_finite() && *lr > 0.0 && *lr <= 1000.0)
        .ok_or_else(|| "give ?lr= a learning rate in (0, 1000]".into())
}

/// The JSON for one example: the network's reading and, with a label, its nudges,
/// each output's σ'(z) (`slopes`, null where a nudge is exactly 0) and whether a step
/// can barely move it (`stuck`, [`barely_moves`]).
fn example_json(model: &Model<f32>, input: &[f32], label: Option<usize>) -> String {
    let p = predict(model, input);
    let nudges = label.map(|l| nudges(model, input, &[l]));
    let (slopes, stuck) = nudges.as_ref().map_or(("null".into(), "null".into()), |n| {
        let slopes = output_slopes(n);
        let numbers: Vec<String> = slopes
            .iter()
            .map(|s| {
                s.filter(|s| s.is_finite())
                    .map_or("null".into(), |s| format!("{s:e}"))
            })
            .collect();
        let stuck: Vec<String> = n
            .nudges
            .last()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .zip(&slopes)
            .map(|(&nudge, &slope)| barely_moves(nudge, slope).to_string())
            .collect();
        (
            format!("[{}]", numbers.join(",")),
            format!("[{}]", stuck.join(",")),
        )
    });
    format!(
        "{{\"prediction\":{},\"outputs\":{},\"hidden\":[{}],\"input\":{},\"label\":{},\"nudges\":{},\"slopes\":{},\"stuck\":{}}}",
        p.digit,
        json_exact(&p.outputs),
        p.hidden.iter().map(|h| json_exact(h)).collect::<Vec<_>>().join(","),
        json_exact(input),
        label.map_or("null".into(), |l| l.to_string()),
        nudges.map_or("null".into(), |n| n.to_json()),
        slopes,
        stuck
    )
}

impl DrawServer {
    /// Binds `127.0.0.1:port` (0 picks a free port).
    pub fn bind(port: u16, model: Model<f32>) -> Result<Self, NnError> {
        let server = tiny_http::Server::http(("127.0.0.1", port))
            .map_err(|e| NnError::Data(format!("cannot listen on 127.0.0.1:{port}: {e}")))?;
        Ok(DrawServer {
            server,
            original: model.params().clone(),
            model: Mutex::new(model),
            train: None,
        })
    }

    /// Training examples for the minibatch view (without them the page says so).
    pub fn with_training_data(mut self, train: Dataset) -> Self {
        self.train = Some(train);
        self
    }

    /// The address it listens on.
    pub fn url(&self) -> String {
        match self.server.server_addr().to_ip() {
            Some(addr) => format!("http://{addr}/"),
            None => "http://127.0.0.1/".into(),
        }
    }

    /// A copy of the served model's parameters (they change when a person presses
    /// "learn this example").
    pub fn params(&self) -> ParamStore<f32> {
        self.lock().params().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Model<f32>> {
        // A panic mid-request leaves the model as whole tensors: still usable.
        self.model.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Answers one request: the JSON body, or a message and a status code.
    fn answer(
        &self,
        method: &tiny_http::Method,
        url: &str,
        body: &[u8],
    ) -> Result<String, (u16, String)> {
        let bad = |m: String| (400, m);
        let path = url.split('?').next().unwrap_or("");
        let input = || -> Result<Vec<f32>, (u16, String)> {
            Ok(preprocess(
                &parse_canvas(body).map_err(bad)?,
                CANVAS,
                CANVAS,
            ))
        };
        let classes = self.lock().outputs();
        match (method, path) {
            (tiny_http::Method::Post, "/predict") => {
                let input = input()?;
                Ok(example_json(&self.lock(), &input, None))
            }
            (tiny_http::Method::Post, "/nudges") => {
                let label = label_of(url, classes).map_err(bad)?;
                let input = input()?;
                Ok(example_json(&self.lock(), &input, Some(label)))
            }
            (tiny_http::Method::Post, "/learn") => {
                let label = label_of(url, classes).map_err(bad)?;
                let lr = lr_of(url).map_err(bad)?;
                let input = input()?;
                let mut model = self.lock();
                let before = predict(&model, &input).outputs;
                let step =
                    learn_step(&mut model, &input, label, lr).map_err(|e| (500, e.to_string()))?;
                let after = example_json(&model, &input, Some(label));
                Ok(format!(
                    "{{\"before\":{},\"step\":{},{}",
                    json_exact(&before),
                    step.to_json(),
                    &after[1..]
                ))
            }
            (tiny_http::Method::Post, "/reset") => {
                let mut model = self.lock();
                *model.params_mut() = self.original.clone();
                Ok("{\"reset\":true}".into())
            }
            (tiny_http::Method::Post, "/minibatch") => {
                let label = label_of(url, classes).map_err(bad)?;
                let lr = lr_of(url).map_err(bad)?;
                let input = input()?;
                let train = self.train.as_ref().ok_or_else(|| {
                    (
                        404,
                        "no training data: start the server with MNIST available".to_string(),
                    )
                })?;
                Ok(crate::walk::minibatch_json(
                    &mut self.lock(),
                    &input,
                    label,
                    train,
                    lr,
                ))
            }
            _ => Err((404, "not found".into())),
        }
    }

    /// Answers requests until `stop` becomes true.
    pub fn serve_until(&self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            let mut request = match self.server.recv_timeout(Duration::from_millis(100)) {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(_) => break,
            };
            let response = if *request.method() == tiny_http::Method::Get && request.url() == "/" {
                tiny_http::Response::from_string(PAGE)
                    .with_header(header("text/html; charset=utf-8"))
            } else {
                let mut body = Vec::new();
                let read = request
                    .as_reader()
                    .take(2 * (CANVAS * CANVAS) as u64)
                    .read_to_end(&mut body);
                let answer = match read {
                    Ok(_) => self.answer(request.method(), request.url(), &body),
                    Err(e) => Err((400, e.to_string())),
                };
                match answer {
                    Ok(json) => tiny_http::Response::from_string(json)
                        .with_header(header("application/json")),
                    Err((code, message)) => {
                        tiny_http::Response::from_string(message).with_status_code(code)
                    }
                }
            };
            let _ = request.respond(response);
        }
    }
}

/// A Content-Type header; the values are constants, so parsing cannot fail.
fn header(content_type: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes("Content-Type", content_type).expect("a constant, valid header")
}

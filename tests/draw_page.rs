//! End to end: the draw page in headless Chromium, driven over WebDriver
//! (chromedriver): draw a stroke, read the prediction and the hidden activations, take
//! a screenshot. Needs Debian's `chromium` and `chromium-driver`, which `.ci/run`
//! installs; without them the test fails under CI and is skipped with a notice
//! elsewhere.

use backprop::draw::DrawServer;
use base64::Engine;
use nn::{Mnist, Network, Trainer};
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    child: Child,
    base: String,
    agent: ureq::Agent,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    fn start() -> Option<Driver> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let driver = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            agent,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if driver
                .agent
                .get(format!("{}/status", driver.base))
                .call()
                .is_ok()
            {
                return Some(driver);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    fn send(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let response = match (method, body) {
            ("POST", body) => self
                .agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(body.unwrap_or(json!({})).to_string()),
            ("DELETE", _) => self.agent.delete(&url).call(),
            _ => self.agent.get(&url).call(),
        };
        let mut response = response.unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let text = response
            .body_mut()
            .read_to_string()
            .expect("WebDriver reply");
        serde_json::from_str(&text).expect("WebDriver JSON")
    }
}

fn browser_available() -> bool {
    ["chromium", "chromedriver"].iter().all(|b| {
        Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

#[test]
fn drawing_a_stroke_updates_the_prediction_and_hidden_activations() {
    if !browser_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install chromium and chromium-driver (see .ci/run)"
        );
        eprintln!("skipped: chromium and chromedriver are not installed (apt-get install chromium chromium-driver)");
        return;
    }
    // A network A trained for two epochs, served on a free port.
    let data = Mnist::load(None).unwrap_or_else(|e| panic!("MNIST is needed: {e}"));
    let mut trainer = Trainer::new(Network::A.recipe(), 1);
    for _ in 0..2 {
        trainer
            .train_epoch(&data.train, |_, _, _| {})
            .expect("training");
    }
    let server = Arc::new(DrawServer::bind(0, trainer.model).expect("bind"));
    let url = server.url();
    let stop = Arc::new(AtomicBool::new(false));
    let serving = {
        let (server, stop) = (Arc::clone(&server), Arc::clone(&stop));
        std::thread::spawn(move || server.serve_until(&stop))
    };

    let driver = Driver::start().expect("chromedriver did not start");
    let profile = tempfile::tempdir().expect("profile dir");
    let args = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1000,700",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--user-data-dir={}", profile.path().display())])
    .collect::<Vec<_>>();
    let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}}}});
    let session = driver.send("POST", "/session", Some(caps));
    let id = session["value"]["sessionId"]
        .as_str()
        .expect("session id")
        .to_string();
    let s = format!("/session/{id}");
    driver.send("POST", &format!("{s}/url"), Some(json!({"url": url})));
    let find = |css: &str| -> String {
        let found = driver.send(
            "POST",
            &format!("{s}/element"),
            Some(json!({"using": "css selector", "value": css})),
        );
        found["value"][ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_string()
    };
    let pad = find("#pad");

    // A vertical stroke down the middle: a "1".
    let mut moves = vec![
        json!({"type": "pointerMove", "duration": 0, "origin": {ELEMENT: pad}, "x": 0, "y": -90}),
        json!({"type": "pointerDown", "button": 0}),
    ];
    for k in 1..=12 {
        moves.push(json!({"type": "pointerMove", "duration": 20, "origin": {ELEMENT: pad}, "x": 0, "y": -90 + 15 * k}));
    }
    moves.push(json!({"type": "pointerUp", "button": 0}));
    driver.send("POST", &format!("{s}/actions"), Some(json!({"actions": [{"type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"}, "actions": moves}]})));

    // The page answers asynchronously: wait for the prediction to appear.
    let prediction = find("#prediction");
    let deadline = Instant::now() + Duration::from_secs(15);
    let text = loop {
        let t = driver.send("GET", &format!("{s}/element/{prediction}/text"), None)["value"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if !t.is_empty() || Instant::now() > deadline {
            break t;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let cells = driver.send(
        "POST",
        &format!("{s}/elements"),
        Some(json!({"using": "css selector", "value": ".cell"})),
    );
    let bars = driver.send(
        "POST",
        &format!("{s}/elements"),
        Some(json!({"using": "css selector", "value": ".bar"})),
    );
    let shot = driver.send("GET", &format!("{s}/screenshot"), None);
    driver.send("DELETE", &s, None);
    stop.store(true, Ordering::Relaxed);
    let _ = serving.join();

    assert_eq!(text, "1", "a vertical stroke should read as a 1");
    assert_eq!(
        cells["value"].as_array().map(Vec::len),
        Some(32),
        "16 + 16 hidden activations shown"
    );
    assert_eq!(
        bars["value"].as_array().map(Vec::len),
        Some(10),
        "10 output bars shown"
    );
    let png_bytes = base64::engine::general_purpose::STANDARD
        .decode(shot["value"].as_str().expect("screenshot"))
        .expect("base64");
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("draw-page.png");
    std::fs::write(&path, &png_bytes).expect("write screenshot");
    let reader = png::Decoder::new(std::io::Cursor::new(&png_bytes))
        .read_info()
        .expect("a PNG screenshot");
    assert!(
        reader.info().width >= 800,
        "screenshot width {}",
        reader.info().width
    );
    eprintln!("screenshot written to {}", path.display());
}

//! A real browser for the portal tests: Debian's headless Chromium driven through
//! chromedriver (WebDriver, `fantoccini`), plus `zbarimg` to read QR codes from
//! screenshots and `oathtool` to compute TOTP codes.
//!
//! The helpers panic with a message naming what failed (they are test helpers). Element
//! look-ups (`fill`, `click`, `text`) wait up to [`ELEMENT_WAIT`] for the element; after an
//! action that navigates, call [`Browser::wait_for_path`] before reading the new page.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

use crate::cloud::{free_port, port_open};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const OATHTOOL: &str = "/usr/bin/oathtool";
const ZBARIMG: &str = "/usr/bin/zbarimg";

/// How long element look-ups wait for the element to appear.
pub const ELEMENT_WAIT: Duration = Duration::from_secs(5);

/// Install chromium, chromedriver, oathtool and zbarimg (Debian packages chromium,
/// chromium-driver, oathtool, zbar-tools) when one of them is missing.
pub fn ensure_tools() {
    if [CHROMIUM, CHROMEDRIVER, OATHTOOL, ZBARIMG]
        .iter()
        .all(|p| Path::new(p).is_file())
    {
        return;
    }
    let install = || {
        Command::new("apt-get")
            .args([
                "install",
                "-y",
                "-qq",
                "chromium",
                "chromium-driver",
                "oathtool",
                "zbar-tools",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    if !install() {
        // stale package lists are the usual reason
        let _ = Command::new("apt-get")
            .args(["update", "-qq"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status();
        assert!(
            install(),
            "the browser tests need chromium, chromedriver, oathtool and zbarimg: \
             `apt-get install chromium chromium-driver oathtool zbar-tools` failed"
        );
    }
}

/// A headless Chromium session. Dropping it kills chromedriver and the browser; `close`
/// ends the WebDriver session first.
pub struct Browser {
    pub client: Client,
    driver: Child,
    profile: PathBuf,
}

/// SIGKILL the process group led by `child` (chromedriver and the Chromium it started).
fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-9", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.wait();
}

impl Browser {
    /// Start chromedriver on a free port (its log in `profile_dir/chromedriver.log`) and a
    /// headless Chromium with its profile in `profile_dir/chrome`, in Japanese.
    pub async fn start(profile_dir: &Path) -> Browser {
        ensure_tools();
        std::fs::create_dir_all(profile_dir)
            .unwrap_or_else(|e| panic!("creating {}: {e}", profile_dir.display()));
        let log_path = profile_dir.join("chromedriver.log");
        let log = std::fs::File::create(&log_path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", log_path.display()));
        let log_err = log.try_clone().expect("duplicating the log file handle");
        let port = free_port();
        let mut driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {CHROMEDRIVER}: {e}"));
        let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
        let t0 = Instant::now();
        while !port_open(port) {
            if let Ok(Some(st)) = driver.try_wait() {
                panic!("chromedriver exited ({st}):\n{}", read_log());
            }
            if t0.elapsed() > Duration::from_secs(20) {
                kill_group(&mut driver);
                panic!("chromedriver did not listen on {port}:\n{}", read_log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let user_data = profile_dir.join("chrome");
        let caps = serde_json::json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-dev-shm-usage",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", user_data.display()),
                    "--lang=ja",
                ],
            }
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!("a JSON object literal")
        };
        let connected = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await;
        match connected {
            Ok(client) => Browser {
                client,
                driver,
                profile: profile_dir.to_path_buf(),
            },
            Err(e) => {
                kill_group(&mut driver);
                panic!(
                    "starting Chromium through chromedriver: {e}\n{}",
                    read_log()
                );
            }
        }
    }

    /// End the WebDriver session (Chromium exits), then stop chromedriver.
    pub async fn close(self) {
        if let Err(e) = self.client.clone().close().await {
            eprintln!("closing the browser session: {e}");
        }
    }

    /// The directory holding the profile and chromedriver's log.
    pub fn profile_dir(&self) -> &Path {
        &self.profile
    }

    /// Open `url` and wait for the page to load.
    pub async fn goto(&self, url: &str) {
        if let Err(e) = self.client.goto(url).await {
            panic!("opening {url}: {e}");
        }
    }

    /// The first element matching `css`, waiting up to [`ELEMENT_WAIT`] for it.
    pub async fn find(&self, css: &str) -> Element {
        match self
            .client
            .wait()
            .at_most(ELEMENT_WAIT)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(el) => el,
            Err(e) => panic!(
                "no element matches `{css}` on {} ({e}); the page says:\n{}",
                self.current_path().await,
                self.body_text_or_empty().await
            ),
        }
    }

    /// Replace the value of the input matching `css` with `value` (clear, then type).
    pub async fn fill(&self, css: &str, value: &str) {
        let el = self.find(css).await;
        if let Err(e) = el.clear().await {
            panic!("clearing `{css}`: {e}");
        }
        if let Err(e) = el.send_keys(value).await {
            panic!("typing into `{css}`: {e}");
        }
    }

    /// Click the element matching `css`.
    pub async fn click(&self, css: &str) {
        let el = self.find(css).await;
        if let Err(e) = el.click().await {
            panic!("clicking `{css}` on {}: {e}", self.current_path().await);
        }
    }

    /// Submit a form by clicking its button (`css` selects the button).
    pub async fn submit_form(&self, button_css: &str) {
        self.click(button_css).await;
    }

    /// The rendered text of the first element matching `css`. An element replaced while
    /// it is read (the page was navigating) is looked up again.
    pub async fn text(&self, css: &str) -> String {
        let mut tries = 0;
        loop {
            let el = self.find(css).await;
            match el.text().await {
                Ok(t) => return t,
                // stale element, node gone from the document: the page changed under us
                Err(_) if tries < 30 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("reading the text of `{css}`: {e}"),
            }
        }
    }

    /// The rendered text of the whole page.
    pub async fn body_text(&self) -> String {
        self.text("body").await
    }

    async fn body_text_or_empty(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(b) => b.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Path and query of the current URL (`/login?next=%2F`).
    pub async fn current_path(&self) -> String {
        match self.client.current_url().await {
            Ok(u) => match u.query() {
                Some(q) => format!("{}?{q}", u.path()),
                None => u.path().to_string(),
            },
            Err(e) => panic!("reading the current URL: {e}"),
        }
    }

    /// Whether an element matches `css` now (no waiting).
    pub async fn exists(&self, css: &str) -> bool {
        match self.client.find_all(Locator::Css(css)).await {
            Ok(v) => !v.is_empty(),
            Err(e) => panic!("looking for `{css}`: {e}"),
        }
    }

    /// A PNG screenshot of the viewport written to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let png = match self.client.screenshot().await {
            Ok(png) => png,
            Err(e) => panic!("taking a screenshot: {e}"),
        };
        std::fs::write(path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }

    /// Wait until the current path (with query) starts with `prefix`; returns it. Panics
    /// after `timeout` with the path and the text of the page reached.
    pub async fn wait_for_path(&self, prefix: &str, timeout: Duration) -> String {
        let t0 = Instant::now();
        loop {
            let p = self.current_path().await;
            if p.starts_with(prefix) {
                return p;
            }
            if t0.elapsed() > timeout {
                panic!(
                    "timed out after {timeout:?} waiting for {prefix}: still on {p}; the page says:\n{}",
                    self.body_text_or_empty().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(&mut self.driver);
    }
}

/// The text of the first QR code (or other barcode) in a PNG, or `None` when there is none.
pub fn qr_decode(png: &Path) -> Option<String> {
    let out = Command::new(ZBARIMG)
        .args(["--quiet", "--raw"])
        .arg(png)
        .output()
        .unwrap_or_else(|e| panic!("running {ZBARIMG}: {e}"));
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(|l| l.trim_end().to_string())
        .filter(|l| !l.is_empty())
}

/// The current 6-digit TOTP code (SHA-1, 30 s) for a base32 secret.
pub fn totp(secret_base32: &str) -> String {
    oathtool(&["--totp", "-b", secret_base32])
}

/// The 6-digit TOTP code (SHA-1, 30 s) for a base32 secret at `unix_secs`.
pub fn totp_at(secret_base32: &str, unix_secs: u64) -> String {
    oathtool(&[
        "--totp",
        "-b",
        &format!("--now=@{unix_secs}"),
        secret_base32,
    ])
}

fn oathtool(args: &[&str]) -> String {
    let out = Command::new(OATHTOOL)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {OATHTOOL}: {e}"));
    assert!(
        out.status.success(),
        "oathtool {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let code = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()),
        "oathtool gave {code:?}, not a 6-digit code"
    );
    code
}
